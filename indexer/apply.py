"""Apply a staged import to the directory in one transaction.

The staged tables are made reachable from the directory's own connection (SQLite: ATTACH;
PostgreSQL: temporary tables filled with COPY), so comparing and writing are set-based SQL that
both databases run. Only rows whose content hash changed are written; records missing from the
new export are deactivated; rows a partner or admin edited locally are merged field by field.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, DateTime, insert, select, update

from indexer.records import RECORD_TABLES
from indexer.staging import STAGED_TABLES, Stage, columns_of
from service.db import Database
from service.directory.tables import edit_conflict, hsds_tables

# Parents before children, so every foreign key finds its row.
APPLY_ORDER = (
    "taxonomy", "taxonomy_term", "organization", "program", "service", "location",
    "service_at_location", "contact", "phone", "address", "schedule", "service_area", "language",
    "accessibility", "cost_option", "funding", "required_document", "organization_identifier",
    "url", "unit", "service_capacity", "attribute", "metadata",
)
RECORD_META = ("is_active", "created_at", "updated_at", "local_edits")


@dataclass
class Plan:
    """What applying the stage would do, per table."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)
    active_before: dict[str, int] = field(default_factory=dict)


class Applier:
    """One write transaction on the directory with the staged rows in reach."""

    def __init__(self, db: Database, stage: Stage, sources: list[str]) -> None:
        self.db = db
        self.stage = stage
        self.sources = sources
        self.now = datetime.now(UTC)
        self.conn: Connection | None = None

    # -- connection ---------------------------------------------------------------------------
    def __enter__(self) -> Applier:
        conn = self.db.engine.connect()
        self.conn = conn
        if self.db.is_sqlite:
            raw = conn.connection.dbapi_connection
            raw.execute("ATTACH DATABASE ? AS stg", (str(self.stage.path),))
            # Comparing the stage with the directory only reads the directory (and writes the
            # stage's own file), so it runs before the write lock is taken: the lock is then
            # held just for the rows that really change.
            self._mark_changes(raw)
            conn.execution_options(sqlite_write=True)
            conn.begin()
        else:
            conn.begin()
            conn.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
            self._copy_stage_to_postgres()
            self._mark_changes(None)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        assert self.conn is not None
        try:
            if exc_type is None:
                self.conn.commit()
            else:
                self.conn.rollback()
        finally:
            if self.db.is_sqlite:
                self.conn.connection.dbapi_connection.execute("DETACH DATABASE stg")
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

    def _mark_changes(self, raw: Any) -> None:
        """Mark each staged row new or changed (`_op`), and list the rows the new export no
        longer has (`_gone`), comparing content hashes."""
        sources = self._sources_sql()
        for table in APPLY_ORDER:
            stg = self.staged(table)
            self._run(raw, f"UPDATE {stg} SET _op = 'new' WHERE NOT EXISTS "
                           f"(SELECT 1 FROM {table} t WHERE t.id = {stg}.id)")
            inactive = " OR NOT t.is_active" if table in RECORD_TABLES else ""
            self._run(raw, f"UPDATE {stg} SET _op = 'changed' WHERE _op IS NULL AND EXISTS "
                           f"(SELECT 1 FROM {table} t WHERE t.id = {stg}.id AND "
                           f"(t.row_hash <> {stg}.row_hash{inactive}))")
            active = " AND t.is_active" if table in RECORD_TABLES else ""
            self._run(raw, f"INSERT INTO {self.staged('_gone')} (tbl, id) SELECT '{table}', t.id "
                           f"FROM {table} t WHERE t.record_source IN ({sources}){active} AND "
                           f"NOT EXISTS (SELECT 1 FROM {stg} s WHERE s.id = t.id)")

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
            counts: Counter[str] = Counter(dict(self.conn.exec_driver_sql(  # type: ignore[union-attr]
                f"SELECT coalesce(_op, 'unchanged'), count(*) FROM {stg} GROUP BY 1").all()))
            if table in RECORD_TABLES:
                counts["reactivated"] = self._scalar(
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
        affected = (f"SELECT id FROM {self.staged('service')} WHERE _op IS NOT NULL "
                    f"UNION SELECT link_id FROM {self.staged('attribute')} WHERE _op IS NOT NULL "
                    f"UNION SELECT a.link_id FROM attribute a JOIN {gone} g ON g.id = a.id "
                    "AND g.tbl = 'attribute'")
        stg = self.staged("service_category")
        self._exec(f"DELETE FROM service_category WHERE service_id IN ({affected})")
        self._exec(f"INSERT INTO service_category (service_id, category_id) SELECT DISTINCT "
                   f"service_id, category_id FROM {stg} WHERE service_id IN ({affected}) "
                   "ON CONFLICT DO NOTHING")
        return changed_services

    def _upsert(self, table: str) -> None:
        cols = [c for c in columns_of(table) if c not in RECORD_META]
        stg = self.staged(table)
        select_cols = ", ".join(f"s.{c}" for c in cols)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "id")
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
            ids.update(r[0] for r in self.conn.exec_driver_sql(sql) if r[0])  # type: ignore[union-attr]

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
        return ids

    def _merge_local_edits(self, run_id: int | None) -> None:
        """Keep local edits unless the source changed that field; list such conflicts."""
        assert self.conn is not None
        for table in RECORD_TABLES:
            main = hsds_tables[table]
            stg = self.staged(table)
            cols = [c for c in columns_of(table) if c not in RECORD_META]
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
                kept: dict[str, Any] = {}
                for name, edit in edits.items():
                    if name not in values:
                        kept[name] = edit
                        continue
                    if _same(values[name], edit.get("source_value")):
                        values[name] = edit.get("value")
                        kept[name] = edit
                    else:
                        self.conn.execute(insert(edit_conflict).values(
                            table_name=table, record_id=current["id"], field=name,
                            local_value=edit.get("value"),
                            source_value_at_edit=edit.get("source_value"),
                            new_source_value=_plain(values[name]), edited_by=edit.get("by"),
                            edited_at=_parse_time(edit.get("at")), detected_at=self.now,
                            import_run_id=run_id))
                if current["row_hash"] == staged["row_hash"] and kept == edits \
                        and current["is_active"]:
                    continue
                self.conn.execute(update(main).where(main.c.id == current["id"]).values(
                    **values, local_edits=kept or None, is_active=True, updated_at=self.now))


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
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _same(a: Any, b: Any) -> bool:
    return _plain(a) == _plain(b) or (a in (None, "") and b in (None, ""))
