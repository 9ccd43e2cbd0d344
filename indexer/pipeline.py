"""An import run: read -> normalise -> stage -> check and enrich -> apply in one transaction.

The long part (reading, parsing, geocoding) fills a private staging file, so the directory
stays readable and writable meanwhile and a crash or Ctrl-C leaves it exactly as it was. The
apply step then writes only what changed, in one short transaction, keeping partners' local
edits unless the source itself changed the same field (such conflicts go to an admin list).
A run that would deactivate more than a fifth of a source stops unless forced.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from indexer import enrich, prebuild
from indexer.apply import Applier
from indexer.loaders import find_loader
from indexer.normalize import Normalizer
from indexer.prebuild import StageDocuments
from indexer.reading import read_into_stage
from indexer.records import FOREIGN_KEYS, RECORD_TABLES, Problem, Problems
from indexer.staging import STAGED_TABLES, Stage
from service.db import Database
from service.directory.tables import import_run
from service.search.service import rebuilds_embedded_index, refresh_index
from service.search.sqlite import SqliteSearchBackend

log = logging.getLogger(__name__)

DEACTIVATION_LIMIT = 0.2

Progress = Callable[[str, int], None]


class _DryRun(Exception):
    """Leaves the apply transaction by rolling it back."""


class ImportStopped(RuntimeError):
    """The run stopped before changing anything (see the report's message)."""

    def __init__(self, report: RunReport) -> None:
        super().__init__(report.message)
        self.report = report


@dataclass
class RunReport:
    """What an import did: counts per table and outcome, geocoding precision, every problem."""

    source: str
    format: str
    path: str
    run_id: int | None = None
    status: str = "running"
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    precision: Counter[str] = field(default_factory=Counter)
    problems: Problems = field(default_factory=Problems)
    message: str = ""
    changed_service_ids: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)  # per phase

    def count(self, table: str, outcome: str, n: int = 1) -> None:
        """Add `n` to one table's outcome."""
        counts = self.counts.get(table)
        if counts is None:
            counts = self.counts[table] = Counter()
        counts[outcome] += n

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON types (stored on the import run)."""
        return {
            "tables": {t: dict(c) for t, c in sorted(self.counts.items())},
            "precision": dict(self.precision),
            "errors": len(self.problems.errors),
            "warnings": len(self.problems) - len(self.problems.errors),
            "seconds": self.seconds,
        }

    def lines(self, *, max_problems: int = 50) -> list[str]:
        """A human summary for the command line."""
        out = [f"{self.status}: {self.source} ({self.format}) from {self.path}"]
        if self.message:
            out.append(self.message)
        for table in sorted(self.counts, key=_table_order):
            counts = self.counts[table]
            parts = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if v)
            out.append(f"  {table}: {parts}")
        if self.precision:
            out.append("  locations by geocoding precision: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.precision.items())))
        errors = self.problems.errors
        out.append(f"  problems: {len(errors)} errors, {len(self.problems) - len(errors)} "
                   "warnings")
        shown = sorted(self.problems, key=lambda p: p.severity != "error")[:max_problems]
        out += [f"    {p}" for p in shown]
        if len(self.problems) > max_problems:
            out.append(f"    ... {len(self.problems) - max_problems} more "
                       "(signpost index problems RUN_ID lists them all)")
        return out


class _Clock:
    """Records how long each phase of a run took, on the report."""

    def __init__(self, report: RunReport) -> None:
        self.report = report
        self.last = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.report.seconds[phase] = round(now - self.last, 2)
        self.last = now


def _table_order(table: str) -> int:
    order = list(STAGED_TABLES)
    return order.index(table) if table in order else len(order)


def load(
    db: Database,
    path: Path,
    *,
    format: str | None = None,
    source: str | None = None,
    dry_run: bool = False,
    force: bool = False,
    geocoder: Any = None,
    progress: Progress | None = None,
    stage_dir: Path | None = None,
) -> RunReport:
    """Import `path` into the directory and return the run's report.

    Raises ImportStopped (nothing changed) when the run would deactivate more than a fifth of
    a source without `force`, or when nothing could be read at all.
    """
    loader = find_loader(path, format)
    source = source or loader.default_source
    report = RunReport(source=source, format=loader.format, path=str(path))
    report.run_id = _start_run(db, report)
    stage = Stage(stage_dir, born_new=db.is_sqlite and not _holds_any_of(db, source))
    prebuilt: StageDocuments | None = None

    def settle_prebuild(applier: Applier) -> None:
        """Once the stage is compared: documents are built from it only if the apply will
        only add rows."""
        nonlocal prebuilt
        if prebuilt is not None and not applier.adds_only:
            prebuilt.close()  # begun on a guess (below) that the comparison proved wrong
            prebuilt = None
        elif prebuilt is None and applier.adds_only and not dry_run:
            prebuilt = _start_prebuild(db, stage, applier.now)

    try:
        normalizer = Normalizer(source, report.problems)
        clock = _Clock(report)
        read_into_stage(stage, loader, path, normalizer, report, progress)
        clock.lap("read")
        normalizer.report_totals(path.name)
        stage.commit()
        if not any(stage.count(t) for t in STAGED_TABLES):
            report.status = "failed"
            report.message = "nothing could be read; the directory was not changed"
            raise ImportStopped(report)
        zips = enrich.ZipLookups(stage)  # in a thread, while the stage is checked
        _check_duplicates(stage, report)
        _check_references(stage, report)
        clock.lap("check")
        enrich.enrich_stage(stage, report, geocoder=geocoder, progress=progress, zips=zips)
        clock.lap("enrich")
        _count_service_states(stage, report)
        if progress:
            progress("applying", 0)
        applier = Applier(db, stage, sorted(normalizer.sources_seen),
                          before_lock=settle_prebuild)
        if stage.born_new and normalizer.sources_seen == {source} and not dry_run:
            # The directory has nothing of this source, so the apply will almost surely only
            # add rows: the documents start building now, while the stage is compared (that
            # only writes to the stage where the guess is wrong, and then they are dropped).
            prebuilt = _start_prebuild(db, stage, applier.now)
        with applier:
            plan = applier.plan()
            for table, counts in plan.counts.items():
                for outcome, n in counts.items():
                    report.count(table, outcome, n)
            _guard_deactivation(plan, report, force)
            if dry_run:
                report.status = "dry_run"
                report.message = "dry run: nothing was written"
                raise _DryRun
            report.changed_service_ids = applier.apply(report.run_id)
            for table, n in applier.conflicts.items():  # local edits the source overrode
                report.count(table, "edit_conflict", n)
            if prebuilt is not None:  # edits from the moment these services exist are noted
                SqliteSearchBackend(db).prepare_rebuild(applier.conn)
            report.status = "done"
        clock.lap("apply")
    except _DryRun:
        pass
    except ImportStopped:
        _close(stage, prebuilt)
        if report.status == "running":
            report.status = "stopped"
        _finish_run(db, report)
        raise
    except BaseException as exc:
        _close(stage, prebuilt)
        report.status = "failed"
        report.message = f"import failed: {type(exc).__name__}: {exc}; the directory was not " \
                         "changed"
        _finish_run(db, report)
        raise
    if prebuilt is None:
        stage.close()  # only the documents built from it need it longer
    try:
        _after_apply(db, report, prebuilt)
    except BaseException:
        if prebuilt is not None and report.status == "done":
            SqliteSearchBackend(db).abandon_rebuild()
        raise
    finally:
        _close(stage, prebuilt)
    _finish_run(db, report)
    return report


def _after_apply(db: Database, report: RunReport, prebuilt: StageDocuments | None) -> None:
    """Group duplicates and bring the search index up to date."""
    from indexer.duplicates import DuplicateCheck, find_duplicates

    clock = _Clock(report)
    if report.status != "done":
        report.count("search", "indexed", refresh_index(db, report.changed_service_ids))
        clock.lap("index")
        return
    if prebuilt is not None:
        # The documents were built from the stage: the duplicate check runs beside the
        # rebuild's copying, and the listings it changes are written again at the swap.
        check = DuplicateCheck(db)
        try:
            indexed = refresh_index(db, report.changed_service_ids, prebuilt=prebuilt,
                                    alongside=check)
        finally:
            check.close()
        report.changed_service_ids |= check.touched
        clock.lap("index")
        report.seconds["duplicates_beside_index"] = check.seconds
    else:
        report.changed_service_ids |= find_duplicates(db)
        clock.lap("duplicates")
        indexed = refresh_index(db, report.changed_service_ids)
        clock.lap("index")
    with db.session() as session:
        report.count("service", "listed_as_duplicate", _duplicates(session, report.source))
    report.count("search", "indexed", indexed)


def _holds_any_of(db: Database, source: str) -> bool:
    """Whether the directory has any row of this source (else its import only adds rows)."""
    from service.directory.tables import hsds_tables

    with db.session() as session:
        return any(session.execute(select(t.c.id).where(t.c.record_source == source).limit(1))
                   .first() for t in hsds_tables.values())


def _start_prebuild(db: Database, stage: Stage, now: datetime) -> StageDocuments | None:
    """Build the search documents from the stage during an apply that only adds rows: the
    directory will then hold exactly what the stage does for those services (see
    indexer.prebuild)."""
    services = stage.count("service")
    if services < prebuild.MIN_SERVICES or not rebuilds_embedded_index(db, services):
        return None
    return StageDocuments.start(stage, now)


def _close(stage: Stage, prebuilt: StageDocuments | None) -> None:
    try:
        if prebuilt is not None:
            prebuilt.close()
    finally:
        stage.close()


def _check_duplicates(stage: Stage, report: RunReport) -> None:
    """The same id twice in one source: keep the first row, report the others."""
    for table in STAGED_TABLES:
        if table == "service_category":
            stage.execute("DELETE FROM service_category WHERE rowid NOT IN (SELECT min(rowid) "
                          "FROM service_category GROUP BY service_id, category_id)")
            continue
        if table not in stage.duplicated:
            continue
        dupes = list(stage.query(
            f"SELECT t.record_source_id, t._file, t._line, t._path, t.row_hash, f.row_hash "
            f"FROM {table} t JOIN (SELECT id, min(rowid) AS first, row_hash FROM {table} "
            f"GROUP BY id HAVING count(*) > 1) f ON t.id = f.id AND t.rowid <> f.first"))
        for source_id, file, line, path, row_hash, first_hash in dupes:
            if row_hash != first_hash or not path:
                # Nested JSON repeats the same object in several places: that is not an error.
                report.problems.error(file, line, "id", f"duplicate id {source_id!r}; the "
                                      "first row with this id was kept", table=table,
                                      source_id=source_id)
                report.count(table, "duplicate")
        if dupes:
            # Nested JSON links one object from several parents: keep every link it was given.
            for fk in FOREIGN_KEYS.get(table, {}):
                stage.execute(
                    f"UPDATE {table} SET {fk} = (SELECT d.{fk} FROM {table} d WHERE d.id = "
                    f"{table}.id AND d.{fk} IS NOT NULL AND d._path IS NOT NULL LIMIT 1) "
                    f"WHERE {fk} IS NULL AND _path IS NOT NULL AND id IN (SELECT id FROM "
                    f"{table} GROUP BY id HAVING count(*) > 1)")
            stage.execute(f"DELETE FROM {table} WHERE rowid NOT IN (SELECT min(rowid) FROM "
                          f"{table} GROUP BY id)")


def _check_references(stage: Stage, report: RunReport) -> None:
    """A reference to a row that is not in the import: keep the row, drop the reference."""
    for table, fks in FOREIGN_KEYS.items():
        links = dict(fks)
        if table == "attribute":
            links["link_id"] = "*"
        for fk, target in links.items():
            if target == "*":
                # One lookup per table (a union of every id was built into a temporary index
                # first: four times slower at 400k).
                missing_sql = f"{fk} IS NOT NULL AND " + " AND ".join(
                    f"NOT EXISTS (SELECT 1 FROM {t} WHERE {t}.id = {table}.{fk})"
                    for t in ("service", "organization", "location", "service_at_location"))
                flag = "unlinked"
            else:
                missing_sql = f"{fk} IS NOT NULL AND {fk} NOT IN (SELECT id FROM {target})"
                flag = "kept_without_parent"
            rows = list(stage.query(
                f"SELECT record_source_id, _file, _line FROM {table} WHERE {missing_sql}"))
            if not rows:
                continue
            what = "record" if target == "*" else target
            for source_id, file, line in rows[:1000]:
                report.problems.error(file, line, fk, f"refers to a {what} that is not in the "
                                      "import; row kept without the link", table=table,
                                      source_id=source_id)
            if len(rows) > 1000:
                report.problems.error(rows[0][1], None, fk, f"{len(rows) - 1000} more rows "
                                      "refer to missing records", table=table)
            report.count(table, flag, len(rows))
            stage.execute(f"UPDATE {table} SET {fk} = NULL WHERE {missing_sql}")


def _duplicates(session: Any, source: str) -> int:
    from sqlalchemy import func

    from service.directory.tables import service
    return session.execute(select(func.count()).select_from(service)
                           .where(service.c.record_source == source)
                           .where(service.c.duplicate_of.is_not(None))).scalar_one()


def _count_service_states(stage: Stage, report: RunReport) -> None:
    """How many imported services are hidden, inactive or not to be referred to."""
    hidden, inactive, not_referable = next(stage.query(
        "SELECT coalesce(sum(is_hidden = 1), 0), coalesce(sum(status = 'inactive'), 0), "
        "coalesce(sum(is_referable = 0), 0) FROM service"))
    for outcome, n in (("hidden", hidden), ("inactive", inactive),
                       ("not_referable", not_referable)):
        if n:
            report.count("service", outcome, n)


def _guard_deactivation(plan: Any, report: RunReport, force: bool) -> None:
    for table in RECORD_TABLES:
        active = plan.active_before.get(table, 0)
        going = plan.counts.get(table, {}).get("deactivated", 0)
        if active and going > DEACTIVATION_LIMIT * active and not force:
            report.status = "stopped"
            report.message = (
                f"stopped: this run would deactivate {going} of {active} active {table} "
                f"records of {report.source} (more than {int(DEACTIVATION_LIMIT * 100)}%). "
                "Is the export truncated? Nothing was changed; run again with --force if "
                "the records really are gone.")
            raise ImportStopped(report)


def _start_run(db: Database, report: RunReport) -> int:
    with db.session(write=True) as session:
        _fail_abandoned_runs(session)
        result = session.execute(insert(import_run).values(
            source=report.source, format=report.format, path=report.path, status="running",
            started_at=datetime.now(UTC)))
        return int(result.inserted_primary_key[0])


def _fail_abandoned_runs(session: Any) -> None:
    """Runs left 'running' by a process that died are marked failed (nothing was applied)."""
    session.execute(update(import_run).where(import_run.c.status == "running")
                    .where(import_run.c.started_at < _hours_ago(6))
                    .values(status="failed", message="the import process stopped before "
                            "finishing; the directory was not changed"))


def _hours_ago(hours: int) -> datetime:
    return datetime.now(UTC) - timedelta(hours=hours)


def _finish_run(db: Database, report: RunReport) -> None:
    problems = [_problem_json(p) for p in report.problems[:20000]]
    with db.session(write=True) as session:
        session.execute(update(import_run).where(import_run.c.id == report.run_id).values(
            status=report.status, finished_at=datetime.now(UTC), counts=report.as_json(),
            problems=problems, message=report.message))


def _problem_json(p: Problem) -> dict[str, Any]:
    return {"severity": p.severity, "file": p.file, "line": p.line, "field": p.field,
            "why": p.why, "table": p.table, "source_id": p.source_id}


def run_problems(db: Database, run_id: int) -> list[dict[str, Any]]:
    """Every stored problem of an import run."""
    with db.session() as session:
        value = session.execute(select(import_run.c.problems)
                                .where(import_run.c.id == run_id)).scalar_one_or_none()
    return value if isinstance(value, list) else json.loads(value or "[]")
