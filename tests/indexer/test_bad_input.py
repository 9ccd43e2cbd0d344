"""Bad input gets a clear error naming file, line and field, and loses nothing good; a crash
mid-import leaves the previous directory intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer import apply as apply_module
from indexer.pipeline import ImportStopped, load
from service.db import Database
from service.directory.tables import hsds_tables, import_run
from tests.factories import directory_package

ROOT = Path(__file__).resolve().parents[2]


def services(db: Database) -> dict[str, str]:
    t = hsds_tables["service"]
    with db.session() as session:
        return dict(session.execute(select(t.c.record_source_id, t.c.name)).all())


def test_malformed_json_is_reported_and_changes_nothing(db: Database, tmp_path: Path) -> None:
    load(db, directory_package(3).write(tmp_path / "good"), source="city")
    before = services(db)
    bad = tmp_path / "broken.json"
    bad.write_text('{"id": "s1", "name": "Shelter", "status": "active", "phones": [', "utf-8")
    with pytest.raises(ImportStopped) as stopped:
        load(db, bad, source="city")
    report = stopped.value.report
    assert report.problems.errors[0].file == "broken.json"
    assert "not valid JSON" in report.problems.errors[0].why
    assert report.problems.errors[0].line == 1
    assert services(db) == before


def test_bad_coordinate_keeps_the_row_and_geocodes_it(db: Database, tmp_path: Path) -> None:
    package = directory_package(3)
    package.rows["location"][1]["latitude"] = "138.9"
    package.rows["location"][2]["longitude"] = "west"
    report = load(db, package.write(tmp_path / "pkg"), source="city")
    errors = {(p.file, p.line, p.field): p.why for p in report.problems.errors}
    assert ("locations.csv", 3, "latitude") in errors
    assert "out of range" in errors[("locations.csv", 3, "latitude")]
    assert ("locations.csv", 4, "longitude") in errors
    t = hsds_tables["location"]
    with db.session() as session:
        rows = {r.record_source_id: r for r in session.execute(select(t))}
    assert len(rows) == 3
    # Both fall back to their ZIP's centroid, and say so.
    assert rows["loc1"].geocode_precision == "zip"
    assert rows["loc2"].geocode_precision == "zip"
    assert rows["loc0"].geocode_precision == "exact"
    assert report.precision == {"exact": 1, "zip": 2}


def test_missing_parent_keeps_the_row_and_flags_it(db: Database, tmp_path: Path) -> None:
    package = directory_package(3)
    package.rows["service"][2]["organization_id"] = "no-such-org"
    report = load(db, package.write(tmp_path / "pkg"), source="city")
    problem = next(p for p in report.problems.errors if p.field == "organization_id")
    assert (problem.file, problem.line, problem.table) == ("services.csv", 4, "service")
    assert "not in the import" in problem.why
    assert report.counts["service"]["kept_without_parent"] == 1
    assert services(db)["svc2"] == "Food Pantry 2"


def test_an_attribute_of_a_missing_record_is_kept_unlinked(db: Database,
                                                          tmp_path: Path) -> None:
    package = directory_package(3)
    package.add("attribute", id="at-lost", link_id="no-such-service", taxonomy_term_id="food",
                link_type="category", link_entity="service")
    package.add("attribute", id="at-org", link_id="org1", taxonomy_term_id="food",
                link_type="category", link_entity="organization")
    report = load(db, package.write(tmp_path / "pkg"), source="city")
    problem = next(p for p in report.problems.errors if p.field == "link_id")
    assert (problem.file, problem.line, problem.table) == ("attributes.csv", 5, "attribute")
    assert report.counts["attribute"]["unlinked"] == 1  # the organisation's attribute links
    t = hsds_tables["attribute"]
    with db.session() as session:
        links = dict(session.execute(select(t.c.record_source_id, t.c.link_id)).all())
    assert links["at-lost"] is None and links["at-org"] is not None and len(links) == 5


def test_wrong_encoding_is_read_and_reported(db: Database, tmp_path: Path) -> None:
    folder = directory_package(3).write(tmp_path / "pkg")
    path = folder / "services.csv"
    text = path.read_text("utf-8").replace("Food Pantry 1", "Caf\u00e9 Pantry 1")
    path.write_bytes(text.encode("cp1252"))
    report = load(db, folder, source="city")
    warning = next(p for p in report.problems if p.file == "services.csv" and "UTF-8" in p.why)
    assert warning.line == 3
    assert services(db)["svc1"] == "Caf\u00e9 Pantry 1"


def test_truncated_csv_reports_the_cut_row_and_keeps_the_rest(db: Database,
                                                              tmp_path: Path) -> None:
    folder = directory_package(5).write(tmp_path / "pkg")
    path = folder / "services.csv"
    data = path.read_text("utf-8")
    path.write_text(data[: data.rindex("Food Pantry 4") + 6], "utf-8")  # cut mid-row
    report = load(db, folder, source="city")
    cut = next(p for p in report.problems.errors if p.file == "services.csv")
    assert cut.line == 6 and "truncated" in cut.why
    assert sorted(services(db)) == ["svc0", "svc1", "svc2", "svc3"]


def test_a_crash_while_applying_leaves_the_previous_directory(db: Database, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    package = directory_package(6)
    load(db, package.write(tmp_path / "v1"), source="city")
    before = services(db)
    for row in package.rows["service"]:
        row["name"] += " (renamed)"
    original = apply_module.Applier._upsert
    calls = []

    def crash_on_schedules(self, table):  # noqa: ANN001, ANN202
        calls.append(table)
        if table == "schedule":
            raise OSError("disk full")
        return original(self, table)

    monkeypatch.setattr(apply_module.Applier, "_upsert", crash_on_schedules)
    with pytest.raises(OSError):
        load(db, package.write(tmp_path / "v2"), source="city")
    assert "service" in calls  # services had been written inside the transaction...
    assert services(db) == before  # ...and were rolled back
    with db.session() as session:
        status = session.execute(select(import_run.c.status).order_by(import_run.c.id.desc())
                                 ).scalars().first()
    assert status == "failed"


@pytest.mark.slow
def test_killing_the_import_process_leaves_the_previous_directory(sqlite_db: Database,
                                                                  tmp_path: Path) -> None:
    load(sqlite_db, directory_package(4).write(tmp_path / "v1"), source="city")
    before = services(sqlite_db)
    big = directory_package(30000)
    folder = big.write(tmp_path / "v2")
    env = {**os.environ, "SIGNPOST_DATABASE_URL": str(sqlite_db.url),
           "SIGNPOST_GEOCODE_CACHE_PATH": str(tmp_path / "cache.sqlite")}
    proc = subprocess.Popen([sys.executable, "-m", "service.cli", "index", "load", str(folder),
                             "--source", "city", "--force"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t = hsds_tables["service"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the run is under way
        with sqlite_db.session() as session:
            running = session.execute(select(func.count()).select_from(import_run)
                                      .where(import_run.c.status == "running")).scalar_one()
        if running:
            break
        time.sleep(0.05)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert services(sqlite_db) == before
    with sqlite_db.session() as session:
        assert session.execute(select(func.count()).select_from(t)).scalar_one() == 4
