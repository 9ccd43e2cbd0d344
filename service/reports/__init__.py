"""Reports: referral counts, response times, the closed-loop rate and unmet needs."""
