"""Accounts: agencies, users and their roles, partner links to organizations, API tokens.

Registered on the directory's `metadata` (one naming convention, one Alembic history).
Timestamps are UTC: `UtcDateTime` stores aware datetimes and gives them back aware on SQLite too
(SQLite keeps no offset, so a naive value read back is UTC by construction).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from service.directory.tables import metadata

ROLES = ("admin", "supervisor", "case_manager", "partner")
AGENCY_ROLES = ("supervisor", "case_manager")  # the roles that belong to one agency


class UtcDateTime(TypeDecorator):
    """DateTime(timezone=True) that always answers an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # within a day of year 1 or 9999 (a filter's far bound)
            return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _roles_sql(roles: tuple[str, ...]) -> str:
    return ", ".join(f"'{r}'" for r in roles)


agency = Table(
    "agency",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(150), nullable=False, unique=True),  # stored lower-case
    Column("password_hash", Text, nullable=False),  # argon2id, PHC string
    Column("role", String(16), nullable=False),
    Column("agency_id", Integer, ForeignKey("agency.id"), index=True),
    Column("email", String(320)),  # where notifications go; none: they wait in the outbox
    Column("is_active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),  # since the last success
    Column("locked_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    CheckConstraint(f"role IN ({_roles_sql(ROLES)})", name="role"),
    CheckConstraint(
        f"(role IN ({_roles_sql(AGENCY_ROLES)}) AND agency_id IS NOT NULL) OR "
        f"(role NOT IN ({_roles_sql(AGENCY_ROLES)}) AND agency_id IS NULL)",
        name="agency_for_agency_roles"),
)

# A partner speaks for directory organizations (and optionally only some of their sites).
user_organization = Table(
    "user_organization",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("organization_id", String(36), ForeignKey("organization.id"), nullable=False,
           index=True),
    Column("location_ids", JSON),  # null: every site of the organization; else only these
    UniqueConstraint("user_id", "organization_id"),
)

api_token = Table(
    "api_token",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", Integer, ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 hex; never the token
    Column("name", String(100), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)
