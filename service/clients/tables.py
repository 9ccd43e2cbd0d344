"""Clients of an agency and the consents they gave to share their information.

A client belongs to exactly one agency, and to the caseload of one of its staff
(`case_manager_id`); nobody outside the agency reads the row (admins for oversight, audited).
Personal fields (name, date of birth, a consent's purpose) never reach logs or the audit log.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from service.accounts.tables import UtcDateTime
from service.directory.tables import metadata

CONTACT_PREFERENCES = ("phone", "text", "email", "mail", "in_person", "do_not_contact")

# What a consent may allow to be shared (a controlled list, so referrals can check it).
SHAREABLE = ("identity", "contact", "demographics", "needs", "referral_status", "notes",
             "substance_use_treatment")

client = Table(
    "client",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("agency_id", Integer, ForeignKey("agency.id"), nullable=False),
    Column("name", String(200), nullable=False),  # a name or initials
    Column("date_of_birth", Date),
    Column("preferred_language", String(35)),  # BCP 47 tag, e.g. "es" or "zh-Hant"
    Column("contact_preference", String(16), nullable=False, default="phone"),
    Column("no_voicemail", Boolean, nullable=False, default=False),  # safe contact
    Column("do_not_text", Boolean, nullable=False, default=False),  # safe contact
    Column("created_by", Integer, ForeignKey("app_user.id")),
    # The staff member whose caseload the client is on (the creator, until a supervisor
    # reassigns the client); null when nobody of the agency holds it.
    Column("case_manager_id", Integer, ForeignKey("app_user.id"), index=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint("contact_preference IN ("
                    + ", ".join(f"'{p}'" for p in CONTACT_PREFERENCES) + ")",
                    name="contact_preference"),
)

# Duplicate warnings look up (agency, date of birth) and compare names.
Index("ix_client_agency_id_date_of_birth", client.c.agency_id, client.c.date_of_birth)

consent = Table(
    "consent",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("client_id", Integer, ForeignKey("client.id"), nullable=False, index=True),
    Column("shares", JSON, nullable=False),  # a list drawn from SHAREABLE
    Column("shared_with_organization_id", String(36), ForeignKey("organization.id")),
    Column("shared_with_name", Text, nullable=False),
    Column("purpose", Text, nullable=False),
    Column("is_part2", Boolean, nullable=False, default=False),  # 42 CFR Part 2 (SUD treatment)
    Column("given_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("recorded_by", Integer, ForeignKey("app_user.id")),
    Column("created_at", UtcDateTime, nullable=False),
)
