"""Local edits to imported records (by a partner or an admin), remembered per field.

A field edited here keeps its local value across re-imports until the source itself changes
that field; then the source's new value is used and the conflict is listed for an admin
(`indexer.apply`). Each edit records the value the source had when it was made.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from indexer.records import HSDS_FIELDS, RECORD_TABLES
from service.directory.tables import hsds_tables
from service.errors import BadRequest, NotFound


def apply_local_edit(session: Session, *, table: str, record_id: str, changes: dict[str, Any],
                     edited_by: str) -> dict[str, Any]:
    """Change fields of one record and remember them as local edits; returns the new row."""
    if table not in RECORD_TABLES:
        raise BadRequest(f"{table} records cannot be edited directly", field="table")
    t = hsds_tables[table]
    row = session.execute(select(t).where(t.c.id == record_id)).mappings().first()
    if row is None:
        raise NotFound(f"no {table} with id {record_id!r}", field="id")
    editable = set(HSDS_FIELDS[table]) - {"id"}
    edits = row["local_edits"]
    edits = dict(json.loads(edits) if isinstance(edits, str) else (edits or {}))
    now = datetime.now(UTC)
    values: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in editable:
            raise BadRequest(f"{field} is not an editable field of {table}", field=field)
        if row[field] == value:
            continue
        source_value = edits[field]["source_value"] if field in edits else row[field]
        if value == source_value:
            edits.pop(field, None)  # back to what the source says: no longer a local edit
        else:
            edits[field] = {"value": value, "source_value": source_value, "by": edited_by,
                            "at": now.isoformat()}
        values[field] = value
    if values:
        session.execute(update(t).where(t.c.id == record_id).values(
            **values, local_edits=edits or None, updated_at=now))
    return dict(session.execute(select(t).where(t.c.id == record_id)).mappings().one())
