"""The audit log out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AuditEvent(BaseModel):
    """Who did what to which record, when and from where."""

    id: int
    occurred_at: datetime
    user_id: int | None
    actor_role: str | None
    action: str
    entity_type: str
    entity_id: str | None
    client_ip: str | None
    changes: dict[str, Any] | None


class AuditPage(BaseModel):
    """One page of events, newest first."""

    total: int
    page: int
    per_page: int
    items: list[AuditEvent]
