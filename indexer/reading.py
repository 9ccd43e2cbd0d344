"""Reading: a source's rows, normalised, into the staging database.

Reading is per row and pure Python (parsing, ids, hashes, typed values), the longest part of a
large import. A large CSV package is therefore read by several processes at once, a file at a
time each: every file goes into a staging file of its own, and this process copies their rows
into the run's stage in the package's table order (each as soon as it and those before it are
read), so the stage holds exactly what reading the files one after another would have put
there.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer import enrich
from indexer.normalize import Normalizer
from indexer.records import Problems, SourceRow
from indexer.staging import (
    STAGED_TABLES,
    Stage,
    StagedPart,
    columns_of,
    needs_conversion,
    to_sql_value,
)

if TYPE_CHECKING:
    from indexer.pipeline import RunReport

BATCH = 5000  # staged rows per insert
# A package of at least this many bytes of CSV is read by several processes; below it,
# starting them costs more than it saves.
PARALLEL_MIN_BYTES = 32 * 1024 * 1024
MAX_WORKERS = 4

Progress = Callable[[str, int], None]


def fill_stage(stage: Stage, rows: Iterable[SourceRow], normalizer: Normalizer,
               report: RunReport, progress: Progress | None = None) -> int:
    """Normalise `rows` into `stage`; returns how many source rows were read."""
    buffers: dict[str, list[list[Any]]] = {name: [] for name in STAGED_TABLES}
    column_lists = {name: columns_of(name) for name in STAGED_TABLES}
    # Only JSON, date-time and boolean columns need converting for SQLite; the rest pass as is.
    converters = {
        name: [(i, c.type) for i, c in enumerate(STAGED_TABLES[name].columns)
               if needs_conversion(c.type)]
        for name in STAGED_TABLES
    }
    seen = 0
    read: Counter[str] = Counter()  # per table: added to the report once, not once a row
    skipped: Counter[str] = Counter()

    def flush(table: str) -> None:
        stage.insert_many(table, buffers[table])
        buffers[table].clear()

    try:
        for source_row in rows:
            seen += 1
            read[source_row.table] += 1
            normalized = normalizer.normalize(source_row)
            if normalized is None:
                skipped[source_row.table] += 1
                continue
            for table, values in enrich.expand_row(source_row.table, normalized, source_row,
                                                   report.problems):
                row = list(map(values.get, column_lists[table]))
                for i, column_type in converters[table]:
                    if row[i] is not None:
                        row[i] = to_sql_value(column_type, row[i])
                if table != "service_category":
                    row += (source_row.file, source_row.line, source_row.path)
                buffers[table].append(row)
                if len(buffers[table]) >= BATCH:
                    flush(table)
            if progress and seen % 20000 == 0:
                progress("reading", seen)
    finally:
        for table, n in read.items():
            report.count(table, "read", n)
        for table, n in skipped.items():
            report.count(table, "skipped", n)
    for table in buffers:
        if buffers[table]:
            flush(table)
    return seen


@dataclass
class _Part:
    """What one worker read: its staging file, counts, problems and normaliser state."""

    stage: StagedPart  # removed once copied
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    problems: Problems = field(default_factory=Problems)
    sources_seen: set[str] = field(default_factory=set)
    defaulted_status: int = 0
    tallies: Counter[str] = field(default_factory=Counter)
    seen: int = 0


def read_into_stage(stage: Stage, loader: Any, path: Path, normalizer: Normalizer,
                    report: RunReport, progress: Progress | None = None) -> None:
    """Fill `stage` with everything `loader` reads from `path`, in several processes when the
    input is a large CSV package (see the module docstring), else in this one."""
    files = loader.files(path, report.problems) if loader.files else None
    workers = min(MAX_WORKERS, os.cpu_count() or 1, len(files or ()))
    if not files or workers < 2 or sum(f.stat().st_size for _, f in files) < PARALLEL_MIN_BYTES:
        rows = loader.read(path, report.problems) if files is None else _rows_of(
            loader.module, files, report.problems)
        seen = fill_stage(stage, rows, normalizer, report, progress)
        if progress:
            progress("reading", seen)
        return
    seen = 0
    # One task a file, largest first (the pool hands the next file to whichever worker is
    # free); each file's rows are copied into the stage in the package's order as soon as
    # that file and those before it are read, while the workers read on.
    largest_first = sorted(range(len(files)), key=lambda i: -files[i][1].stat().st_size)
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {i: pool.submit(_read_file, loader.module, normalizer.source, *files[i],
                                  stage.path.parent, stage.born_new) for i in largest_first}
        try:
            for i, (table, _file) in enumerate(files):
                part = futures[i].result()
                try:
                    stage.copy_from(part.stage, _tables_of(table))
                finally:
                    _remove(part.stage.path)
                for name, counts in part.counts.items():
                    for outcome, n in counts.items():
                        report.count(name, outcome, n)
                report.problems.extend(part.problems)
                normalizer.sources_seen |= part.sources_seen
                normalizer.defaulted_status += part.defaulted_status
                normalizer.tallies.update(part.tallies)
                seen += part.seen
                if progress:
                    progress("reading", seen)
        except BaseException:
            for future in futures.values():
                future.cancel()
            for future in futures.values():  # workers that did finish leave a file behind
                if future.done() and not future.cancelled() and future.exception() is None:
                    _remove(future.result().stage.path)
            raise


def _tables_of(table: str) -> list[str]:
    """The staged tables a source table's rows land in (a service also gives its categories)."""
    return [table, "service_category"] if table == "service" else [table]


def _read_file(module_name: str, source: str, table: str, file: Path, stage_dir: Path,
               born_new: bool) -> _Part:
    """In a worker process: read one file of a package into a staging file of its own, its
    ids indexed (see `Stage.copy_from`)."""
    from indexer.pipeline import RunReport

    report = RunReport(source=source, format="", path="")
    normalizer = Normalizer(source, report.problems)
    stage = Stage(stage_dir, born_new=born_new)
    try:
        rows = _rows_of(module_name, [(table, file)], report.problems)
        seen = fill_stage(stage, rows, normalizer, report)
        stage.conn.execute("COMMIT")
        stage.index_ids(_tables_of(table))
    except BaseException:
        stage.close()
        raise
    return _Part(stage.closed_part(), report.counts, report.problems, normalizer.sources_seen,
                 normalizer.defaulted_status, normalizer.tallies, seen)


def _rows_of(module_name: str, files: list[tuple[str, Path]],
             problems: Problems) -> Iterator[SourceRow]:
    """The rows of these tables' files, read by the loader module's `read_csv_table`."""
    module = importlib.import_module(module_name)
    for table, file in files:
        yield from module.read_csv_table(file, table, problems)


def _remove(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
