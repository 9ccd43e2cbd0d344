"""The embedded search engine: SQLite FTS5 for need and place, in the directory's own file.

Documents live in `search_doc`; their text and tokens (categories with their ancestors, geohash
cells of the point, areas an area-wide service covers) in the FTS5 table `search_fts` with the
same rowid, and their point in the R*Tree `search_point`. One MATCH of
`(need) AND (cells of the search circle OR areas containing the client)` intersects need and
place inside the index; the exact radius, hard filters, scoring, totals and facets then run in
one SQL statement over that small set, ordered and limited in SQL. Rowids follow the Morton
curve of the documents' points (see CELL_SEQ_BITS), so a neighbourhood is a few rowid ranges:
FTS5 reads only those slices of a common word's doclist, and the rows scored sit on few pages.
The index is in the same
database as the records, so an edit and its reindexing commit together and every worker
process sees both at once.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from multiprocessing import get_context
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic_core import from_json, to_json
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError

from service.db import Database
from service.directory.categories import category_tree, normalise
from service.directory.schedules import hour_of_week
from service.directory.tables import service
from service.search import geo
from service.search.backend import Place
from service.search.documents import SearchDocument, build_documents
from service.search.explain import build_result, mismatches
from service.search.schemas import (
    FacetCount,
    NearMiss,
    SearchQuery,
    SearchResponse,
    SearchResult,
    Suggestion,
)
from service.search.understand import (
    STOP_WORDS,
    Need,
    broaden,
    fts_term,
    spelling_variants,
    stem,
    understand,
)

DOC_COLUMNS = (
    "key", "service_id", "name_lc", "lat", "lon", "is_area", "min_age", "max_age", "genders",
    "languages", "cost", "categories", "status", "is_referable", "capacity_status",
    "verified_at", "hours_known", "open_hours0", "open_hours1", "open_hours2", "open_certain0",
    "open_certain1", "open_certain2", "time_zone", "flags",
)
# A week's 168 hour slots are kept as three integers of 56 bits (bit i of part k: the slot
# 56 k + i): a search tests one slot for every match it scores, and the two 168-character
# '0'/'1' strings they replace were two thirds of each search_doc row (a fifth of a search's
# CPU went to reading the wider rows).
SLOT_BITS = 56

INDEX_FORMAT = 5  # bump when the index tables change: an older index is rebuilt on start

# Where a document lives in rowid order: listings with a point at (their geohash cell at the
# finest precision << CELL_SEQ_BITS) + a sequence number, so rowids follow the Morton curve and
# every geohash cell is one contiguous rowid range. A search then reads its neighbourhood's
# slice of each word's doclist (FTS5 skips the rest through its doclist index) and neighbouring
# rows of search_doc sit on the same pages. Area-wide listings, and any a full cell cannot hold,
# live above OTHER_BASE. All rowids stay below 2**53, exact in JSON.
CELL_SEQ_BITS = 21
OTHER_BASE = 1 << 51
OTHER_END = 1 << 52
# Bits of search_doc.flags: the facets and signals that would otherwise be found in strings.
FLAG_FREE, FLAG_SLIDING, FLAG_INSURANCE, FLAG_SPANISH = 1, 2, 4, 8
VOCAB_SQL = ("CREATE VIRTUAL TABLE IF NOT EXISTS {p}search_vocab USING "
             "fts5vocab({p}search_fts, 'row')")
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS {p}search_doc (
        rowid INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, service_id TEXT NOT NULL,
        name_lc TEXT NOT NULL,
        lat REAL, lon REAL, is_area INTEGER NOT NULL, min_age INTEGER, max_age INTEGER,
        genders TEXT, languages TEXT, cost TEXT, categories TEXT, status TEXT NOT NULL,
        is_referable INTEGER NOT NULL, capacity_status TEXT, verified_at TEXT,
        hours_known INTEGER NOT NULL, open_hours0 INTEGER, open_hours1 INTEGER,
        open_hours2 INTEGER, open_certain0 INTEGER, open_certain1 INTEGER,
        open_certain2 INTEGER, time_zone TEXT,
        flags INTEGER NOT NULL)""",
    # What a result shows, apart from what ranking reads: search_doc rows stay small, so the
    # thousands a broad query scores sit on few pages.
    """CREATE TABLE IF NOT EXISTS {p}search_payload (rowid INTEGER PRIMARY KEY,
        doc TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {p}ix_search_doc_service ON {p}search_doc (service_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS {p}search_fts USING fts5(
        name, organization, body, tags,
        tokenize = 'porter unicode61 remove_diacritics 2', prefix = '2 3')""",
    VOCAB_SQL,
    """CREATE VIRTUAL TABLE IF NOT EXISTS {p}search_point USING rtree(
        rowid, min_lat, max_lat, min_lon, max_lon)""",
    """CREATE TABLE IF NOT EXISTS search_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
    """INSERT OR IGNORE INTO search_meta VALUES ('generation', 0)""",
    "DROP TABLE IF EXISTS {p}search_doc_category",  # facets are counted from categories now
]
FTS_AUTOMERGE = 4  # FTS5's own default: segments merged four at a time as documents change
REBUILD_BATCH = 25000  # documents per write transaction of a rebuild (fewer, larger FTS segments)
BUILD_CHUNK = 5000  # services whose documents are built at a time
# A rebuild of at least this many services builds its documents in other processes while this
# one writes them (building is half the work, and pure Python); below it, starting a process
# costs more than it saves.
PARALLEL_REBUILD_MIN = 20000
# Processes (and so part files) that build one set of documents: the parts are attached to one
# connection to be placed and copied, and SQLite attaches at most ten databases.
MAX_BUILD_WORKERS = 4
TABLES = ("search_doc", "search_payload", "search_fts", "search_point")
PENDING = "search_pending"  # services reindexed while a rebuild runs (see `rebuild`)


def _row_values(doc: SearchDocument, cats: frozenset[str]) -> dict[str, Any]:
    elig = doc.eligibility or {}
    restricted_age = elig.get("age_kind") == "restriction"
    restricted_gender = elig.get("gender_kind") == "restriction" and elig.get("genders")
    payload = doc.display()
    languages = " " + " ".join(doc.languages) + " "
    return {
        "key": doc.key, "service_id": doc.service_id,
        "name_lc": " " + normalise(f"{doc.name} {doc.organization or ''}") + " ",
        "lat": doc.lat, "lon": doc.lon,
        "is_area": int(doc.sal_id is None),
        "min_age": elig.get("min_age") if restricted_age else None,
        "max_age": elig.get("max_age") if restricted_age else None,
        "genders": " " + " ".join(elig["genders"]) + " " if restricted_gender else None,
        "languages": languages,
        "cost": " " + " ".join(doc.cost) + " ",
        "categories": " " + " ".join(sorted(cats)) + " ",
        "status": doc.status, "is_referable": int(doc.is_referable),
        "capacity_status": doc.capacity_status, "verified_at": _iso(doc.verified_at),
        "hours_known": int(doc.hours_known), "time_zone": doc.time_zone,
        **_slot_parts("open_hours", doc.open_hours),
        **_slot_parts("open_certain", doc.open_certain),
        "flags": ((FLAG_FREE if "free" in doc.cost else 0)
                  | (FLAG_SLIDING if "sliding_scale" in doc.cost else 0)
                  | (FLAG_INSURANCE if "insurance" in doc.cost else 0)
                  | (FLAG_SPANISH if " es " in languages or " spanish " in languages else 0)),
        "doc": to_json(payload, fallback=str).decode(),  # five times json.dumps' speed
    }


def _home(cell: int | None) -> tuple[int, int]:
    """The rowid range of a document whose point is in this finest geohash cell, or has no
    point (see CELL_SEQ_BITS)."""
    if cell is None:
        return OTHER_BASE, OTHER_END
    start = cell << CELL_SEQ_BITS
    return start, start + (1 << CELL_SEQ_BITS)


_doc_columns = itemgetter(*DOC_COLUMNS)


class IndexRows(NamedTuple):
    """What one document writes to the index tables, but its rowid: built apart from the
    writing, so a large rebuild can build them in another process (see `_rebuild_rows`)."""

    home: tuple[int, int]  # the rowid range it belongs in
    doc: tuple  # search_doc's DOC_COLUMNS
    payload: str  # search_payload.doc
    fts: tuple[str, str, str, str]  # name, organization, body, tags
    point: tuple[float, float, float, float] | None  # the R*Tree box

    @classmethod
    def of(cls, doc: SearchDocument) -> IndexRows:
        cats = doc.categories_with_ancestors()
        values = _row_values(doc, cats)
        point = cell = None
        if doc.lat is not None and doc.lon is not None:
            point = (doc.lat, doc.lat, doc.lon, doc.lon)
            cell = geo.cell(doc.lat, doc.lon, geo.PRECISIONS[-1])
        return cls(_home(cell), _doc_columns(values), values["doc"],
                   (doc.name, doc.organization or "", doc.body(), doc.tags(cats, cell)), point)


class _Rowids:
    """Hands out each document's rowid in its cell's range (see CELL_SEQ_BITS), asking the
    index for a range's last rowid once (a rebuild places its documents with `_place`)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.next_in: dict[int, int] = {}  # range start -> the next free rowid in it

    def next(self, raw: Any, home: tuple[int, int]) -> int:
        start, end = home
        rowid = self._next_free(raw, start, end)
        if rowid >= end:  # a full cell: anywhere is correct, only slower
            rowid = self._next_free(raw, OTHER_BASE, OTHER_END)
            start = OTHER_BASE
        self.next_in[start] = rowid + 1
        return rowid

    def _next_free(self, raw: Any, start: int, end: int) -> int:
        if start not in self.next_in:
            last = raw.execute(
                f"SELECT max(rowid) FROM {self.prefix}search_doc WHERE rowid >= ? AND rowid < ?",
                (start, end)).fetchone()[0]
            self.next_in[start] = start if last is None else last + 1
        return self.next_in[start]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


FACET_SUMS = (
    ("free", f"(flags & {FLAG_FREE}) > 0"),
    ("sliding_scale", f"(flags & {FLAG_SLIDING}) > 0"),
    ("insurance", f"(flags & {FLAG_INSURANCE}) > 0"),
    ("has_capacity", "capacity_status = 'has_capacity'"),
    ("waitlist", "capacity_status = 'waitlist'"),
    ("es", f"(flags & {FLAG_SPANISH}) > 0"),
)
FACET_LABELS = {
    "free": ("cost", "Free"), "sliding_scale": ("cost", "Sliding scale"),
    "insurance": ("cost", "Takes insurance"), "has_capacity": ("capacity", "Has capacity"),
    "waitlist": ("capacity", "Waitlist"), "es": ("languages", "Spanish"),
}


def _facet_categories(need: Need) -> list[str]:
    """The categories counted as facets: the top level, and the children of those asked for."""
    tree = category_tree()
    wanted = [c.id for c in tree.roots()]
    for cid in sorted(need.category_ids):
        if cid in tree:
            wanted += [c.id for c in tree.children(cid) if c.id not in wanted]
    return wanted[:40]


def _facets(category_counts: list[tuple[str, int]], sums: dict[str, int],
            need: Need) -> dict[str, list[FacetCount]]:
    """Counts over everything that matched: per top-level category (and per child of the
    categories asked for), cost, capacity and language."""
    tree = category_tree()
    out: dict[str, list[FacetCount]] = {"categories": sorted(
        (FacetCount(value=cid, label=tree[cid].name, count=n) for cid, n in category_counts
         if n and cid in tree), key=lambda f: (-f.count, f.label))[:20],
        "cost": [], "capacity": [], "languages": []}
    for key, n in sums.items():
        if n:
            group, label = FACET_LABELS[key]
            out[group].append(FacetCount(value=key, label=label, count=n))
    return out


def _exact_distances(rows: list[dict[str, Any]], place: Place | None) -> None:
    """Replace the ranking's fast distance by the great-circle one on the rows shown."""
    if place is None:
        return
    for row in rows:
        if row["dist"] is not None:
            doc = _doc(row)
            if doc.get("lat") is not None:
                row["dist"] = geo.distance_mi(place.lat, place.lon, doc["lat"], doc["lon"])


def search_slots() -> int:
    """How many searches a process runs at once (see `SqliteSearchBackend.search`): its share
    of the CPUs, when a server runs several worker processes on them. `WEB_CONCURRENCY` is the
    worker count, as uvicorn reads it; `signpost serve --workers` sets it."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = int(os.environ.get("WEB_CONCURRENCY") or 1)
    return max(1, (cpus or 1) // max(1, workers))


SEARCH_SLOTS = threading.BoundedSemaphore(search_slots())


_NO_SLOTS = "0" * 168


def _slot_parts(column: str, slots: str) -> dict[str, int]:
    """A week's '0'/'1' hour slots as the integers stored for them (see SLOT_BITS)."""
    if slots == _NO_SLOTS:  # no hours known (most listings)
        return {f"{column}0": 0, f"{column}1": 0, f"{column}2": 0}
    return {f"{column}{k}": int(slots[k * SLOT_BITS:(k + 1) * SLOT_BITS][::-1] or "0", 2)
            for k in range(3)}


def _hour_set(column: str, slot: str) -> str:
    """SQL: 1 when the week's hour `slot` (an SQL expression, 0-167; -1 for unknown) is set
    in `column`'s slots (`open_hours`, `open_certain`), else 0."""
    return (f"(CASE WHEN {slot} < 0 THEN 0 "
            f"WHEN {slot} < {SLOT_BITS} THEN ({column}0 >> ({slot})) & 1 "
            f"WHEN {slot} < {2 * SLOT_BITS} THEN ({column}1 >> ({slot} - {SLOT_BITS})) & 1 "
            f"ELSE ({column}2 >> ({slot} - {2 * SLOT_BITS})) & 1 END)")


def _hour_at(column: str, slot: int) -> str:
    """SQL: 1 when the week's hour `slot` (known here) is set in `column`'s slots."""
    return f"(({column}{slot // SLOT_BITS} >> {slot % SLOT_BITS}) & 1)"


def _generation(conn: sqlite3.Connection) -> int:
    """`SqliteSearchBackend.generation` for the read path's driver connection."""
    return conn.execute("SELECT value FROM search_meta WHERE key = 'generation'").fetchone()[0]


def _doc(row: dict[str, Any]) -> dict[str, Any]:
    """The row's stored document, parsed once.

    By pydantic's JSON parser, which reads these documents in half the time `json.loads`
    takes, to the same values; a text it refuses (a lone surrogate escape, which `json`
    writes and reads) falls back to `json.loads`."""
    if isinstance(row["doc"], str):
        try:
            row["doc"] = from_json(row["doc"])
        except ValueError:
            row["doc"] = json.loads(row["doc"])
    return row["doc"]


class PrebuiltDocuments(Protocol):
    """Documents of some services built before a rebuild started (see `rebuild`)."""

    service_ids: set[str]  # the services whose documents (or lack of any) the parts hold

    def parts(self) -> list[Path]:
        """The scratch files (PartFile) holding them, once all are built."""
        ...


class Alongside(Protocol):
    """Work that may change listings, run beside a rebuild's placing and copying (one process
    writes the index there, and another core would wait)."""

    def start(self) -> None:
        """Begin (the rebuild's documents are built)."""

    def finish(self) -> tuple[Iterable[str], Path | None]:
        """Wait for the work to end; return the services whose listings it changed, and a
        part file (PartFile) with their documents built after the change (None only when it
        never started). Those documents replace theirs in the new index before it is merged
        (one edited since is written again at the swap, PENDING, as any edit is)."""
        ...


class NeedMatch(NamedTuple):
    """The FTS5 query of a need: everything that answers it, its text part alone, its
    category part alone, and whether the text part is all of it but the categories."""

    need: str
    text: str | None
    categories: str | None = None
    text_is_rest: bool = False


class SqliteSearchBackend:
    """FTS5 search over the directory's SQLite file."""

    def __init__(self, db: Database) -> None:
        if not db.is_sqlite:
            raise ValueError("the embedded search backend needs the SQLite directory")
        self.db = db
        self._vocab: dict[str, int] | None = None
        self._vocab_version: int | None = None
        self._vocab_loaded = 0.0
        self._zone_list: list[str] = []
        self._zones_version: int | None = None
        self._slot_cache: tuple[Any, str] | None = None
        self._lock = threading.Lock()

    # -- schema and writes --------------------------------------------------------------------
    def ensure_schema(self, conn: Connection | None = None, prefix: str = "") -> None:
        """Create the index tables if they are missing."""
        if conn is None:
            with self.db.engine.connect() as c:
                c.execution_options(sqlite_write=True)
                self.ensure_schema(c, prefix)
                c.commit()
            return
        for statement in SCHEMA:
            conn.exec_driver_sql(statement.format(p=prefix))

    @staticmethod
    def _bump(conn: Connection) -> None:
        conn.exec_driver_sql("UPDATE search_meta SET value = value + 1 WHERE key = 'generation'")

    def generation(self, conn: Connection) -> int:
        """A number that changes whenever the index changes (in any process)."""
        return conn.exec_driver_sql(
            "SELECT value FROM search_meta WHERE key = 'generation'").scalar_one()

    def _stored_format(self) -> int | None:
        """The format the index on disk was last rebuilt with (None: never rebuilt)."""
        with self.db.engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT value FROM search_meta WHERE key = 'format'").scalar()

    def stale_format(self) -> int | None:
        """The format of an index written by an older version (None when current or never
        rebuilt): the app refuses to serve it, `signpost serve` rebuilds it first."""
        found = self._stored_format()
        return found if found is not None and found != INDEX_FORMAT else None

    def is_current(self) -> bool:
        """Whether the index on disk has this version's format (else: rebuild it)."""
        return self._stored_format() == INDEX_FORMAT

    def _write(self, conn: Connection, docs: Iterable[SearchDocument], prefix: str = "",
               rowids: _Rowids | None = None) -> int:
        """Insert documents (whose services have no documents yet) in batches."""
        return self._write_rows(conn, map(IndexRows.of, docs), prefix, rowids)

    def _write_rows(self, conn: Connection, rows: Iterable[IndexRows], prefix: str = "",
                    rowids: _Rowids | None = None) -> int:
        """Insert documents' prepared rows, each given its rowid here."""
        self._bump(conn)
        raw = conn.connection.dbapi_connection
        if rowids is None:
            rowids = _Rowids(prefix)
        rowid_for = rowids.next
        cols = ", ".join(("rowid",) + DOC_COLUMNS)
        marks = ", ".join("?" for _ in range(len(DOC_COLUMNS) + 1))
        n = 0
        batch: dict[str, list[tuple]] = {"doc": [], "payload": [], "fts": [], "point": []}

        def flush() -> None:
            for rows in batch.values():
                rows.sort(key=lambda r: r[0])  # b-tree appends, not page splits
            raw.executemany(f"INSERT INTO {prefix}search_doc ({cols}) VALUES ({marks})",
                            batch["doc"])
            raw.executemany(f"INSERT INTO {prefix}search_payload (rowid, doc) VALUES (?, ?)",
                            batch["payload"])
            raw.executemany(f"INSERT INTO {prefix}search_fts (rowid, name, organization, body, "
                            "tags) VALUES (?, ?, ?, ?, ?)", batch["fts"])
            raw.executemany(f"INSERT INTO {prefix}search_point VALUES (?, ?, ?, ?, ?)",
                            batch["point"])
            for rows in batch.values():
                rows.clear()

        for row in rows:
            rowid = rowid_for(raw, row.home)
            batch["doc"].append((rowid, *row.doc))
            batch["payload"].append((rowid, row.payload))
            batch["fts"].append((rowid, *row.fts))
            if row.point is not None:
                batch["point"].append((rowid, *row.point))
            n += 1
            if len(batch["doc"]) >= 2000:
                flush()
        flush()
        return n

    def _delete_services(self, conn: Connection, service_ids: list[str], *,
                         pending: bool = True) -> int:
        self._bump(conn)
        if pending and conn.exec_driver_sql(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                (PENDING,)).first():
            # A rebuild is running: its new index may have been built from what this
            # transaction changes, so these services are written again at its swap.
            conn.exec_driver_sql(f"INSERT OR IGNORE INTO {PENDING} (service_id) SELECT value "
                                 "FROM json_each(?)", (json.dumps(service_ids),))
        removed = 0
        for start in range(0, len(service_ids), 500):
            chunk = json.dumps(service_ids[start:start + 500])
            rowids = [r[0] for r in conn.exec_driver_sql(
                "SELECT rowid FROM search_doc WHERE service_id IN (SELECT value FROM "
                "json_each(?))", (chunk,))]
            if not rowids:
                continue
            ids = json.dumps(rowids)
            for table in ("search_fts", "search_point", "search_payload", "search_doc"):
                conn.exec_driver_sql(f"DELETE FROM {table} WHERE rowid IN (SELECT value FROM "
                                     "json_each(?))", (ids,))
            removed += len(rowids)
        return removed

    def reindex_services(self, conn: Connection, service_ids: Iterable[str]) -> int:
        """Rewrite the documents of these services inside the caller's transaction."""
        ids = sorted(set(service_ids))
        if not ids:
            return 0
        self._delete_services(conn, ids)
        return self._write(conn, build_documents(conn, ids))

    def index(self, documents: Iterable[SearchDocument]) -> int:
        """Add or replace documents (their own transaction)."""
        with self.db.engine.connect() as conn:
            conn.execution_options(sqlite_write=True)
            n = self._write(conn, documents)
            conn.commit()
        return n

    def remove(self, service_ids: Iterable[str]) -> int:
        """Remove every document of these services (their own transaction)."""
        with self.db.engine.connect() as conn:
            conn.execution_options(sqlite_write=True)
            n = self._delete_services(conn, sorted(set(service_ids)))
            conn.commit()
        return n

    def rebuild(self, db: Database | None = None, *,
                prebuilt: PrebuiltDocuments | None = None,
                alongside: Alongside | None = None) -> int:
        """Build a complete new index beside the old one, then swap them in one transaction.

        Searches keep using the old index until the swap, so totals never drop meanwhile.
        (`db` is accepted for the protocol's sake: this engine lives in its own database.)

        The documents are built into scratch files first (by several processes when there
        are many, see `_build_parts`), placed in rowid order there (`_place`), and only then
        copied into the new tables, in rowid order: FTS5 writes a doclist once per
        transaction only while rowids ascend (each step back flushes a small segment), and
        b-trees grow by appending. Written in the order the documents were built, the same
        index took two and a half times the CPU.

        `prebuilt` holds the documents of some services built elsewhere (a first import builds
        them from its stage while it is applied, `indexer.prebuild`); only the other services'
        documents are built here. Its caller ran `prepare_rebuild` in the transaction that
        made those services, so no edit after it is missed. `alongside` runs while the
        documents are placed and copied; the documents of the services it changed then replace
        those copied, before the full-text index is merged into one segment.
        """
        if prebuilt is None:
            with self.db.engine.connect() as conn:
                conn.execution_options(sqlite_write=True)
                self.prepare_rebuild(conn)
                conn.commit()
        try:
            with self.db.session() as session:
                ids = list(session.execute(select(service.c.id).order_by(service.c.id))
                           .scalars())
            with tempfile.TemporaryDirectory(prefix="signpost-index-") as scratch:
                parts = []
                if prebuilt is not None:
                    parts = prebuilt.parts()
                    ids = [i for i in ids if i not in prebuilt.service_ids]
                if ids:
                    parts += _build_parts(self.db, ids, Path(scratch))
                if alongside is not None:
                    alongside.start()
                placed = _place(parts, Path(scratch) / "placed.sqlite")
                written = self._copy_placed(placed, parts)
            if alongside is not None:
                # Before the merge, so the index the swap brings in is still one segment.
                changed, ready = alongside.finish()
                if changed:
                    assert ready is not None  # it was started above
                    written += self._replace_in_new(sorted(set(changed)), ready)
            self._merge_segments(prefix="new_")
        except BaseException:
            if alongside is not None:
                with suppress(Exception):  # the first failure is the one to report
                    alongside.finish()
            self.abandon_rebuild()
            raise
        with self.db.engine.connect() as conn:
            conn.execution_options(sqlite_write=True)
            conn.exec_driver_sql("DROP TABLE IF EXISTS search_vocab")
            conn.exec_driver_sql("DROP TABLE IF EXISTS new_search_vocab")
            for table in TABLES:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
                conn.exec_driver_sql(f"ALTER TABLE new_{table} RENAME TO {table}")
            conn.exec_driver_sql(SCHEMA[2].format(p=""))  # ix_search_doc_service
            # Services edited while the new index was built: written again from the store,
            # under the write lock, so no edit is lost in the swap.
            edited = [r[0] for r in conn.exec_driver_sql(f"SELECT service_id FROM {PENDING}")]
            conn.exec_driver_sql(f"DROP TABLE {PENDING}")
            if edited:
                written -= self._delete_services(conn, edited, pending=False)
                written += self._write(conn, build_documents(conn, edited))
            conn.exec_driver_sql(VOCAB_SQL.format(p=""))
            conn.exec_driver_sql("INSERT INTO search_meta VALUES ('format', ?) ON CONFLICT (key) "
                                 "DO UPDATE SET value = excluded.value", (INDEX_FORMAT,))
            self._bump(conn)
            conn.commit()
        self._vocab = None
        return written

    def _replace_in_new(self, service_ids: list[str], part: Path) -> int:
        """In a rebuild's new tables, these services' documents replaced by those in `part`
        (changed alongside, see `Alongside`); returns the change in their number."""
        with self.db.engine.connect() as conn:
            conn.execution_options(sqlite_write=True)
            rowids = [r[0] for r in conn.exec_driver_sql(
                "SELECT rowid FROM new_search_doc WHERE service_id IN (SELECT value FROM "
                "json_each(?))", (json.dumps(service_ids),))]
            for table in ("new_search_fts", "new_search_point", "new_search_payload",
                          "new_search_doc"):
                conn.exec_driver_sql(f"DELETE FROM {table} WHERE rowid IN (SELECT value FROM "
                                     "json_each(?))", (json.dumps(rowids),))
            added = self._write_rows(conn, PartFile.read(part, service_ids), prefix="new_")
            conn.commit()
        return added - len(rowids)

    def prepare_rebuild(self, conn: Connection) -> None:
        """Empty new tables for a rebuild, and from now on note every service reindexed
        (PENDING) to write it again at the swap; in the caller's transaction."""
        for table in reversed(TABLES):
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS new_{table}")
        conn.exec_driver_sql("DROP TABLE IF EXISTS new_search_vocab")
        self.ensure_schema(conn, prefix="new_")
        # The new full-text index is merged into one segment once it is written
        # (`_merge_segments`): merging as it grew merged most of it twice over.
        conn.exec_driver_sql("INSERT INTO new_search_fts(new_search_fts, rank) VALUES "
                             "('automerge', 0)")
        # Indexed once the rows are in (a sort, not 400k random inserts), under its own
        # name: an index keeps its name when its table is renamed.
        conn.exec_driver_sql("DROP INDEX IF EXISTS new_ix_search_doc_service")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PENDING}")
        conn.exec_driver_sql(f"CREATE TABLE {PENDING} (service_id TEXT PRIMARY KEY)")

    def abandon_rebuild(self) -> None:
        """A rebuild that will not finish: stop noting reindexed services."""
        with self.db.engine.connect() as conn:
            conn.execution_options(sqlite_write=True)
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PENDING}")
            conn.commit()

    def _copy_placed(self, placed: Path, parts: list[Path]) -> int:
        """Copy the placed documents into the new tables in rowid order, REBUILD_BATCH at a
        time: short write transactions, so partner edits can commit between them. A batch is
        gathered from the parts into a temporary table first (one merge of the parts' rows in
        placement order), and each new table then takes its columns from there."""
        cols = PART_COLUMNS[2:]
        gather = " UNION ALL ".join(
            f"SELECT pl.rowid, {', '.join('p.' + c for c in cols)} FROM placed.placement pl "
            f"JOIN p{i}.part p ON p.rowid = pl.prow WHERE pl.part = {i} AND pl.rowid > :last "
            f"AND pl.rowid <= :upto" for i in range(len(parts)))
        doc_cols = ", ".join(("rowid",) + DOC_COLUMNS)
        copies = [  # (table and columns, what they take from the batch, which rows)
            (f"new_search_doc ({doc_cols})", doc_cols, ""),
            ("new_search_payload (rowid, doc)", "rowid, payload", ""),
            ("new_search_fts (rowid, name, organization, body, tags)",
             "rowid, name, organization, body, tags", ""),
            ("new_search_point", "rowid, min_lat, max_lat, min_lon, max_lon",
             " WHERE min_lat IS NOT NULL"),
        ]
        written, last = 0, -1
        while True:
            with self.db.engine.connect() as conn:
                raw = conn.connection.dbapi_connection
                attached = ["placed"] + [f"p{i}" for i in range(len(parts))]
                for name, path in zip(attached, [placed, *parts], strict=True):
                    raw.execute(f"ATTACH DATABASE ? AS {name}", (str(path),))
                try:
                    conn.execution_options(sqlite_write=True)
                    upto, n = conn.exec_driver_sql(
                        "SELECT max(rowid), count(*) FROM (SELECT rowid FROM placed.placement "
                        "WHERE rowid > ? ORDER BY rowid LIMIT ?)", (last, REBUILD_BATCH)).one()
                    if not n:
                        conn.rollback()
                        return written
                    conn.exec_driver_sql(f"CREATE TEMP TABLE batch (rowid INTEGER PRIMARY KEY, "
                                         f"{', '.join(cols)})")
                    conn.exec_driver_sql(f"INSERT INTO temp.batch {gather}",
                                         {"last": last, "upto": upto})
                    for target, columns, only in copies:
                        conn.exec_driver_sql(f"INSERT INTO {target} SELECT {columns} FROM "
                                             f"temp.batch{only} ORDER BY rowid")
                    conn.exec_driver_sql("DROP TABLE temp.batch")
                    conn.commit()
                finally:
                    for name in attached:
                        raw.execute(f"DETACH DATABASE {name}")
            written += n
            last = upto

    def _merge_segments(self, prefix: str = "") -> None:
        """Merge the full-text index into one segment, so a query seeks each of its tokens
        once rather than once per segment (at 400k documents this halves a short search), in
        short write transactions that partner edits can commit between."""
        step = -1000  # negative: merge across levels too, down to one segment
        command = f"INSERT INTO {prefix}search_fts({prefix}search_fts, rank) VALUES (?, ?)"
        while True:
            with self.db.engine.connect() as conn:
                conn.execution_options(sqlite_write=True)
                raw = conn.connection.dbapi_connection
                before = raw.total_changes
                conn.exec_driver_sql(command, ("merge", step))
                done = raw.total_changes - before < 2
                if done:  # edits from now on merge as they go (see `prepare_rebuild`)
                    conn.exec_driver_sql(command, ("automerge", FTS_AUTOMERGE))
                conn.commit()
            if done:
                return
            step = 1000

    def count(self) -> int:
        """Number of indexed documents."""
        with self.db.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM search_doc").scalar_one()

    # -- reading ----------------------------------------------------------------------------------
    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """A pooled connection inside one read transaction, so every statement of a search
        sees the same snapshot, used through the sqlite3 driver itself.

        A search runs three to five fixed, hand-written statements; SQLAlchemy's bookkeeping
        for each (result metadata, events, the begin and rollback of its own transaction)
        cost as much as a short search's SQL itself. Driver errors are raised as SQLAlchemy's,
        so the API still answers a locked or unreadable database with a 503.
        """
        pooled = self.db.engine.raw_connection()
        try:
            raw = pooled.dbapi_connection
            raw.execute("BEGIN")  # deferred: a read snapshot, never a write lock
            yield raw
        except sqlite3.Error as exc:
            raise DBAPIError.instance(None, None, exc, sqlite3.Error,
                                      hide_parameters=True) from exc
        finally:
            pooled.close()  # the pool rolls the transaction back (or drops a broken connection)

    def _vocabulary(self, conn: sqlite3.Connection) -> dict[str, int]:
        """Indexed words and their document counts, for spelling; reloaded at most once a
        minute after the index changed (a slightly stale vocabulary only affects spelling)."""
        generation = _generation(conn)
        now = time.monotonic()
        with self._lock:
            stale = self._vocab_version != generation and now - self._vocab_loaded > 60
            if self._vocab is None or stale:
                self._vocab = {t: n for t, n in conn.execute(
                    "SELECT term, doc FROM search_vocab WHERE term NOT GLOB '*[0-9]*'")}
                self._vocab_version = generation
                self._vocab_loaded = now
            return self._vocab

    def _need_clause(self, need: Need, vocabulary: dict[str, int]) -> tuple[
            NeedMatch | None, dict[str, list[str]]]:
        parts = []
        text_parts = []
        category_part = None
        tree = category_tree()
        top = {c for c in need.category_ids
               if not any(a.id in need.category_ids for a in (tree.ancestors(c) if c in tree
                                                              else []))}
        if top:
            category_part = "tags : (" + " OR ".join(f"c{c}" for c in sorted(top)) + ")"
            parts.append(category_part)
        corrections: dict[str, list[str]] = {}
        asked = []
        for phrase in need.phrases:
            # The phrase itself as text too: a listing that says "suboxone" ranks above one
            # that is only in the category.
            words = [w for w in normalise(phrase).split() if w not in STOP_WORDS]
            if words:
                text_parts.append("{name organization body} : (" + " AND ".join(
                    fts_term(stem(w)) for w in words) + ")")
                if phrase not in need.describing:
                    asked.append(text_parts[-1])
        if need.words:
            terms = []
            for word in need.words:
                stemmed, variants = spelling_variants(word, vocabulary)
                if variants:
                    corrections[word] = variants
                options = ([stemmed] if stemmed in vocabulary or not variants else []) + variants
                options = options or [stemmed]
                group = " OR ".join(fts_term(o) for o in options)
                terms.append(f"({group})" if len(options) > 1 else group)
            text_parts.append("{name organization body} : (" + " AND ".join(terms) + ")")
        parts += text_parts
        if not parts:
            return None, corrections
        # What a listing's text must say to count as saying what was asked: the needs
        # understood, when there are any; words about the client ("elderly") and the words
        # left over ("three kids" in "school uniforms for three kids") still find listings,
        # but do not rank them as answers.
        text = " OR ".join(f"({p})" for p in (asked or text_parts)) or None
        return NeedMatch(" OR ".join(f"({p})" for p in parts), text, category_part,
                         not asked or len(asked) == len(text_parts)), corrections

    @staticmethod
    def _place_clause(place: Place | None, radius: float) -> str | None:
        if place is None:
            return None
        tokens = geo.cover(place.lat, place.lon, radius)
        tokens.append(geo.area_token("nation"))
        if place.state:
            tokens.append(geo.area_token("state", place.state))
            if place.county:
                tokens.append(geo.area_token("county", place.state, place.county))
            if place.city:
                tokens.append(geo.area_token("city", place.state, place.city))
        if place.postal_code:
            tokens.append(geo.area_token("zip", place.postal_code))
        return "tags : (" + " OR ".join(tokens) + ")"

    def search(self, query: SearchQuery, place: Place | None, *, now: datetime | None = None
               ) -> SearchResponse:
        """Answer a query; see the module docstring for the plan.

        A process runs only its share of the CPUs' searches at once (`SEARCH_SLOTS`, see
        `search_slots`); the others wait their turn asleep. A search only computes: its SQL
        runs outside the GIL and its Python inside, so running more at once than there are
        CPUs finishes none sooner and costs each one GIL hand-overs and cache misses
        (measured with wrk at concurrency 16 on two workers and two cores: a quarter more CPU
        per search with no limit, half the context switches with one search per worker).
        """
        with SEARCH_SLOTS:
            return self._search(query, place, now=now)

    def _search(self, query: SearchQuery, place: Place | None, *, now: datetime | None
                ) -> SearchResponse:
        now = now or datetime.now(UTC)
        need = understand(query.q, query.categories)
        with self._reading() as conn:
            vocabulary = self._vocabulary(conn)
            need_clause, corrections = self._need_clause(need, vocabulary)
            rows, total, facets = self._candidates(conn, query, place, need, need_clause,
                                                   query.radius_mi, now)
            _exact_distances(rows, place)
            broadened = None
            if not total and need.category_ids and not need.chosen_ids:
                # Nothing this specific nearby ("detox"): try the parent category once.
                wider = broaden(need)
                if wider is not None:
                    need, broadened = wider
                    need_clause, more = self._need_clause(need, vocabulary)
                    corrections.update(more)
                    rows, total, facets = self._candidates(conn, query, place, need,
                                                           need_clause, query.radius_mi, now)
                    _exact_distances(rows, place)
            near_misses: list[NearMiss] = []
            if query.include_near_misses and place is not None:
                near_misses = self._near_misses(conn, query, place, need, need_clause, rows,
                                                now)
        results = [self._result(r, query, need, now) for r in rows]
        pages = max(1, math.ceil(total / query.per_page)) if total else 0
        return SearchResponse(
            total=total, page=query.page, per_page=query.per_page, pages=pages,
            near=place.as_dict() if place else None,
            understood={"categories": sorted(need.category_ids), "phrases": need.phrases,
                        "words": need.words, "corrections": corrections,
                        "broadened_to": broadened},
            results=results, near_misses=near_misses, facets=facets)

    def _filters(self, query: SearchQuery, params: dict[str, Any], *,
                 eligibility: bool = True) -> list[str]:
        where = ["d.status = 'active'"]
        if not query.include_not_referable:
            where.append("d.is_referable = 1")
        client = query.client
        if eligibility and client.age is not None:
            params["age"] = client.age
            where.append("(d.min_age IS NULL OR :age >= d.min_age)")
            where.append("(d.max_age IS NULL OR :age <= d.max_age)")
        if eligibility and client.gender in ("female", "male"):
            params["gender"] = f" {client.gender} "  # padded: "male" is inside "female"
            where.append("(d.genders IS NULL OR instr(d.genders, :gender) > 0)")
        for i, language in enumerate(query.languages):
            params[f"lang{i}"] = f" {language.lower()} "
        if query.languages:
            where.append("(" + " OR ".join(f"instr(d.languages, :lang{i}) > 0"
                                           for i in range(len(query.languages))) + ")")
        for i, cost in enumerate(query.cost):
            params[f"cost{i}"] = f" {cost} "
        if query.cost:
            where.append("(" + " OR ".join(f"instr(d.cost, :cost{i}) > 0"
                                           for i in range(len(query.cost))) + ")")
        if query.capacity:
            params["capacity"] = json.dumps(query.capacity)
            where.append("d.capacity_status IN (SELECT value FROM json_each(:capacity))")
        return where

    def _zones(self, conn: sqlite3.Connection) -> list[str]:
        version = _generation(conn)
        if self._zones_version != version:
            self._zone_list = [z for (z,) in conn.execute(
                "SELECT DISTINCT time_zone FROM search_doc WHERE time_zone IS NOT NULL")]
            self._zones_version = version
        return self._zone_list

    @staticmethod
    def _category_hit(ids: set[str], name: str, params: dict[str, Any]) -> str:
        """SQL that is 1 when a listing is in any of `ids` (their top-most ones suffice: a
        listing carries its categories' ancestors)."""
        tree = category_tree()
        top = sorted(c for c in ids if not any(
            a.id in ids for a in (tree.ancestors(c) if c in tree else [])))
        for i, cid in enumerate(top):
            params[f"{name}{i}"] = f" {cid} "
        if not top:
            return "0"
        return "(" + " OR ".join(f"instr(d.categories, :{name}{i}) > 0"
                                 for i in range(len(top))) + ")"

    @staticmethod
    def _place_slot(place: Place, at: datetime) -> int:
        from indexer.geocode import timezone_for

        zone = timezone_for(place.lat, place.lon) or "America/New_York"
        return hour_of_week(at, zone)

    def _slots(self, conn: sqlite3.Connection, at: datetime) -> str:
        zones = self._zones(conn)
        key = (tuple(zones), at.astimezone(UTC).replace(minute=0, second=0, microsecond=0))
        cached = self._slot_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        slots = {}
        for zone in zones:
            try:
                slots[zone] = hour_of_week(at, zone)
            except Exception:  # noqa: BLE001 - an unknown zone name: leave it out
                continue
        self._slot_cache = (key, json.dumps(slots))
        return self._slot_cache[1]

    def _candidates(self, conn: sqlite3.Connection, query: SearchQuery, place: Place | None,
                    need: Need, match: NeedMatch | None, radius: float, now: datetime,
                    *, eligibility: bool = True, limit: int | None = None,
                    offset: int | None = None, want_facets: bool = True
                    ) -> tuple[list[dict[str, Any]], int, dict[str, list[FacetCount]]]:
        params: dict[str, Any] = {}
        place_clause = self._place_clause(place, radius)
        clauses = [c for c in (match.need if match else None, place_clause) if c]
        where = self._filters(query, params, eligibility=eligibility)
        if clauses:
            params["match"] = " AND ".join(f"({c})" for c in clauses)
            # No bm25(): it counts every document holding each term (a full scan of common
            # words' lists), which costs far more than the MATCH itself. Text relevance is
            # scored below from where the words appear instead.
            source = ("(SELECT rowid FROM search_fts WHERE search_fts MATCH :match) h "
                      "JOIN search_doc d ON d.rowid = h.rowid")
        else:
            source = "(SELECT rowid FROM search_doc) h JOIN search_doc d ON d.rowid = h.rowid"
        if place is not None:
            # Equirectangular distance: within 0.5% of the great circle at these radii, with no
            # trigonometry per row; results shown carry the exact distance (see _result).
            # Filtered on its square (no sqrt per row); the page's rows get theirs in Python.
            params.update(lat=place.lat, lon=place.lon,
                          coslat2=math.cos(math.radians(place.lat)) ** 2,
                          radius2=(radius / 69.09) ** 2,
                          decay=69.09 / max(1.0, radius / 2))
            distance = ("((d.lat - :lat) * (d.lat - :lat) + (d.lon - :lon) * "
                        "(d.lon - :lon) * :coslat2)")
        else:
            distance = "NULL"
        at = query.open_at or (now if query.open_now else None)
        slot_expr = "0"
        if at is not None:
            params["slots"] = self._slots(conn, at)
            slot_expr = "coalesce(json_extract(:slots, '$.\"' || d.time_zone || '\"'), -1)"
            where.append(f"d.hours_known = 1 AND {_hour_set('d.open_hours', slot_expr)}")
        # Whether any listing is in a category asked for: when none is, every match came
        # through its text (one cheap MATCH ... LIMIT 1 saves per-row tests).
        in_category = match is not None and match.categories is not None and self._any(
            conn, match.categories, None)
        category_hit = (f"(2.0 * {self._category_hit(need.primary_ids, 'pcat', params)}"
                        f" + 1.0 * {self._category_hit(need.category_ids, 'cat', params)})"
                        ) if in_category else "0"
        language = (query.client.language or "").lower()
        # No language asked: no listing earns the language bonus (not even one that names no
        # language and stores "  "), so the term is left out rather than tested on every row.
        if language:
            params["client_lang"] = f" {language} "
        covers = [i.lower() for i in query.client.insurance]
        for i, cover in enumerate(covers):
            params[f"ins{i}"] = f" {cover} "
        insurance_hit = ("(" + " OR ".join(f"instr(d.cost, :ins{i}) > 0"
                                           for i in range(len(covers))) + ")") if covers else "0"
        params["stale_before"] = now.replace(year=now.year - 1).isoformat()
        # Words of the need found in the listing's name or organization (matched listings hold
        # every word somewhere; in the name counts most), each at the start of a word there
        # ("ged" is not in "managed"). The needs understood weigh twice the rest (words about
        # the client, words left over): "GED" in a name says more than "class" does for "a GED
        # class".
        asked = [p for p in need.phrases if p not in need.describing]
        rest = 0.5 if asked else 1.0
        terms = [(normalise(p), 1.0) for p in asked] + [
            (w, rest) for w in (normalise(p) for p in [*need.describing, *need.words])]
        terms = [(w, weight) for w, weight in terms if w]
        terms = terms[:6]
        for i, (word, _) in enumerate(terms):
            params[f"word{i}"] = " " + word
        name_hits = ("((" + " + ".join(f"{weight:.1f} * (instr(d.name_lc, :word{i}) > 0)"
                                       for i, (_, weight) in enumerate(terms))
                     + f") / {sum(weight for _, weight in terms):.1f})") if terms else "0"
        # Listings whose text (not only their category) says what was asked.
        text_hit = "0"
        if match is not None and match.text and match.text_is_rest and not in_category:
            # Every match came through the text: no second MATCH, no test per row.
            text_hit = "1"
        elif match is not None and match.text:
            # The matches in two disjoint parts, those whose text says it and the rest, each
            # read once from the index: no set to build and probe per row.
            params["text_match"] = f"({match.text})" + (f" AND ({place_clause})"
                                                        if place_clause else "")
            params["rest_match"] = f"({params['match']}) NOT ({match.text})"
            source = ("(SELECT rowid, 1 AS text_hit FROM search_fts WHERE search_fts MATCH "
                      ":text_match UNION ALL SELECT rowid, 0 FROM search_fts WHERE search_fts "
                      "MATCH :rest_match) h JOIN search_doc d ON d.rowid = h.rowid")
            text_hit = "d.text_hit"
        score = (
            f"{category_hit}"
            f" + 1.5 * {text_hit}"
            + f" + 2.0 * {name_hits}"
            + (" + 3.0 * (CASE WHEN d.is_area = 1 THEN 0.4 ELSE exp(-sqrt(d.dist2) * :decay) END)"
               if place is not None else "")
            + (" + 0.5 * (instr(d.languages, :client_lang) > 0)" if language else "")
            + " + 0.4 * (CASE d.capacity_status WHEN 'has_capacity' THEN 1"
              " WHEN 'no_capacity' THEN -1 WHEN 'waitlist' THEN -0.5 ELSE 0 END)"
            + " + 0.3 * (d.verified_at IS NOT NULL AND d.verified_at >= :stale_before)"
            + f" + 0.4 * {insurance_hit}"
            + f" + 0.2 * (d.flags & {FLAG_FREE})"
        )
        if at is None and place is not None:
            # "Open now" as a ranking signal, in the client's zone (listings within the radius
            # share it but for a few near a border); the open_now filter is exact per listing.
            score += f" + 0.3 * {_hour_at('d.open_certain', self._place_slot(place, now))}"
        by_distance = query.sort != "relevance" and place is not None
        order = "dist2 IS NULL, dist2, score DESC, rowid" if by_distance else "score DESC, rowid"
        params["limit"] = limit if limit is not None else query.per_page
        params["offset"] = offset if offset is not None else (query.page - 1) * query.per_page
        # One statement: the MATCH runs once, and the page, the total and the facets are all
        # read from the same materialised set. The page is a top-k sort (no window over every
        # match); facets are counted per distinct category set (a few hundred at most) and
        # added up here, rather than testing every facet's category on every match.
        # Ranked by relevance, only the page's rows need their distance: it is worked out
        # again for them (the same expression, so the same value) rather than written into f
        # for every match.
        page_distance, kept = ("p.dist2", "dist2, ") if by_distance else (distance, "")
        f_distance = "d.dist2 AS dist2, " if by_distance else ""
        parts = [
            f"SELECT 0 AS kind, p.rowid, 69.09 * sqrt({page_distance}), p.score, pl.doc, "
            f"p.categories, NULL AS n FROM (SELECT rowid, {kept}score, categories FROM f "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset) p "
            + ("" if by_distance else "JOIN search_doc d ON d.rowid = p.rowid ")
            + "JOIN search_payload pl ON pl.rowid = p.rowid"]
        if want_facets:
            parts.append("SELECT 3, NULL, NULL, NULL, "
                         + " || ',' || ".join(f"coalesce(sum({expr}), 0)" for _, expr in FACET_SUMS)
                         + ", categories, count(*) FROM f GROUP BY categories")
        else:
            parts.append("SELECT 1, NULL, NULL, NULL, NULL, NULL, count(*) FROM f")
        distance_filter = "WHERE d.is_area = 1 OR d.dist2 <= :radius2" if place is not None \
            else ""
        # The distance is named once in the inner select; SQLite flattens it into f, so each
        # match is read from search_doc once and written once.
        sql = (f"WITH f AS MATERIALIZED (SELECT d.rowid AS rowid, {f_distance}"
               f"{score} AS score, d.flags AS flags, d.capacity_status AS capacity_status, "
               f"d.categories AS categories FROM (SELECT d.rowid AS rowid, {distance} AS dist2, "
               "d.is_area AS is_area, d.categories AS categories, d.languages AS languages, "
               "d.cost AS cost, d.flags AS flags, d.capacity_status AS capacity_status, "
               "d.verified_at AS verified_at, d.open_certain0 AS open_certain0, "
               "d.open_certain1 AS open_certain1, d.open_certain2 AS open_certain2, "
               f"d.name_lc AS name_lc, {'h.text_hit' if text_hit == 'd.text_hit' else '0'} "
               f"AS text_hit FROM {source} WHERE {' AND '.join(where)}) d "
               f"{distance_filter}) " + " UNION ALL ".join(parts))
        rows: list[dict[str, Any]] = []
        total = 0
        category_counts: dict[str, int] = {}
        sums = dict.fromkeys((k for k, _ in FACET_SUMS), 0)
        names = list(sums)
        for kind, rowid, dist, score_value, doc, categories, n in conn.execute(sql, params):
            if kind == 0:
                rows.append({"rowid": rowid, "dist": dist, "score": score_value,
                             "doc": doc, "categories": categories})
            elif kind == 1:
                total = n
            else:
                total += n
                for name, value in zip(names, map(int, doc.split(",")), strict=True):
                    sums[name] += value
                if want_facets:
                    for cid in categories.split():
                        category_counts[cid] = category_counts.get(cid, 0) + n
        if query.sort == "relevance" or place is None:
            rows.sort(key=lambda r: (-r["score"], r["rowid"]))
        else:
            rows.sort(key=lambda r: (r["dist"] is None, r["dist"] or 0.0, -r["score"],
                                     r["rowid"]))
        facets: dict[str, list[FacetCount]] = {}
        if want_facets and total:
            facet_ids = _facet_categories(need)
            facets = _facets([(cid, category_counts.get(cid, 0)) for cid in facet_ids], sums,
                             need)
        return rows, total, facets

    @staticmethod
    def _any(conn: sqlite3.Connection, clause: str, place_clause: str | None) -> bool:
        """Whether any document matches the clause (within the place)."""
        return conn.execute(
            "SELECT 1 FROM search_fts WHERE search_fts MATCH ? LIMIT 1",
            (f"({clause})" + (f" AND ({place_clause})" if place_clause else ""),)
        ).fetchone() is not None

    def _near_misses(self, conn: sqlite3.Connection, query: SearchQuery, place: Place, need: Need,
                     need_clause: NeedMatch | None, found: list[dict[str, Any]], now: datetime
                     ) -> list[NearMiss]:
        wider = min(query.radius_mi * 2, 250.0)
        rows, _, _ = self._candidates(conn, query, place, need, need_clause, wider, now,
                                      eligibility=False, limit=query.per_page * 4, offset=0,
                                      want_facets=False)
        _exact_distances(rows, place)
        seen = {r["rowid"] for r in found}
        misses: list[NearMiss] = []
        for row in rows:
            if row["rowid"] in seen:
                continue
            missed = mismatches(_doc(row), query)
            if row["dist"] is not None and row["dist"] > query.radius_mi:
                from service.search.schemas import Note
                missed.insert(0, Note(code="distance", params={
                    "miles": round(row["dist"], 1), "radius_mi": query.radius_mi},
                    text=f"{row['dist']:.1f} mi, beyond {query.radius_mi:g}"))
            if missed:
                misses.append(NearMiss(result=self._result(row, query, need, now), missed=missed))
            if len(misses) >= query.per_page:
                break
        return misses

    def _result(self, row: dict[str, Any], query: SearchQuery, need: Need,
                now: datetime) -> SearchResult:
        return build_result(_doc(row), distance=row["dist"], score=row["score"],
                            categories=row["categories"].split(), query=query, need=need,
                            now=now)

    def suggest(self, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Categories by name, then service names, starting with `prefix`."""
        prefix = prefix.strip()
        if len(prefix) < 2:
            return []
        tree = category_tree()
        out = [Suggestion(kind="category", id=c.id, label=c.name)
               for c in tree.search_names(prefix, limit=limit)]
        words = normalise(prefix).split()  # letters and digits only: nothing FTS5 could parse
        if words and len(out) < limit:
            match = "name : (" + " ".join(fts_term(w) + ("*" if i == len(words) - 1 else "")
                                          for i, w in enumerate(words)) + ")"
            with self.db.engine.connect() as conn:
                rows = conn.exec_driver_sql(
                    "SELECT DISTINCT d.service_id, json_extract(pl.doc, '$.name') FROM search_fts "
                    "JOIN search_doc d ON d.rowid = search_fts.rowid JOIN search_payload pl ON "
                    "pl.rowid = d.rowid WHERE search_fts MATCH ? "
                    "AND d.status = 'active' ORDER BY rank LIMIT ?",
                    (match, limit - len(out))).all()
            out += [Suggestion(kind="service", id=sid, label=name) for sid, name in rows]
        return out[:limit]




# A rebuild's scratch table of built documents: where each belongs (its rowid range) and what
# it writes to each index table.
PART_COLUMNS = ("home_start", "home_end") + DOC_COLUMNS + (
    "payload", "name", "organization", "body", "tags", "min_lat", "max_lat", "min_lon",
    "max_lon")


def _build_parts(db: Database, ids: list[str], scratch: Path) -> list[Path]:
    """Build the documents of these services into scratch files (table `part`), BUILD_CHUNK
    services at a time; return the files.

    A large rebuild builds them in worker processes, one file each, using every core; the
    workers only read the directory, and this process only waits.
    """
    chunks = [ids[i:i + BUILD_CHUNK] for i in range(0, len(ids), BUILD_CHUNK)]
    workers = min(os.cpu_count() or 1, len(chunks), MAX_BUILD_WORKERS)
    if len(ids) < PARALLEL_REBUILD_MIN or workers < 2:
        path = scratch / "part-0.sqlite"
        part = PartFile(path)
        for chunk in chunks:
            with db.engine.connect() as conn:
                part.add(build_documents(conn, chunk))
        part.close()
        return [path]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=fewer_collections) as pool:
        # Each worker appends to its own file; the files are closed when the pool shuts down.
        paths = set(pool.map(_build_part_in_worker, [db.url] * len(chunks),
                             [str(scratch)] * len(chunks), chunks))
    return sorted(Path(p) for p in paths)


class PartFile:
    """A scratch file that built documents are appended to (table `part`, PART_COLUMNS)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute(f"CREATE TABLE IF NOT EXISTS part ({', '.join(PART_COLUMNS)})")
        self.insert = (f"INSERT INTO part VALUES "
                       f"({', '.join('?' for _ in PART_COLUMNS)})")

    def add(self, docs: Iterable[SearchDocument]) -> None:
        rows = []
        for doc in docs:
            row = IndexRows.of(doc)
            rows.append((*row.home, *row.doc, row.payload, *row.fts,
                         *(row.point or (None, None, None, None))))
        self.conn.execute("BEGIN")
        self.conn.executemany(self.insert, rows)
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    @staticmethod
    def read(path: Path, service_ids: list[str]) -> Iterator[IndexRows]:
        """The documents of these services in a part file, as `add` wrote them."""
        doc_end = 2 + len(DOC_COLUMNS)  # home_start, home_end, then DOC_COLUMNS
        conn = sqlite3.connect(path)
        try:
            for row in conn.execute("SELECT * FROM part WHERE service_id IN (SELECT value "
                                    "FROM json_each(?)) ORDER BY key",
                                    (json.dumps(service_ids),)):
                point = row[doc_end + 5:doc_end + 9]
                yield IndexRows((row[0], row[1]), tuple(row[2:doc_end]), row[doc_end],
                                tuple(row[doc_end + 1:doc_end + 5]),
                                None if point[0] is None else tuple(point))
        finally:
            conn.close()


def fewer_collections() -> None:
    """In a process that builds documents: collect its youngest objects less often. Building
    makes millions of short-lived objects, freed as they go; scanning them every 700 new
    ones cost a twentieth of the building."""
    gc.set_threshold(20000, 20, 20)


_worker_db: Database | None = None
_worker_part: PartFile | None = None


def _build_part_in_worker(url: str, scratch: str, ids: list[str]) -> str:
    """In a rebuild's worker process: append these services' documents to this process's
    scratch file; return its path."""
    global _worker_db, _worker_part
    if _worker_db is None or _worker_db.url != url:
        _worker_db = Database(url)
    path = Path(scratch) / f"part-{os.getpid()}.sqlite"
    if _worker_part is None or _worker_part.path != path:
        _worker_part = PartFile(path)
    with _worker_db.engine.connect() as conn:
        _worker_part.add(build_documents(conn, ids))
    return str(path)


def _place(parts: list[Path], path: Path) -> Path:
    """Give every built document its rowid (see CELL_SEQ_BITS): the next places of its cell's
    range in key order, or, when a cell is full, the next places above the area-wide
    listings. Written to `path`'s table `placement` (rowid -> part number and rowid there);
    returns `path`. Only the narrow columns are sorted: the documents stay in their parts
    until `_copy_placed` reads them in this order."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        names = [f"p{i}" for i in range(len(parts))]
        for name, part in zip(names, parts, strict=True):
            conn.execute(f"ATTACH DATABASE ? AS {name}", (str(part),))
        conn.execute("CREATE TABLE placement (rowid INTEGER PRIMARY KEY, part INTEGER NOT NULL, "
                     "prow INTEGER NOT NULL)")
        every = " UNION ALL ".join(f"SELECT {i} AS part, rowid AS prow, home_start, home_end, "
                                   f"key FROM {name}.part" for i, name in enumerate(names))
        ranked = (f"SELECT part, prow, key, home_start + row_number() OVER (PARTITION BY "
                  f"home_start ORDER BY key) - 1 AS place, home_end FROM ({every})")
        conn.execute("BEGIN")
        placed = conn.execute(f"INSERT INTO placement (rowid, part, prow) SELECT place, part, "
                              f"prow FROM ({ranked}) WHERE place < home_end ORDER BY place"
                              ).rowcount
        built = sum(conn.execute(f"SELECT count(*) FROM {name}.part").fetchone()[0]
                    for name in names)
        if placed < built:  # some cell was full: rank everything again for the rest
            conn.execute(f"INSERT INTO placement (rowid, part, prow) SELECT max(?, (SELECT "
                         f"max(rowid) FROM placement)) + row_number() OVER (ORDER BY key), "
                         f"part, prow FROM ({ranked}) WHERE place >= home_end ORDER BY key",
                         (OTHER_BASE - 1,))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return path
