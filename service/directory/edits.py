"""Local edits to imported records (by a partner or an admin), remembered per field.

A field edited here keeps its local value across re-imports until the source itself changes
that field; then the source's new value is used and the conflict is listed for an admin
(`indexer.apply`). Each edit records the value the source had when it was made.

Besides HSDS fields, a few of Signpost's own columns may be edited the same way
(`EDITABLE_EXTENSIONS`: eligibility, referability, capacity...). Timestamps are not: they are set
beside an edit (`capacity_updated_at`, `verified_at`), not remembered as one.

Child rows (hours, languages, addresses, phones...) have no `local_edits` of their own:
`replace_child_rows` changes a feed's rows in place, keeping their id and content hash, so a
re-import of an unchanged feed leaves the edit alone and a feed that changes such a row wins, as
for record fields. Rows added here belong to `LOCAL_SOURCE`, which no feed's re-import removes.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.orm import Session

from indexer.apply import match_child_rows
from indexer.records import HSDS_FIELDS, RECORD_TABLES
from service.directory.tables import hsds_tables
from service.errors import BadRequest, NotFound

LOCAL_SOURCE = "local"  # `record_source` of child rows a partner or admin added here

# Signpost's own columns that are edited (and kept across re-imports) like HSDS fields.
EDITABLE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "service": ("is_referable", "eligibility"),
    "location": ("is_confidential", "geocode_precision", "time_zone"),
    "service_at_location": ("capacity_status",),
}
# Columns of a child row that say where it came from rather than what it says.
PROVENANCE = ("id", "record_source", "record_source_id", "row_hash")


def apply_local_edit(session: Session, *, table: str, record_id: str, changes: dict[str, Any],
                     edited_by: str) -> dict[str, Any]:
    """Change fields of one record and remember them as local edits; returns the new row."""
    if table not in RECORD_TABLES:
        raise BadRequest(f"{table} records cannot be edited directly", field="table")
    t = hsds_tables[table]
    row = session.execute(select(t).where(t.c.id == record_id)).mappings().first()
    if row is None:
        raise NotFound(f"no {table} with id {record_id!r}", field="id")
    editable = (set(HSDS_FIELDS[table]) | set(EDITABLE_EXTENSIONS.get(table, ()))) - {"id"}
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


def _where(table: Any, where: Mapping[str, Any]) -> Any:
    return and_(*[table.c[k].is_(None) if v is None else table.c[k] == v
                  for k, v in where.items()])


def row_content(row: Mapping[str, Any], *, table: str,
                where: Mapping[str, Any]) -> dict[str, Any]:
    """What a child row says, without its provenance or the columns that place it (`where`);
    empty fields left out."""
    t = hsds_tables[table]
    return {c.name: row[c.name] for c in t.columns
            if c.name not in PROVENANCE and c.name not in where and row[c.name] is not None}


def read_child_rows(session: Session, *, table: str,
                    where: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The content of the child rows matching `where`, feed rows first, in a stable order."""
    t = hsds_tables[table]
    rows = session.execute(select(t).where(_where(t, where)).order_by(
        t.c.record_source == LOCAL_SOURCE, t.c.record_source_id, t.c.id)).mappings().all()
    return [row_content(r, table=table, where=where) for r in rows]


def replace_child_rows(session: Session, *, table: str, where: Mapping[str, Any],
                       rows: Sequence[Mapping[str, Any]]) -> int:
    """Make the rows of `table` matching `where` (e.g. one site's hours) say `rows`; returns
    how many rows were written or removed.

    Existing rows are rewritten in place (feed rows first), keeping their id, source and content
    hash; rows beyond them are added under `LOCAL_SOURCE`; rows left over are removed (each
    wanted row meets the closest current row, and the owner remembers the feed rows rewritten or
    removed so a re-import keeps them so: `indexer.apply.match_child_rows`).
    """
    if table in RECORD_TABLES or table not in hsds_tables:
        raise BadRequest(f"{table} has no child rows to replace", field="table")
    t = hsds_tables[table]
    existing = session.execute(select(t.c.id).where(_where(t, where)).order_by(
        t.c.record_source == LOCAL_SOURCE, t.c.record_source_id, t.c.id)).scalars().all()
    existing, rows = match_child_rows(session, table=table, where=where, existing=existing,
                                      rows=rows)
    content_columns = [c.name for c in t.columns if c.name not in PROVENANCE]
    written = 0
    for i, wanted in enumerate(rows):
        unknown = set(wanted) - set(content_columns)
        if unknown:
            raise BadRequest(f"{sorted(unknown)[0]} is not a field of {table}",
                             field=sorted(unknown)[0])
        values = {c: None for c in content_columns}
        for c in content_columns:
            column = t.c[c]
            if column.default is not None and not column.nullable:
                values[c] = column.default.arg  # e.g. is_closure: False
        values.update(wanted)
        values.update(where)
        if i < len(existing):
            session.execute(update(t).where(t.c.id == existing[i]).values(**values))
        else:
            new_id = str(uuid.uuid4())
            digest = hashlib.md5(json.dumps(values, sort_keys=True, default=str).encode(),
                                 usedforsecurity=False).hexdigest()
            session.execute(insert(t).values(id=new_id, record_source=LOCAL_SOURCE,
                                             record_source_id=new_id, row_hash=digest,
                                             **values))
        written += 1
    surplus = existing[len(rows):]
    if surplus:
        session.execute(delete(t).where(t.c.id.in_(surplus)))
    return written + len(surplus)
