"""The notification outbox: one row per message to one user.

A row is written in the same transaction as the change it announces, so a message exists if
and only if the change does. The SMTP sender (`service.notifications.sender`) delivers pending
rows: `sent_at` set once delivered; otherwise `attempts`, `last_error` and `next_attempt_at`
(the earliest next try; NULL once the sender has given up, or when the user has no address).
Bodies carry no client or health details: only that something happened and a link to sign in.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Integer, String, Table, Text

from service.accounts.tables import UtcDateTime
from service.directory.tables import metadata

KINDS = ("referral_sent", "referral_answered", "follow_up_due")

notification = Table(
    "notification",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("recipient_user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("recipient_address", String(320)),  # the user's email when queued; none: no email
    Column("kind", String(24), nullable=False),
    Column("referral_id", Integer, ForeignKey("referral.id"), index=True),
    Column("subject", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("next_attempt_at", UtcDateTime),
    CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in KINDS) + ")", name="kind"),
    CheckConstraint("attempts >= 0", name="attempts"),
)

# The sender's question: what is due now and not yet sent?
Index("ix_notification_pending", notification.c.sent_at, notification.c.next_attempt_at)
