"""Notifications: an outbox of short messages to partners and case managers, and the SMTP
sender that delivers them. Messages say only that something happened and where to sign in."""
