"""Apply a staged import to the directory in one transaction.

The staged tables are made reachable from the directory's own connection (SQLite: ATTACH;
PostgreSQL: temporary tables filled with COPY), so comparing and writing are set-based SQL that
both databases run. Only rows whose content hash changed are written; records missing from the
new export are deactivated; rows a partner or admin edited locally are merged field by field.

Partners' edits win until the source changes the same data:

* a record field edited locally (`local_edits`) keeps its local value while the source's value
  stays what it was at the edit; when the source changes it, the source wins and the conflict is
  listed in `edit_conflict` for an admin;
* a feed's child row (hours, phones, languages...) a partner rewrote or removed is remembered by
  the record that owns it (`ROWS`, written by `match_child_rows`): it stays as the partner left
  it, removed rows included, while the feed's row keeps the content hash it had at the edit; when
  the feed changes or drops it, the feed wins and the conflict is listed (field `ROW_FIELD`);
* a verification (`verified_at`, by, method) and a site's capacity (`capacity_status`,
  `capacity_updated_at`) are replaced only by a newer one: the source's value wins when the
  directory has no date yet or the source's date is later (`NEWEST_WINS`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, DateTime, insert, select, update
from sqlalchemy.orm import Session

from indexer.records import RECORD_TABLES
from indexer.staging import STAGED_TABLES, Stage, columns_of
from service.db import DEFAULT_CACHE_KIB, Database
from service.directory.tables import edit_conflict, hsds_tables

# Parents before children, so every foreign key finds its row.
APPLY_ORDER = (
    "taxonomy", "taxonomy_term", "organization", "program", "service", "location",
    "service_at_location", "contact", "phone", "address", "schedule", "service_area", "language",
    "accessibility", "cost_option", "funding", "required_document", "organization_identifier",
    "url", "unit", "service_capacity", "attribute", "metadata",
)
RECORD_META = ("is_active", "created_at", "updated_at", "local_edits")

# Columns replaced only by newer information: (the date that decides, the columns it governs).
NEWEST_WINS: dict[str, tuple[str, tuple[str, ...]]] = {
    "service": ("verified_at", ("verified_at", "verified_by", "verification_method")),
    "service_at_location": ("capacity_updated_at", ("capacity_updated_at", "capacity_status")),
}
ROWS = "_rows"  # key of an owner's `local_edits`: {row id: what a partner did to a feed's row}
ROW_FIELD = "*"  # `edit_conflict.field` of a conflict about a whole child row
# The column that places a child row, and the record that then owns it (most specific first).
OWNERS = (("service_at_location_id", "service_at_location"), ("location_id", "location"),
          ("service_id", "service"), ("organization_id", "organization"))
PROVENANCE = ("id", "record_source", "record_source_id", "row_hash")
APPLY_CACHE_KIB = -524288  # 512 MiB of SQLite page cache while applying (negative: KiB)
# A table given at least this many new rows, and more new rows than it has, has its secondary
# indexes made again after the rows are in (SQLite; see Applier._upsert).
BULK_MIN_ROWS = 50000


@dataclass
class RowEdit:
    """A feed's child row a partner rewrote or removed, as its owner remembers it."""

    owner_table: str
    owner_id: str
    row_id: str
    entry: dict[str, Any]  # table, source, source_id, row_hash, source_row, removed, at


@dataclass
class Plan:
    """What applying the stage would do, per table."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    active_before: dict[str, int] = field(default_factory=dict)


class Applier:
    """One write transaction on the directory with the staged rows in reach."""

    def __init__(self, db: Database, stage: Stage, sources: list[str], *,
                 before_lock: Callable[[Applier], None] | None = None) -> None:
        self.db = db
        self.stage = stage
        self.sources = sources
        # Called once the stage's rows are marked, before the write lock is taken (SQLite).
        self.before_lock = before_lock
        self.now = datetime.now(UTC)
        self.conn: Connection | None = None
        self.conflicts: Counter[str] = Counter()  # table -> conflicts listed for an admin
        self.adds_only = False  # every staged row is new and nothing goes (SQLite; see enter)

    # -- connection ---------------------------------------------------------------------------
    def __enter__(self) -> Applier:
        conn = self.db.engine.connect()
        self.conn = conn
        try:
            if self.db.is_sqlite:
                self._enter_sqlite(conn.connection.dbapi_connection)
                conn.execution_options(sqlite_write=True)
                conn.begin()
            else:
                conn.begin()
                conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
                self._copy_stage_to_postgres()
                self._mark_changes(None)
        except BaseException:
            self._release()
            raise
        return self

    def _enter_sqlite(self, raw: Any) -> None:
        raw.execute("ATTACH DATABASE ? AS stg", (str(self.stage.path),))
        # Rows arrive in random id order: a large page cache keeps the directory's indexes in
        # memory while they grow, rather than writing and re-reading their pages (a third of
        # the apply at 400k rows). Restored on exit: the connection is pooled.
        raw.execute(f"PRAGMA main.cache_size = {APPLY_CACHE_KIB}")
        # Comparing the stage with the directory only reads the directory (and writes the
        # stage's own file), so it runs before the write lock is taken: the lock is then held
        # just for the rows that really change.
        self._mark_changes(raw)
        self.adds_only = self._adds_only()
        if self.adds_only:
            # Every staged reference names a staged row (the pipeline's reference check
            # dropped the others), and every staged row is about to be inserted: checking each
            # insert's parents again was half the cost of inserting it. (Only outside a
            # transaction does this pragma take effect; restored on exit.)
            raw.execute("PRAGMA foreign_keys = OFF")
        if self.before_lock is not None:
            self.before_lock(self)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.conn is not None
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            self._release()

    def _release(self) -> None:
        """Give the connection back to the pool as it was taken."""
        assert self.conn is not None
        try:
            if self.db.is_sqlite:
                raw = self.conn.connection.dbapi_connection
                if self.conn.in_transaction():
                    self.conn.rollback()
                raw.execute("PRAGMA foreign_keys = ON")
                if any(row[1] == "stg" for row in raw.execute("PRAGMA database_list")):
                    raw.execute("DETACH DATABASE stg")
                raw.execute(f"PRAGMA main.cache_size = {DEFAULT_CACHE_KIB}")
        finally:
            self.conn.close()

    def staged(self, table: str) -> str:
        """The name of a staged table as the directory's connection sees it."""
        return f"stg.{table}" if self.db.is_sqlite else f"stg_{table}"

    def _copy_stage_to_postgres(self) -> None:
        assert self.conn is not None
        raw = self.conn.connection.dbapi_connection
        with raw.cursor() as cursor:
            for table in STAGED_TABLES:
                cols = columns_of(table)
                cursor.execute(f"CREATE TEMP TABLE stg_{table} ON COMMIT DROP AS SELECT * "
                               f"FROM {table} WITH NO DATA")
                if table != "service_category":
                    cursor.execute(f"ALTER TABLE stg_{table} ADD COLUMN _op text")
                with cursor.copy(f"COPY stg_{table} ({', '.join(cols)}) FROM STDIN") as copy:
                    for row in self.stage.query(f"SELECT {', '.join(cols)} FROM {table}"):
                        copy.write_row(row)
                if table != "service_category":
                    cursor.execute(f"CREATE INDEX ON stg_{table} (id)")
                cursor.execute(f"ANALYZE stg_{table}")
            cursor.execute("CREATE TEMP TABLE stg__gone (tbl text, id text) ON COMMIT DROP")

    def _run(self, raw: Any, sql: str, **params: Any) -> int:
        """One statement, on the raw SQLite connection (outside any transaction) or in ours."""
        if raw is not None:
            return raw.execute(sql, params).rowcount
        return self._exec(sql, **params)

    def _rows_of(self, raw: Any, sql: str) -> list[tuple]:
        """The rows of a query, on the raw SQLite connection or in our transaction."""
        if raw is not None:
            return raw.execute(sql).fetchall()
        assert self.conn is not None
        return [tuple(r) for r in self.conn.exec_driver_sql(sql)]

    def _mark_changes(self, raw: Any) -> None:
        """Mark each staged row new or changed (`_op`), and list the rows the new export no
        longer has (`_gone`), comparing content hashes."""
        sources = self._sources_sql()
        born_new = self.db.is_sqlite and self.stage.born_new
        for table in APPLY_ORDER:
            stg = self.staged(table)
            active = " AND t.is_active" if table in RECORD_TABLES else ""
            inactive = " OR NOT t.is_active" if table in RECORD_TABLES else ""
            if born_new:  # every row is 'new' until the directory is found to have it
                self._run(raw, f"UPDATE {stg} SET _op = NULL WHERE EXISTS (SELECT 1 FROM "
                               f"{table} t WHERE t.id = {stg}.id AND t.row_hash = "
                               f"{stg}.row_hash{active})")
                self._run(raw, f"UPDATE {stg} SET _op = 'changed' WHERE _op = 'new' AND EXISTS "
                               f"(SELECT 1 FROM {table} t WHERE t.id = {stg}.id)")
            else:
                self._run(raw, f"UPDATE {stg} SET _op = 'new' WHERE NOT EXISTS "
                               f"(SELECT 1 FROM {table} t WHERE t.id = {stg}.id)")
                self._run(raw, f"UPDATE {stg} SET _op = 'changed' WHERE _op IS NULL AND "
                               f"EXISTS (SELECT 1 FROM {table} t WHERE t.id = {stg}.id AND "
                               f"(t.row_hash <> {stg}.row_hash{inactive}))")
            self._run(raw, f"INSERT INTO {self.staged('_gone')} (tbl, id) SELECT '{table}', t.id "
                           f"FROM {table} t WHERE t.record_source IN ({sources}){active} AND "
                           f"NOT EXISTS (SELECT 1 FROM {stg} s WHERE s.id = t.id)")
        self._hold_removed_rows(raw, self._row_edits(raw))

    def _adds_only(self) -> bool:
        """Whether applying will only insert rows: every staged row new, nothing gone."""
        stage = self.stage
        if next(stage.query("SELECT 1 FROM _gone LIMIT 1"), None):
            return False
        return not any(next(stage.query(f"SELECT 1 FROM {t} WHERE _op IS NOT 'new' LIMIT 1"),
                            None) for t in APPLY_ORDER)

    def _row_edits(self, raw: Any) -> list[RowEdit]:
        """The feed rows of this import's sources that partners rewrote or removed."""
        out = []
        for owner_table in RECORD_TABLES:
            for owner_id, value in self._rows_of(raw, f"SELECT id, local_edits FROM "
                                                      f"{owner_table} WHERE local_edits IS NOT "
                                                      "NULL"):
                remembered = (_json(value) or {}).get(ROWS) or {}
                out += [RowEdit(owner_table, owner_id, row_id, entry)
                        for row_id, entry in remembered.items()
                        if entry.get("source") in self.sources]
        return out

    def _hold_removed_rows(self, raw: Any, row_edits: list[RowEdit]) -> None:
        """A row a partner removed is not brought back while the feed's row is as it was."""
        for edit in row_edits:
            if edit.entry.get("removed"):
                self._run(raw, f"UPDATE {self.staged(edit.entry['table'])} SET _op = NULL "
                               "WHERE id = :id AND row_hash = :row_hash",
                          id=edit.row_id, row_hash=edit.entry["row_hash"])

    def _scalar(self, sql: str, **params: Any) -> Any:
        assert self.conn is not None
        return self.conn.exec_driver_sql(*self._bind(sql, params)).scalar()

    def _exec(self, sql: str, **params: Any) -> int:
        assert self.conn is not None
        return self.conn.exec_driver_sql(*self._bind(sql, params)).rowcount

    def _bind(self, sql: str, params: dict[str, Any]) -> tuple[str, Any]:
        """sqlite3 takes :name parameters as written; psycopg wants %(name)s."""
        if not params:
            return sql, ()
        if self.db.is_sqlite:
            return sql, params
        return re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql), params

    def _sources_sql(self) -> str:
        return ", ".join(_quote(s) for s in self.sources)

    # -- plan -----------------------------------------------------------------------------------
    def plan(self) -> Plan:
        """Count new, changed, unchanged, reactivated and deactivated rows per table."""
        plan = Plan()
        sources = self._sources_sql()
        gone = dict(self.conn.exec_driver_sql(  # type: ignore[union-attr]
            f"SELECT tbl, count(*) FROM {self.staged('_gone')} GROUP BY tbl").all())
        for table in APPLY_ORDER:
            stg = self.staged(table)
            if self.adds_only:  # every staged row is new: their number is the plan
                counts = Counter(new=self._scalar(f"SELECT count(*) FROM {stg}"))
            else:
                counts = Counter(dict(self.conn.exec_driver_sql(  # type: ignore[union-attr]
                    f"SELECT coalesce(_op, 'unchanged'), count(*) FROM {stg} GROUP BY 1").all()))
            if table in RECORD_TABLES:
                counts["reactivated"] = 0 if self.adds_only else self._scalar(
                    f"SELECT count(*) FROM {stg} s JOIN {table} t ON t.id = s.id "
                    "WHERE s._op = 'changed' AND NOT t.is_active")
                plan.active_before[table] = self._scalar(
                    f"SELECT count(*) FROM {table} WHERE record_source IN ({sources}) "
                    "AND is_active")
                counts["deactivated"] = gone.get(table, 0)
            else:
                counts["removed"] = gone.get(table, 0)
            plan.counts[table] = Counter({k: v for k, v in counts.items() if v})
        return plan

    # -- apply ----------------------------------------------------------------------------------
    def apply(self, run_id: int | None) -> set[str]:
        """Write the stage; return the ids of services whose search documents changed."""
        self._settle_row_edits(run_id)
        changed_services = self._changed_services()
        for table in APPLY_ORDER:
            self._upsert(table)
        self._merge_local_edits(run_id)
        gone = self.staged("_gone")
        for table in reversed(APPLY_ORDER):
            if table in RECORD_TABLES:
                self._exec(f"UPDATE {table} SET is_active = FALSE, updated_at = :now "
                           f"WHERE id IN (SELECT id FROM {gone} WHERE tbl = '{table}')",
                           now=self.now)
            else:
                self._exec(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {gone} "
                           f"WHERE tbl = '{table}')")
        # Categories of the services whose row or category links changed.
        stg = self.staged("service_category")
        if self.adds_only:
            # Every staged row is new, so every staged link is of a new service or of one a
            # new attribute names, and only the latter can have links already: the union of
            # 800k ids below (two seconds at 400k services) would select every staged link.
            if self._scalar("SELECT 1 FROM service_category LIMIT 1"):  # else none to clear
                self._exec(f"DELETE FROM service_category WHERE service_id IN (SELECT link_id "
                           f"FROM {self.staged('attribute')})")
            self._exec(f"INSERT INTO service_category (service_id, category_id) SELECT "
                       f"DISTINCT service_id, category_id FROM {stg} WHERE true ON CONFLICT DO "
                       "NOTHING")  # (the WHERE tells SQLite's parser ON is not a join's)
            return changed_services
        affected = (f"SELECT id FROM {self.staged('service')} WHERE _op IS NOT NULL "
                    f"UNION SELECT link_id FROM {self.staged('attribute')} WHERE _op IS NOT NULL "
                    f"UNION SELECT a.link_id FROM attribute a JOIN {gone} g ON g.id = a.id "
                    "AND g.tbl = 'attribute'")
        # Worked out once for both statements (a first import lists each of its services).
        self._exec(f"CREATE TEMP TABLE affected_services "
                   f"{'' if self.db.is_sqlite else 'ON COMMIT DROP '}AS {affected}")
        self._exec("DELETE FROM service_category WHERE service_id IN (SELECT id FROM "
                   "affected_services)")
        self._exec(f"INSERT INTO service_category (service_id, category_id) SELECT DISTINCT "
                   f"service_id, category_id FROM {stg} WHERE service_id IN (SELECT id FROM "
                   "affected_services) ON CONFLICT DO NOTHING")
        if self.db.is_sqlite:
            self._exec("DROP TABLE temp.affected_services")
        return changed_services

    def _upsert(self, table: str) -> None:
        if not self.db.is_sqlite:
            self._upsert_rows(table)
            return
        # Many new rows (a source's first import): a secondary index is dropped and made
        # again afterwards, one sort rather than a random insert per row. Inside the
        # transaction, so a failed apply leaves every index as it was.
        new = self._scalar(f"SELECT count(*) FROM {self.staged(table)} WHERE _op = 'new'")
        if new < BULK_MIN_ROWS or new < self._scalar(f"SELECT count(*) FROM {table}"):
            self._upsert_rows(table)
            return
        assert self.conn is not None
        indexes = self.conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
            "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%'", (table,)).all()
        for name, _sql in indexes:
            self._exec(f"DROP INDEX {name}")
        self._upsert_rows(table)
        for _name, sql in indexes:
            self._exec(sql)

    def _upsert_rows(self, table: str) -> None:
        cols = [c for c in columns_of(table) if c not in RECORD_META]
        stg = self.staged(table)
        select_cols = ", ".join(f"s.{c}" for c in cols)
        when, governed = NEWEST_WINS.get(table, ("", ()))
        newer = f"{table}.{when} IS NULL OR excluded.{when} > {table}.{when}"
        updates = ", ".join(
            f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {table}.{c} END" if c in governed
            else f"{c} = excluded.{c}" for c in cols if c != "id")
        if table in RECORD_TABLES:
            self._exec(
                f"INSERT INTO {table} ({', '.join(cols)}, is_active, created_at, updated_at) "
                f"SELECT {select_cols}, coalesce(s.is_active, TRUE), :now, :now FROM {stg} s "
                f"WHERE s._op IS NOT NULL ON CONFLICT (id) DO UPDATE SET {updates}, "
                f"is_active = excluded.is_active, "
                f"updated_at = excluded.updated_at WHERE {table}.local_edits IS NULL",
                now=self.now)
        else:
            self._exec(
                f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select_cols} FROM {stg} s "
                f"WHERE s._op IS NOT NULL ON CONFLICT (id) DO UPDATE SET {updates}")

    def _changed_services(self) -> set[str]:
        """Services whose own row, sites, locations or child rows change with this import."""
        assert self.conn is not None
        ids: set[str] = set()

        def collect(sql: str) -> None:
            ids.update(map(itemgetter(0), self._driver_rows(sql)))

        gone = self.staged("_gone")
        collect(f"SELECT id FROM {self.staged('service')} WHERE _op IS NOT NULL")
        collect(f"SELECT id FROM {gone} WHERE tbl = 'service'")
        for table in ("phone", "schedule", "service_area", "language", "cost_option",
                      "required_document", "service_at_location", "service_capacity",
                      "attribute"):
            key = "link_id" if table == "attribute" else "service_id"
            collect(f"SELECT {key} FROM {self.staged(table)} WHERE _op IS NOT NULL")
            collect(f"SELECT t.{key} FROM {table} t JOIN {gone} g ON g.id = t.id "
                    f"AND g.tbl = '{table}'")
        for table in ("location", "address", "accessibility"):
            key = "id" if table == "location" else "location_id"
            collect(f"SELECT sal.service_id FROM service_at_location sal JOIN "
                    f"{self.staged(table)} s ON s.{key} = sal.location_id WHERE s._op IS NOT NULL")
            collect(f"SELECT sal.service_id FROM service_at_location sal JOIN {table} t ON "
                    f"t.{key} = sal.location_id JOIN {gone} g ON g.id = t.id AND "
                    f"g.tbl = '{table}'")
        ids.difference_update((None, ""))  # a row without the link
        return ids

    def _driver_rows(self, sql: str) -> Iterable[Any]:
        """The rows of a query in our transaction, as the driver gives them (a first import
        reads back 1.6 million ids here: through SQLAlchemy's results, a second of it)."""
        assert self.conn is not None
        if self.db.is_sqlite:
            return self.conn.connection.dbapi_connection.execute(sql)  # type: ignore[union-attr]
        return self.conn.exec_driver_sql(sql)

    def _merge_local_edits(self, run_id: int | None) -> None:
        """Keep local edits unless the source changed that field; list such conflicts."""
        assert self.conn is not None
        for table in RECORD_TABLES:
            main = hsds_tables[table]
            stg = self.staged(table)
            cols = [c for c in columns_of(table) if c not in RECORD_META]
            when, governed = NEWEST_WINS.get(table, ("", ()))
            edited = self.conn.execute(
                select(main).where(main.c.local_edits.is_not(None))
                .where(main.c.record_source.in_(self.sources))).mappings().all()
            for current in edited:
                staged = self.conn.exec_driver_sql(
                    f"SELECT {', '.join(cols)} FROM {stg} WHERE id = ?"
                    if self.db.is_sqlite else
                    f"SELECT {', '.join(cols)} FROM {stg} WHERE id = %(id)s",
                    (current["id"],) if self.db.is_sqlite else {"id": current["id"]},
                ).mappings().first()
                if staged is None:
                    continue
                edits = _json(current["local_edits"]) or {}
                values = {c: _column_value(main, c, staged[c]) for c in cols if c != "id"}
                from_source = dict(values)
                held = bool(governed) and not _is_newer(values[when], current[when])
                if held:  # the directory's confirmation is newer: it stands
                    values.update({c: current[c] for c in governed})
                kept: dict[str, Any] = {}
                for name, edit in edits.items():
                    if name not in values:
                        kept[name] = edit
                        continue
                    if name in governed:
                        # Decided by date: a newer source value replaces the local one (no
                        # conflict); otherwise the local value stands against whatever the
                        # source says now.
                        if held:
                            kept[name] = {**edit, "source_value": _plain(from_source[name])}
                        continue
                    if _same(values[name], edit.get("source_value")):
                        values[name] = edit.get("value")
                        kept[name] = edit
                    else:
                        self._conflict(table=table, record_id=current["id"], field=name,
                                       local=edit.get("value"),
                                       at_edit=edit.get("source_value"),
                                       new=_plain(values[name]), by=edit.get("by"),
                                       at=edit.get("at"), run_id=run_id)
                if current["row_hash"] == staged["row_hash"] and kept == edits \
                        and current["is_active"]:
                    continue
                self.conn.execute(update(main).where(main.c.id == current["id"]).values(
                    **values, local_edits=kept or None, is_active=True, updated_at=self.now))

    def _conflict(self, *, table: str, record_id: str, field: str, local: Any, at_edit: Any,
                  new: Any, by: Any, at: Any, run_id: int | None) -> None:
        """List a conflict between a local edit and the source for an admin."""
        assert self.conn is not None
        self.conn.execute(insert(edit_conflict).values(
            table_name=table, record_id=record_id, field=field, local_value=local,
            source_value_at_edit=at_edit, new_source_value=new, edited_by=by,
            edited_at=_parse_time(at), detected_at=self.now, import_run_id=run_id))
        self.conflicts[table] += 1

    def _settle_row_edits(self, run_id: int | None) -> None:
        """Rows partners rewrote or removed: kept while the feed's row is as it was at the edit;
        once the feed changes or drops it, the feed wins, the conflict is listed and the row is
        no longer remembered."""
        assert self.conn is not None
        settled: dict[tuple[str, str], set[str]] = {}
        row_edits = self._row_edits(None)
        self._hold_removed_rows(None, row_edits)  # again, now that the directory is locked
        for edit in row_edits:
            table, entry = edit.entry["table"], edit.entry
            staged = self._staged_row(table, edit.row_id)
            if staged is not None and staged["row_hash"] == entry["row_hash"]:
                continue
            if not (staged is None and entry.get("removed")):  # both removed it: no conflict
                local = None  # removed by the partner
                if not entry.get("removed"):
                    t = hsds_tables[table]
                    row = self.conn.execute(select(t).where(t.c.id == edit.row_id)).first()
                    local = None if row is None else _row_content(t, row._mapping)
                self._conflict(table=table, record_id=edit.row_id, field=ROW_FIELD, local=local,
                               at_edit=entry.get("source_row"),
                               new=None if staged is None else _row_content(
                                   hsds_tables[table], staged),
                               by=entry.get("by"), at=entry.get("at"), run_id=run_id)
            settled.setdefault((edit.owner_table, edit.owner_id), set()).add(edit.row_id)
        for (owner_table, owner_id), row_ids in settled.items():
            owner = hsds_tables[owner_table]
            edits = dict(_json(self.conn.execute(select(owner.c.local_edits).where(
                owner.c.id == owner_id)).scalar()) or {})
            rows = {k: v for k, v in (edits.get(ROWS) or {}).items() if k not in row_ids}
            edits.pop(ROWS, None)
            if rows:
                edits[ROWS] = rows
            self.conn.execute(update(owner).where(owner.c.id == owner_id)
                              .values(local_edits=edits or None))

    def _staged_row(self, table: str, row_id: str) -> dict[str, Any] | None:
        """A staged row in the directory's Python types, or None."""
        assert self.conn is not None
        main = hsds_tables[table]
        cols = columns_of(table)
        sql, params = self._bind(f"SELECT {', '.join(cols)} FROM {self.staged(table)} "
                                 "WHERE id = :id", {"id": row_id})
        row = self.conn.exec_driver_sql(sql, params).mappings().first()
        return None if row is None else {c: _column_value(main, c, row[c]) for c in cols}


# --- partners' edits of a feed's child rows ---------------------------------------------------


def _row_content(table: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """What a child row says (its non-empty columns, without provenance), as plain JSON."""
    return {c.name: _plain(row[c.name]) for c in table.columns
            if c.name not in PROVENANCE and row.get(c.name) is not None}


def _likeness(a: Mapping[str, Any], b: Mapping[str, Any]) -> int:
    """How alike two rows' contents are: the same row scores highest, else shared values."""
    if a == b:
        return 1_000_000
    return sum(1 for k in a.keys() & b.keys() if a[k] == b[k])


def _owner(where: Mapping[str, Any]) -> tuple[str, str] | None:
    """The record that owns the child rows placed by `where`, as (table, id)."""
    for column, table in OWNERS:
        if where.get(column) is not None:
            return table, where[column]
    return None


def match_child_rows(session: Session, *, table: str, where: Mapping[str, Any],
                     existing: Sequence[str], rows: Sequence[Mapping[str, Any]],
                     ) -> tuple[list[str], list[Mapping[str, Any]]]:
    """Before `rows` replace the child rows `existing` in place (`service.directory.edits.
    replace_child_rows`): pair each wanted row with the closest current row, and remember each
    feed row the partner thereby rewrites or removes in its owner's `local_edits` (`ROWS`), so
    the next import keeps the edit while the feed's row is as it was.

    A wanted row that says exactly what a removed feed row said brings that row back (a
    revert). Returns both lists reordered so that paired rows share an index, unpaired after.
    """
    from service.directory.edits import LOCAL_SOURCE

    t = hsds_tables[table]
    found = {r["id"]: r for r in session.execute(select(t).where(t.c.id.in_(list(existing))))
             .mappings()}
    current = [found[i] for i in existing if i in found]
    wanted = []
    for row in rows:
        values: dict[str, Any] = {c.name: None for c in t.columns}
        for c in t.columns:
            if c.default is not None and not c.nullable:
                values[c.name] = c.default.arg
        values.update({k: v for k, v in row.items() if k in t.c})
        values.update(where)
        wanted.append(_row_content(t, values))
    owner = _owner(where)
    owner_table = hsds_tables[owner[0]] if owner else None
    edits: dict[str, Any] = {}
    if owner is not None:
        edits = dict(_json(session.execute(select(owner_table.c.local_edits).where(
            owner_table.c.id == owner[1])).scalar()) or {})
    memory: dict[str, Any] = dict(edits.get(ROWS) or {})
    now = datetime.now(UTC).isoformat()

    # A revert: a removed feed row wanted again exactly as it was comes back with its id.
    contents = [_row_content(t, r) for r in current]
    for content in wanted:
        if content in contents:
            continue
        row_id = next((k for k, e in memory.items() if e.get("table") == table
                       and e.get("removed") and e.get("source_row") == content), None)
        if row_id is None:
            continue
        entry = memory.pop(row_id)
        session.execute(insert(t).values(
            id=row_id, record_source=entry["source"], record_source_id=entry["source_id"],
            row_hash=entry["row_hash"],
            **{k: _column_value(t, k, v) for k, v in entry["source_row"].items()}))
        restored = session.execute(select(t).where(t.c.id == row_id)).mappings().one()
        current.append(restored)
        contents.append(_row_content(t, restored))

    candidates = sorted((-_likeness(contents[i], wanted[j]), i, j)
                        for i in range(len(current)) for j in range(len(wanted)))
    paired: dict[int, int] = {}  # wanted index -> current index
    for _score, i, j in candidates:
        if j not in paired and i not in paired.values():
            paired[j] = i
    for i, row in enumerate(current):
        if row["record_source"] == LOCAL_SOURCE or owner is None:
            continue
        j = next((j for j, k in paired.items() if k == i), None)
        entry = memory.get(row["id"])
        if j is not None and contents[i] == wanted[j]:
            continue  # left as it is
        if j is not None and entry is not None and entry["source_row"] == wanted[j]:
            memory.pop(row["id"])  # back to what the feed says: no longer an edit
            continue
        memory[row["id"]] = {
            "table": table, "source": row["record_source"],
            "source_id": row["record_source_id"], "row_hash": row["row_hash"],
            "source_row": entry["source_row"] if entry else contents[i],
            "removed": j is None, "at": now}
    if owner is not None and memory != (edits.get(ROWS) or {}):
        edits.pop(ROWS, None)
        if memory:
            edits[ROWS] = memory
        session.execute(update(owner_table).where(owner_table.c.id == owner[1])
                        .values(local_edits=edits or None))
    order = sorted(paired)
    ids = [current[paired[j]]["id"] for j in order]
    ids += [r["id"] for i, r in enumerate(current) if i not in paired.values()]
    return ids, [rows[j] for j in order] + [r for j, r in enumerate(rows) if j not in paired]


def _is_newer(candidate: Any, than: Any) -> bool:
    """True when the directory has no date yet (`than`) or `candidate` is later."""
    than, candidate = _parse_time(than), _parse_time(candidate)
    return than is None or (candidate is not None and candidate > than)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _column_value(table: Any, column: str, value: Any) -> Any:
    """A staged value in the Python type the directory column expects."""
    col_type = table.c[column].type
    if value is None:
        return None
    if isinstance(col_type, JSON):
        return _json(value)
    if isinstance(col_type, Boolean):
        return bool(value)
    if isinstance(col_type, DateTime) and isinstance(value, str):
        return _parse_time(value)
    return value


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite's are UTC
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _same(a: Any, b: Any) -> bool:
    return _plain(a) == _plain(b) or (a in (None, "") and b in (None, ""))
