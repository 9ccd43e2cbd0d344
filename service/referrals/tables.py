"""Referrals and their append-only history.

A referral's lifecycle follows the FHIR SDOH Clinical Care Task states (`STATUSES`); the allowed
moves live in one table, `service.referrals.service.TRANSITIONS`. `version` grows by one with
every change (optimistic concurrency), and every change appends exactly one `referral_event`
whose `seq` is the referral's new version, so a referral's history is contiguous and ordered.
The database refuses UPDATE and DELETE on referral_event (triggers created by migration 0003).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from service.accounts.tables import UtcDateTime
from service.directory.tables import metadata

STATUSES = ("draft", "requested", "accepted", "rejected", "in-progress", "on-hold", "failed",
            "completed", "cancelled", "entered-in-error")
URGENCIES = ("routine", "soon", "urgent")
REASON_CODES = ("no_capacity", "not_eligible", "could_not_contact", "client_declined",
                "got_help", "duplicate", "other")
FOLLOW_UP_OUTCOMES = ("got_help", "did_not_get_help", "unknown")
EVENT_KINDS = ("created", "transition", "follow_up")


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


referral = Table(
    "referral",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", Integer, ForeignKey("client.id"), nullable=False, index=True),
    Column("agency_id", Integer, ForeignKey("agency.id"), nullable=False, index=True),
    Column("created_by", Integer, ForeignKey("app_user.id")),
    Column("service_id", String(36), ForeignKey("service.id"), nullable=False, index=True),
    Column("service_at_location_id", String(36), ForeignKey("service_at_location.id")),
    # Copied from the service (and its site) when the referral is made: the partner inbox.
    Column("organization_id", String(36), ForeignKey("organization.id"), nullable=False,
           index=True),
    Column("location_id", String(36), ForeignKey("location.id")),
    Column("need_category_id", String(16), nullable=False),
    Column("note", Text),  # free text: personal, never in the audit log
    Column("urgency", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),
    Column("is_logged", Boolean, nullable=False, default=False),  # provider not on Signpost
    Column("sent_at", UtcDateTime),
    Column("follow_up_due_at", UtcDateTime),
    Column("follow_up_outcome", String(16)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(f"status IN ({_in(STATUSES)})", name="status"),
    CheckConstraint(f"urgency IN ({_in(URGENCIES)})", name="urgency"),
    CheckConstraint(f"follow_up_outcome IS NULL OR follow_up_outcome IN "
                    f"({_in(FOLLOW_UP_OUTCOMES)})", name="follow_up_outcome"),
    CheckConstraint("version >= 1", name="version"),
)

Index("ix_referral_follow_up_due_at", referral.c.follow_up_due_at)

referral_event = Table(
    "referral_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("referral_id", Integer, ForeignKey("referral.id"), nullable=False),
    Column("seq", Integer, nullable=False),  # the referral's version after this change
    Column("kind", String(16), nullable=False),
    Column("actor_user_id", Integer, ForeignKey("app_user.id")),
    Column("actor_role", String(16)),
    Column("at", UtcDateTime, nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16), nullable=False),
    Column("reason_code", String(24)),
    Column("reason_text", Text),  # free text: personal, never in the audit log
    Column("detail", JSON),  # a follow-up: {"outcome", "contact_method"}
    UniqueConstraint("referral_id", "seq"),
    CheckConstraint(f"kind IN ({_in(EVENT_KINDS)})", name="kind"),
    CheckConstraint(f"reason_code IS NULL OR reason_code IN ({_in(REASON_CODES)})",
                    name="reason_code"),
)
