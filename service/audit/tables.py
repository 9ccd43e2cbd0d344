"""The audit log: append-only, written in the same transaction as the change it records.

It holds ids, roles, field names and non-personal values, never a client's name, date of birth
or free text (those appear as `"[redacted]"`, see `service.audit.service.diff`). The database
refuses UPDATE and DELETE on it (triggers created by migration 0002).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, ForeignKey, Index, Integer, String, Table

from service.accounts.tables import UtcDateTime
from service.directory.tables import metadata

audit_event = Table(
    "audit_event",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("occurred_at", UtcDateTime, nullable=False, index=True),
    Column("user_id", Integer, ForeignKey("app_user.id")),  # null: anonymous or the CLI
    Column("actor_role", String(16)),  # the role at the time; "cli" for the command line
    Column("action", String(64), nullable=False),  # e.g. client.read, consent.revoke
    Column("entity_type", String(32), nullable=False),
    Column("entity_id", String(64)),
    Column("client_ip", String(64)),
    Column("changes", JSON),  # {field: {"old": ..., "new": ...}}; personal values redacted
)

Index("ix_audit_event_entity", audit_event.c.entity_type, audit_event.c.entity_id)
Index("ix_audit_event_user_id", audit_event.c.user_id)
