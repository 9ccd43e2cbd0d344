"""A first import's search documents, built from its stage while the stage is applied.

Applying an import is one process writing the directory (SQLite has a single writer), so the
other cores would only wait; and the index rebuild after it spent half its time building
documents by reading back what the apply had just written. When every staged row is new (a
source's first import), the directory will hold for those services exactly what the stage
holds, so their documents are built from the stage instead, by a worker process that runs
during the apply. They start as soon as the stage is enriched when the directory has nothing of
the source (indexer.pipeline), and are dropped if comparing the stage then proves the apply
will do more than add rows. The duplicate check runs beside the rebuild's copying, and the
listings it changes are written again at the swap.

The stage is read through views that give its records what the apply gives them: active unless
the source said otherwise, created and updated at the apply's time.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event

from indexer.records import RECORD_TABLES
from indexer.staging import Stage, columns_of
from service.db import BUSY_TIMEOUT
from service.search.documents import LOOKUPS, build_documents
from service.search.sqlite import BUILD_CHUNK, MAX_BUILD_WORKERS, PartFile, fewer_collections

# An import of fewer services builds its documents after the apply, from the directory:
# starting a process costs more than the overlap saves.
MIN_SERVICES = 20000
STAGE_MMAP_BYTES = 1 << 32  # a stage of up to 4 GiB is mapped whole (address space, not memory)


def stage_engine(path: Path, now: datetime) -> Engine:
    """A read-only engine on a stage whose record tables read as the apply writes them."""
    uri = f"{path.resolve().as_uri()}?mode=ro"  # percent-encoded, whatever the folder's name
    # The stage's own writer (the import's process) may hold it a moment while these read:
    # they wait as the directory's writers do, not sqlite3's default five seconds, which a
    # slow or busy machine can outlast (seen as "database is locked" in a worker).
    engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT))
    stamp = "'" + now.isoformat(" ") + "'"  # how the apply's :now is stored
    meta = {"is_active": "coalesce(is_active, 1)", "created_at": stamp, "updated_at": stamp}

    @event.listens_for(engine, "connect")
    def _views(dbapi_connection: Any, _record: Any) -> None:
        # The builder looks rows up all over the stage: mapped, a page is read where it lies
        # (through SQLite's small default cache, each lookup cost several reads).
        dbapi_connection.execute(f"PRAGMA mmap_size = {STAGE_MMAP_BYTES}")
        # Unqualified names find the temp schema first, so `service` is this view.
        for table in RECORD_TABLES:
            columns = ", ".join(f"{meta[c]} AS {c}" if c in meta else c
                                for c in columns_of(table))
            dbapi_connection.execute(
                f"CREATE TEMP VIEW {table} AS SELECT {columns} FROM main.{table}")

    return engine


class StageDocuments:
    """Documents of a stage's services, being built in another process (see the module)."""

    def __init__(self, stage: Stage, now: datetime, pool: ProcessPoolExecutor) -> None:
        self.stage_path = stage.path
        self.now = now
        ids = [r[0] for r in stage.query("SELECT id FROM service ORDER BY id")]
        self.service_ids = set(ids)  # whose documents the parts will hold
        self._scratch = tempfile.TemporaryDirectory(prefix="signpost-prebuild-")
        self._pool = pool
        self._chunks: list[tuple[Future[str], list[str]]] = []
        for start in range(0, len(ids), BUILD_CHUNK):
            chunk = ids[start:start + BUILD_CHUNK]
            self._chunks.append((self._pool.submit(
                _build_in_worker, str(stage.path), now, self._scratch.name, chunk), chunk))

    @classmethod
    def start(cls, stage: Stage, now: datetime) -> StageDocuments:
        """Index the stage for the builder and start building (one process per spare core:
        the apply keeps one busy; with this one, at most MAX_BUILD_WORKERS parts)."""
        workers = max(1, min((os.cpu_count() or 1) - 1, MAX_BUILD_WORKERS - 1))
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                   initializer=fewer_collections)
        try:
            pool.submit(_ready)  # the processes start (a second's imports) while this indexes
            for table, column in LOOKUPS:
                # Partial: a column no row uses (a phone's location, often) gets an empty
                # index. A full one holds a single NULL key for every row, and from its
                # statistics the planner would rather scan the table than look anything up.
                stage.execute(f"CREATE INDEX IF NOT EXISTS ix_{table}_{column} ON {table} "
                              f"({column}) WHERE {column} IS NOT NULL")
            stage.execute("ANALYZE")
            return cls(stage, now, pool)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise

    def parts(self) -> list[Path]:
        """The part files, once every chunk is built. This process, which would otherwise
        only wait, builds chunks too: from the last one back, while the workers go on from
        the first, until they meet."""
        paths = set()
        part: PartFile | None = None
        engine = stage_engine(self.stage_path, self.now)
        try:
            with engine.connect() as conn:
                for future, chunk in reversed(self._chunks):
                    if not future.cancel():  # a worker has it, and every chunk before it
                        break
                    if part is None:
                        part = PartFile(Path(self._scratch.name) / "part-main.sqlite")
                    part.add(build_documents(conn, chunk))
        finally:
            if part is not None:
                part.close()
                paths.add(part.path)
            engine.dispose()
        paths.update(Path(f.result()) for f, _ in self._chunks if not f.cancelled())
        self._pool.shutdown()  # the workers close their files
        return sorted(paths)

    def close(self) -> None:
        """Stop the workers and remove the part files."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._scratch.cleanup()


def _ready() -> None:
    """A task that only starts a worker process."""


_engine: Engine | None = None
_part: PartFile | None = None


def _build_in_worker(stage_path: str, now: datetime, scratch: str, ids: list[str]) -> str:
    """In a worker process: append these services' documents to this process's part file."""
    global _engine, _part
    if _engine is None:
        _engine = stage_engine(Path(stage_path), now)
    path = Path(scratch) / f"part-{os.getpid()}.sqlite"
    if _part is None or _part.path != path:
        _part = PartFile(path)
    with _engine.connect() as conn:
        _part.add(build_documents(conn, ids))
    return str(path)
