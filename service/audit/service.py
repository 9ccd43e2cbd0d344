"""Writing and reading the audit log. Writers flush inside the caller's transaction."""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Select, func, insert, select
from sqlalchemy.orm import Session

from service.audit.tables import audit_event

REDACTED = "[redacted]"
CSV_COLUMNS = ("id", "occurred_at", "user_id", "actor_role", "action", "entity_type",
               "entity_id", "client_ip", "changes")


@dataclass(frozen=True, kw_only=True)
class Actor:
    """Who did something, and from where (a signed-in user is a `Principal`, a subclass)."""

    user_id: int | None = None
    role: str | None = None
    client_ip: str | None = None


CLI = Actor(role="cli")


def _plain(value: Any) -> Any:
    """A JSON-ready value."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def diff(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None, *,
         fields: Iterable[str], personal: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """{field: {"old", "new"}} for each of `fields` that changed; `personal` values redacted."""
    old, new = old or {}, new or {}
    changes: dict[str, dict[str, Any]] = {}
    for field in fields:
        before, after = old.get(field), new.get(field)
        if before == after:
            continue
        if field in personal:
            before = None if before is None else REDACTED
            after = None if after is None else REDACTED
        changes[field] = {"old": _plain(before), "new": _plain(after)}
    return changes


def record(session: Session, *, actor: Actor, action: str, entity_type: str,
           entity_id: object = None, changes: Mapping[str, Any] | None = None) -> int:
    """Append one event in the caller's transaction; the id of the new event."""
    result = session.execute(insert(audit_event).values(
        occurred_at=datetime.now(UTC), user_id=actor.user_id, actor_role=actor.role,
        action=action, entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        client_ip=actor.client_ip, changes=dict(changes) if changes else None,
    ).returning(audit_event.c.id))
    return result.scalar_one()


def _filtered(query: Select, *, action: str | None, entity_type: str | None,
              entity_id: str | None, user_id: int | None, since: datetime | None,
              until: datetime | None) -> Select:
    c = audit_event.c
    for column, value in ((c.action, action), (c.entity_type, entity_type),
                          (c.entity_id, entity_id), (c.user_id, user_id)):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(c.occurred_at >= since)
    if until is not None:
        query = query.where(c.occurred_at < until)
    return query


def list_events(session: Session, *, action: str | None = None, entity_type: str | None = None,
                entity_id: str | None = None, user_id: int | None = None,
                since: datetime | None = None, until: datetime | None = None,
                page: int = 1, per_page: int = 100) -> tuple[int, list[dict[str, Any]]]:
    """Events, newest first, with the total matching."""
    filters = {"action": action, "entity_type": entity_type, "entity_id": entity_id,
               "user_id": user_id, "since": since, "until": until}
    total = session.execute(_filtered(select(func.count()).select_from(audit_event),
                                      **filters)).scalar_one()
    rows = session.execute(_filtered(select(audit_event), **filters)
                           .order_by(audit_event.c.id.desc())
                           .limit(per_page).offset((page - 1) * per_page)).mappings().all()
    return total, [dict(r) for r in rows]


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(events: Iterable[Mapping[str, Any]]) -> str:
    """The events as CSV (changes as JSON in one column)."""
    import json

    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in events:
        row = dict(e)
        row["occurred_at"] = _plain(row["occurred_at"])
        row["changes"] = json.dumps(row["changes"], sort_keys=True) if row["changes"] else ""
        writer.writerow([_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()
