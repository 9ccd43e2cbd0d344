"""HSDS 3.x import, re-import, local edits and export, end to end on a real database."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.export import export_datapackage
from indexer.pipeline import ImportStopped, load
from indexer.records import HSDS_FIELDS
from service.db import Database
from service.directory.edits import apply_local_edit
from service.directory.tables import edit_conflict, hsds_tables, import_run, service_category
from tests.conftest import HSDS
from tests.factories import directory_package
from tests.hsds_schema import errors as schema_errors

EXAMPLES = sorted(
    p for version in ("v3.0", "v3.1") for p in (HSDS / version / "examples").glob("*.json")
    if p.name not in {"base.json"}
)


def count(db: Database, table: str, **where: object) -> int:
    t = hsds_tables[table]
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with db.session() as session:
        return session.execute(query).scalar_one()


def one(db: Database, table: str, **where: object) -> dict:
    t = hsds_tables[table]
    query = select(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with db.session() as session:
        return dict(session.execute(query).mappings().one())


@pytest.mark.shared
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_hsds_example_json_imports(db: Database, path: Path) -> None:
    report = load(db, path, source="example")
    assert report.status == "done"
    document = json.loads(path.read_text())
    items = document.get("contents", [document]) if isinstance(document, dict) else document
    # Every top-level object arrives (as its own table) with its given name.
    for item in items:
        names = {r["name"] for t in ("service", "organization", "location", "taxonomy_term",
                                     "taxonomy", "service_at_location")
                 for r in _all(db, t) if "name" in r}
        if item.get("name"):
            assert item["name"] in names


@pytest.mark.shared
@pytest.mark.parametrize("version", ["v3.0", "v3.1"])
def test_hsds_example_csv_package_imports_with_every_table(db: Database, version: str) -> None:
    folder = HSDS / version / "examples" / "csv"
    report = load(db, folder, source="example")
    assert report.status == "done"
    for table in HSDS_FIELDS:
        file = next((folder / n for n in _files(table) if (folder / n).exists()), None)
        if file is None:
            continue
        with open(file, newline="", encoding="utf-8-sig") as handle:
            expected = sum(1 for row in csv.DictReader(handle)
                           if any(v.strip() for v in row.values()))
        assert report.counts[table]["read"] == expected, table
        stored = count(db, table)
        # Rows are kept even when a foreign key is broken (the link is dropped and reported).
        assert stored >= expected - report.counts[table].get("skipped", 0), table


def _files(table: str) -> tuple[str, ...]:
    from indexer.loaders.hsds3 import CSV_FILES
    return CSV_FILES[table]


def _all(db: Database, table: str) -> list[dict]:
    with db.session() as session:
        return [dict(r) for r in session.execute(select(hsds_tables[table])).mappings()]


@pytest.mark.shared
def test_known_listing_arrives_complete(db: Database) -> None:
    report = load(db, HSDS / "v3.1" / "examples" / "service_full.json", source="example")
    service = one(db, "service", name="Community Counselling")
    org = one(db, "organization", id=service["organization_id"])
    assert org["name"] == "Example Organization Inc."
    phones = [p for p in _all(db, "phone") if p["service_id"] == service["id"]]
    assert phones and phones[0]["number"]
    schedules = [s for s in _all(db, "schedule") if s["service_id"] == service["id"]]
    assert any(s["freq"] == "WEEKLY" and s["opens_at"] for s in schedules)
    assert service["minimum_age"] == 12 and service["maximum_age"] == 100
    assert service["eligibility"]["min_age"] == 12
    assert service["record_source"] == "example"
    # The example's location says latitude 100: reported, and the location kept unplaced.
    bad = next(p for p in report.problems.errors if p.field == "latitude")
    assert "out of range (100.0, 101.0)" in bad.why
    assert [r["latitude"] for r in _all(db, "location")] == [None]


def test_report_counts_match_the_files_and_reimport_is_idempotent(db: Database,
                                                                  tmp_path: Path) -> None:
    folder = directory_package(12).write(tmp_path / "pkg")
    first = load(db, folder, source="city")
    assert first.counts["service"]["new"] == 12
    assert first.counts["schedule"]["new"] == 12
    assert count(db, "service") == 12
    assert first.precision["exact"] == 12
    again = load(db, folder, source="city")
    assert again.counts["service"]["unchanged"] == 12
    assert "new" not in again.counts["service"] and "changed" not in again.counts["service"]
    assert count(db, "service") == 12
    with db.session() as session:
        runs = session.execute(select(import_run.c.status)).scalars().all()
    assert runs == ["done", "done"]


def test_categories_come_from_attributes(db: Database, tmp_path: Path) -> None:
    folder = directory_package(3).write(tmp_path / "pkg")
    load(db, folder, source="city")
    with db.session() as session:
        pairs = session.execute(select(service_category.c.category_id)).scalars().all()
    assert pairs == ["1102"] * 3


def test_missing_records_are_deactivated_not_deleted(db: Database, tmp_path: Path) -> None:
    package = directory_package(10)
    load(db, package.write(tmp_path / "v1"), source="city")
    smaller = directory_package(9)  # one service fewer: 10% of the source
    report = load(db, smaller.write(tmp_path / "v2"), source="city")
    assert report.counts["service"]["deactivated"] == 1
    assert count(db, "service") == 10
    assert count(db, "service", is_active=False) == 1


def test_truncated_export_stops_before_mass_deactivation(db: Database, tmp_path: Path) -> None:
    load(db, directory_package(10).write(tmp_path / "v1"), source="city")
    with pytest.raises(ImportStopped) as stopped:
        load(db, directory_package(3).write(tmp_path / "v2"), source="city")
    assert "would deactivate 7 of 10" in stopped.value.report.message
    assert count(db, "service", is_active=True) == 10
    forced = load(db, tmp_path / "v2", source="city", force=True)
    assert forced.counts["service"]["deactivated"] == 7


def test_loading_one_source_never_deactivates_another(db: Database, tmp_path: Path) -> None:
    load(db, directory_package(5, prefix="a").write(tmp_path / "a"), source="county")
    load(db, directory_package(5, prefix="b").write(tmp_path / "b"), source="state")
    assert count(db, "service", is_active=True) == 10


def test_local_edit_survives_reimport_until_the_source_changes_it(db: Database,
                                                                  tmp_path: Path) -> None:
    package = directory_package(5)
    load(db, package.write(tmp_path / "v1"), source="city")
    target = one(db, "service", record_source_id="svc1")
    with db.session(write=True) as session:
        apply_local_edit(session, table="service", record_id=target["id"],
                         changes={"description": "Open to everyone; bring a bag"},
                         edited_by="partner:alice")
    # Same export again: the partner's edit stays.
    load(db, tmp_path / "v1", source="city")
    assert one(db, "service", id=target["id"])["description"] == "Open to everyone; bring a bag"
    # The source changes another field: the edit stays, the other change arrives.
    package.rows["service"][1]["name"] = "Food Pantry One"
    load(db, package.write(tmp_path / "v2"), source="city")
    row = one(db, "service", id=target["id"])
    assert row["description"] == "Open to everyone; bring a bag"
    assert row["name"] == "Food Pantry One"
    # The source changes the edited field itself: its value wins and an admin sees the conflict.
    package.rows["service"][1]["description"] = "Groceries twice a week"
    load(db, package.write(tmp_path / "v3"), source="city")
    assert one(db, "service", id=target["id"])["description"] == "Groceries twice a week"
    with db.session() as session:
        conflicts = session.execute(select(edit_conflict)).mappings().all()
    assert len(conflicts) == 1
    assert conflicts[0]["field"] == "description"
    assert conflicts[0]["local_value"] == "Open to everyone; bring a bag"
    assert conflicts[0]["new_source_value"] == "Groceries twice a week"
    assert conflicts[0]["edited_by"] == "partner:alice"


def test_export_round_trip_gives_the_same_directory(db: Database, tmp_path: Path) -> None:
    package = directory_package(6)
    package.rows["location"][2]["latitude"] = ""
    package.rows["location"][2]["longitude"] = ""  # geocoded from its ZIP
    package.rows["location"][3]["x_is_confidential"] = "true"
    load(db, package.write(tmp_path / "pkg"), source="city")
    load(db, HSDS / "v3.1" / "examples" / "service_full.json", source="example")
    out = tmp_path / "export"
    counts = export_datapackage(db, out)
    assert counts["service"] == 7

    # Every exported object validates against HSDS 3.1 (with the 3.1.1 patches).
    services = json.loads((out / "services.json").read_text())
    assert len(services) == 7
    for doc in services:
        assert schema_errors("service", doc) == []
    with open(out / "locations.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            loc = {k: v for k, v in row.items() if v != "" and not k.startswith("x_")}
            for k in ("latitude", "longitude"):
                if k in loc:
                    loc[k] = float(loc[k])
            assert schema_errors("location", loc) == []

    # Confidential: no street address leaves the directory, and the point is coarse.
    confidential = one(db, "location", record_source_id="loc3")
    assert round(confidential["latitude"], 2) == confidential["latitude"]
    exported = (out / "addresses.csv").read_text()
    assert "103 Main St NW" not in exported

    # Import the export into an empty directory: the same rows, field by field.
    other = Database(f"sqlite:///{tmp_path / 'copy.db'}")
    other.migrate()
    load(other, out, source="copy")
    for table in HSDS_FIELDS:
        left = {r["id"]: _comparable(r) for r in _all(db, table)}
        right = {r["id"]: _comparable(r) for r in _all(other, table)}
        assert left == right, table
    with db.session() as a, other.session() as b:
        cat_a = sorted(a.execute(select(service_category)).all())
        cat_b = sorted(b.execute(select(service_category)).all())
    assert cat_a == cat_b
    other.dispose()


def _comparable(row: dict) -> dict:
    return {k: v for k, v in row.items()
            if k not in ("row_hash", "created_at", "updated_at")}


def test_dry_run_writes_nothing(db: Database, tmp_path: Path) -> None:
    report = load(db, directory_package(4).write(tmp_path / "pkg"), source="city", dry_run=True)
    assert report.status == "dry_run"
    assert report.counts["service"]["new"] == 4
    assert count(db, "service") == 0


def _directory_rows(db: Database) -> dict[str, list[tuple]]:
    """Every directory row, without the times the import wrote them."""
    out = {}
    with db.session() as session:
        for name, t in hsds_tables.items():
            cols = [c for c in t.c if c.name not in ("created_at", "updated_at")]
            out[name] = [tuple(r) for r in session.execute(select(*cols).order_by(t.c.id))]
        out["service_category"] = [tuple(r) for r in session.execute(
            select(service_category).order_by(*service_category.c))]
    return out


def test_a_large_package_read_by_several_processes_gives_the_same_directory(
        sqlite_db: Database, sqlite_template: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A large CSV package is read by several processes, a group of files each: the directory,
    the counts and every problem (file, line, field) are those of reading it in one. (Reading
    fills the same SQLite stage whatever the directory's database, so two SQLite directories
    are compared.)"""
    db = sqlite_db
    from indexer import reading

    p = directory_package(30)
    p.add("service", id="svc0", organization_id="org0", name="Duplicate id", status="active")
    p.add("service", id="old", organization_id="org1", name="Too old", minimum_age="200")
    p.add("service", id="tagged", organization_id="org2", name="Tagged", x_categories="1130")
    p.add("phone", id="nonumber", service_id="svc1", number="")
    p.add("location", id="nowhere", name="Bad point", latitude="95", longitude="10")
    p.add("address", id="orphan", location_id="missing", address_1="1 Main St", city="X")
    folder = p.write(tmp_path / "pkg")
    (folder / "notes.csv").write_text("a,b\n1,2\n", encoding="utf-8")

    serial = load(db, folder, source="city")
    monkeypatch.setattr(reading, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(reading.os, "cpu_count", lambda: 3)  # three workers on any machine
    path = tmp_path / "parallel.db"
    path.write_bytes(sqlite_template.read_bytes())
    other = Database(f"sqlite:///{path}")
    try:
        parallel = load(other, folder, source="city")
        assert parallel.counts == serial.counts
        assert sorted(map(repr, parallel.problems)) == sorted(map(repr, serial.problems))
        assert {(p.file, p.line, p.field) for p in parallel.problems} >= {
            ("services.csv", 32, "id"), ("services.csv", 33, "minimum_age"),
            ("phones.csv", 32, "number"), ("locations.csv", 32, "latitude"),
            ("notes.csv", None, None)}
        assert _directory_rows(other) == _directory_rows(db)
    finally:
        other.dispose()


def test_an_id_given_twice_keeps_the_first_row_and_reports_the_second(
        db: Database, tmp_path: Path) -> None:
    p = directory_package(3)
    p.add("service", id="svc1", organization_id="org1", name="Second svc1", status="active")
    p.add("phone", id="ph2", service_id="svc2", number="202-555-0199", type="fax")
    report = load(db, p.write(tmp_path / "pkg"), source="city")
    assert one(db, "service", record_source_id="svc1")["name"] == "Food Pantry 1"
    assert one(db, "phone", record_source_id="ph2")["number"] == "202-555-0100"
    assert {(p.file, p.line, p.field) for p in report.problems.errors} == {
        ("services.csv", 5, "id"), ("phones.csv", 5, "id")}
    assert report.counts["service"]["duplicate"] == report.counts["phone"]["duplicate"] == 1
    assert count(db, "location") == 3


def test_a_first_import_of_many_rows_gives_the_same_directory_and_indexes(
        sqlite_db: Database, sqlite_template: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A table given many new rows has its secondary indexes made again after them: the
    directory, its indexes and what they find are those of writing row by row."""
    from indexer import apply

    folder = directory_package(12).write(tmp_path / "pkg")
    load(sqlite_db, folder, source="city")
    monkeypatch.setattr(apply, "BULK_MIN_ROWS", 5)
    path = tmp_path / "bulk.db"
    path.write_bytes(sqlite_template.read_bytes())
    bulk = Database(f"sqlite:///{path}")

    def indexes(db: Database) -> list[tuple]:
        with db.engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(
                "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' "
                "ORDER BY name")]

    try:
        load(bulk, folder, source="city")
        assert _directory_rows(bulk) == _directory_rows(sqlite_db)
        assert indexes(bulk) == indexes(sqlite_db)
        with bulk.engine.connect() as conn:
            used = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM phone WHERE service_id = 'x'").all()
            assert "ix_phone_service_id" in str(used)
        load(bulk, folder, source="city")  # again: nothing new, row by row
        assert _directory_rows(bulk) == _directory_rows(sqlite_db)
    finally:
        bulk.dispose()


def test_an_address_without_a_zip_gets_the_one_nearest_its_place(db: Database,
                                                                 tmp_path: Path) -> None:
    """From the place's own coordinates, or from those it was geocoded to."""
    from indexer.geocode import GeoTables

    package = directory_package(3)
    package.rows["address"][0]["postal_code"] = ""  # its place has coordinates
    package.rows["location"][1]["latitude"] = ""  # geocoded from "Bethesda, MD"
    package.rows["location"][1]["longitude"] = ""
    package.rows["address"][1].update(postal_code="", city="Bethesda", state_province="MD")
    load(db, package.write(tmp_path / "pkg"), source="city")
    tables = GeoTables.default()
    for i in (0, 1):
        place = one(db, "location", record_source_id=f"loc{i}")
        expected = tables.nearest_zip(place["latitude"], place["longitude"]).zip
        assert one(db, "address", record_source_id=f"adr{i}")["postal_code"] == expected
    assert one(db, "address", record_source_id="adr0")["postal_code"].startswith("200")
    assert one(db, "address", record_source_id="adr1")["postal_code"].startswith("208")
    assert one(db, "address", record_source_id="adr2")["postal_code"] == "20001"
