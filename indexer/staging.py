"""The staging database: a private SQLite file an import fills before touching the directory.

Parsing, validating and geocoding take most of an import's time; doing them here means the
directory stays fully usable (and writable) meanwhile, and a crash or Ctrl-C leaves it as it was.
Staged rows carry the directory's column names plus where they came from (`_file`, `_line`,
`_path`) for precise problem reports.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime

from service.directory.tables import hsds_tables, service_category

ORIGIN_COLUMNS = ("_file", "_line", "_path")
STAGED_TABLES = {**hsds_tables, "service_category": service_category}


def columns_of(table: str) -> list[str]:
    """The directory columns of a staged table, in table order."""
    return [c.name for c in STAGED_TABLES[table].columns]


def to_sql_value(column_type: Any, value: Any) -> Any:
    """A Python value as SQLite stores it for SQLAlchemy (JSON text, UTC 'YYYY-MM-DD HH:MM:SS')."""
    if value is None:
        return None
    if isinstance(column_type, JSON):
        return json.dumps(value, sort_keys=True)
    if isinstance(column_type, DateTime) and isinstance(value, datetime):
        if value.tzinfo is not None:  # stored as UTC, so "2024-05-01T09:00-04:00" stays 13:00
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(column_type, Boolean):
        return 1 if value else 0
    return value


def needs_conversion(column_type: Any) -> bool:
    """True for the column types `to_sql_value` changes (the rest pass as they are)."""
    return isinstance(column_type, (JSON, DateTime, Boolean))


@dataclass(frozen=True)
class StagedPart:
    """A closed stage's file, and which of its tables' ids are indexed (`Stage.index_ids`)."""

    path: Path
    indexed: frozenset[str]
    duplicated: frozenset[str]


class Stage:
    """A temporary SQLite file holding one import's rows."""

    def __init__(self, directory: Path | None = None, *, born_new: bool = False) -> None:
        handle = tempfile.NamedTemporaryFile(
            prefix="signpost-stage-", suffix=".sqlite", dir=directory, delete=False)
        handle.close()
        self.path = Path(handle.name)
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-262144")
        self.conn.execute("PRAGMA temp_store=MEMORY")
        self._insert_sql: dict[tuple[str, tuple[int, ...]], str] = {}  # by the columns bound
        self._columns: dict[str, list[str]] = {}
        self.duplicated: set[str] = set()  # tables with an id twice (known after `commit`)
        self._indexed: set[str] = set()  # tables whose ids are indexed (`index_ids`)
        # Rows start out 'new' (a source's first import: comparing then only demotes the few
        # the directory has), else unmarked (a re-import: comparing marks the few that are not).
        self.born_new = born_new
        op_default = " DEFAULT 'new'" if born_new else ""
        for name, table in STAGED_TABLES.items():
            cols = [c.name for c in table.columns]
            extra = ORIGIN_COLUMNS if name != "service_category" else ()
            all_cols = cols + list(extra)
            # new | changed | NULL (unchanged), set when compared (indexer.apply)
            marks_col = f", _op{op_default}" if extra else ""
            self.conn.execute(f"CREATE TABLE {name} ({', '.join(all_cols)}{marks_col})")
            self._columns[name] = all_cols
        self.conn.execute("CREATE TABLE _gone (tbl TEXT NOT NULL, id TEXT NOT NULL)")
        self.conn.execute("BEGIN")

    def insert_many(self, table: str, rows: Sequence[Sequence[Any]]) -> None:
        """Append rows given in `columns_of(table)` order, plus origin columns.

        Only the columns some row has a value in are bound: a feed fills a few of a table's
        columns, and binding a NULL costs the sqlite3 module twice what binding a string does
        (six of the ten microseconds a typical staged row took)."""
        if not rows:
            return
        columns = list(zip(*rows, strict=True))
        n = len(rows)
        used = tuple(i for i, values in enumerate(columns) if values.count(None) != n)
        sql = self._insert_sql.get((table, used))
        if sql is None:
            names = [self._columns[table][i] for i in used]
            sql = self._insert_sql[(table, used)] = (
                f"INSERT INTO {table} ({', '.join(names)}) VALUES "
                f"({', '.join('?' for _ in names)})")
        self.conn.executemany(sql, zip(*(columns[i] for i in used), strict=True))

    def update_many(self, sql: str, rows: Iterable[tuple]) -> None:
        """Run one statement per row, all in one transaction (after `commit` the connection
        autocommits, and a transaction per row costs five times the work itself)."""
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(sql, rows)
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def index_ids(self, tables: Iterable[str] | None = None) -> None:
        """Index the ids of `tables` (every table by default) for the checks that follow.

        An id index is unique where the import has no id twice (most do): `duplicated` lists
        the tables where it could not be, the only ones the duplicate check need look at."""
        for name in STAGED_TABLES if tables is None else tables:
            if name == "service_category" or name in self._indexed:
                continue
            try:
                self.conn.execute(f"CREATE UNIQUE INDEX ix_{name}_id ON {name} (id)")
            except sqlite3.IntegrityError:
                self.conn.execute(f"CREATE INDEX ix_{name}_id ON {name} (id)")
                self.duplicated.add(name)
            self._indexed.add(name)

    def closed_part(self) -> StagedPart:
        """Close this stage and describe its file for `copy_from` (another process's)."""
        self.conn.close()
        return StagedPart(self.path, frozenset(self._indexed), frozenset(self.duplicated))

    def copy_from(self, part: StagedPart, tables: Iterable[str]) -> None:
        """Append the rows of `tables` from another stage (a reading worker's, made with the
        same `born_new`, so its rows carry the marks this one's would).

        A table the part indexed (`index_ids`) is copied with its index, when this stage has
        none of its rows yet: SQLite then copies both b-trees as they are, without sorting the
        ids again."""
        self.conn.execute("COMMIT")
        self.conn.execute("ATTACH DATABASE ? AS part", (str(part.path),))
        try:
            for table in tables:
                empty = not self.conn.execute(f"SELECT 1 FROM main.{table} LIMIT 1").fetchone()
                if empty and table in part.indexed and table not in self._indexed:
                    unique = table not in part.duplicated
                    self.conn.execute(f"CREATE {'UNIQUE ' if unique else ''}INDEX ix_{table}_id "
                                      f"ON {table} (id)")
                    self._indexed.add(table)
                    if not unique:
                        self.duplicated.add(table)
                self._append(table)
        finally:
            self.conn.execute("DETACH DATABASE part")
            self.conn.execute("BEGIN")

    def _append(self, table: str) -> None:
        """`copy_from` of one table; an id already staged makes this table's id index plain."""
        copy = f"INSERT INTO main.{table} SELECT * FROM part.{table}"
        try:
            self.conn.execute(copy)  # a transaction of its own
        except sqlite3.IntegrityError:  # the unique index (the statement changed nothing)
            self.conn.execute(f"DROP INDEX ix_{table}_id")
            self.conn.execute(f"CREATE INDEX ix_{table}_id ON {table} (id)")
            self.duplicated.add(table)
            self.conn.execute(copy)

    def commit(self) -> None:
        """End the staging write transaction and index ids for the checks that follow (those
        no part brought, see `copy_from`)."""
        self.conn.execute("COMMIT")
        self.index_ids()
        self.conn.execute("ANALYZE")

    def query(self, sql: str, params: Iterable[Any] = ()) -> Iterator[tuple]:
        """Rows of a query against the stage."""
        return self.conn.execute(sql, tuple(params))

    def execute(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Run one statement and return the number of rows it changed."""
        return self.conn.execute(sql, tuple(params)).rowcount

    def count(self, table: str) -> int:
        """Number of staged rows in `table`."""
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        """Close and delete the staging file."""
        self.conn.close()
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.path) + suffix).unlink(missing_ok=True)
