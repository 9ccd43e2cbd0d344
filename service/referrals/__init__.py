"""Referrals: a client sent to a service, the partner's answer, and the case manager's follow-up."""
