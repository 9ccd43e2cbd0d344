"""HSDS 1.x loader: the Open211 Miami package end to end, its quirks, and a small synthetic one.

Expected figures are computed here from the raw CSV files with `csv`, independently of the
loader; only the directory's own category mapping and hours parser are shared with it.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from indexer.loaders import find_loader, hsds1
from indexer.pipeline import RunReport, load
from indexer.records import Problems, SourceRow
from service.db import Database
from service.directory.categories import categorize
from service.directory.schedules import OpenStatus, open_status, parse_hours_text, rule_from_hsds
from service.directory.tables import hsds_tables, service_category
from tests.conftest import DATASETS, HSDS

MIAMI = DATASETS / "hsds_open211_miami"
OHANA = DATASETS / "hsds_ohana_smc_sample"
SOURCE = "miami"
NEW_YORK = ZoneInfo("America/New_York")
ZIP = re.compile(r"^\d{5}(?:-\d{4})?$")


# -- helpers --------------------------------------------------------------------------------------


def raw(name: str, folder: Path = MIAMI) -> list[dict[str, str]]:
    """One CSV file of the package as the csv module reads it (line numbers in `_line`)."""
    with open(folder / name, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            row["_line"] = str(reader.line_num)
            rows.append(row)
        return rows


def stored(db: Database, table: str, source: str = SOURCE) -> list[dict[str, Any]]:
    """Every row of one directory table that came from `source`."""
    t = hsds_tables[table]
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(t).where(t.c.record_source == source)).mappings()]


def by_source_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows keyed by the source's own id."""
    return {r["record_source_id"]: r for r in rows}


def original_texts() -> dict[str, str]:
    """The hours text per service id, with the export's literal "\\n" read as line breaks
    (trailing spaces trimmed per line, no more than one blank line in a row)."""
    texts: dict[str, str] = {}
    for row in raw("regular_schedules.csv"):
        lines = [line.rstrip() for line in row["original_text"].split("\\n")]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        texts.setdefault(row["service_id"], text)
    return texts


def assert_all_unchanged(report: RunReport) -> None:
    """A second run of the same export: every row read is unchanged, nothing new or changed."""
    for table, counts in report.counts.items():
        if table == "search":
            continue
        assert counts["unchanged"] == counts["read"], (table, dict(counts))
        assert not counts.get("new") and not counts.get("changed"), (table, dict(counts))
        assert not counts.get("deactivated"), (table, dict(counts))


# -- detection ----------------------------------------------------------------------------------


@pytest.mark.shared
def test_detect_tells_hsds1_from_hsds3_and_ohana() -> None:
    assert hsds1.detect(MIAMI)
    assert hsds1.detect(MIAMI / "datapackage.json")
    assert not hsds1.detect(OHANA)
    assert not hsds1.detect(HSDS / "v3.1" / "examples" / "csv")
    assert find_loader(MIAMI).format == "hsds1"
    assert find_loader(MIAMI / "datapackage.json").format == "hsds1"
    assert find_loader(OHANA).format == "ohana"
    assert find_loader(HSDS / "v3.1" / "examples" / "csv").format == "hsds3"


# -- Miami, end to end ------------------------------------------------------------------------


@pytest.mark.shared
@pytest.mark.slow
def test_miami_imports_with_counts_from_the_files_and_reimports_unchanged(
        db: Database) -> None:
    report = load(db, MIAMI, source=SOURCE)
    assert report.status == "done"
    assert not report.problems.errors, [str(p) for p in report.problems.errors[:5]]

    services = raw("services.csv")
    assert report.counts["service"]["read"] == len(services) == 4089
    assert report.counts["service"]["new"] == len(services)
    assert len(stored(db, "service")) == len(services)
    # Every service has an empty status; the pipeline reads that as active.
    assert {s["status"] for s in services} == {""}
    assert {s["status"] for s in stored(db, "service")} == {"active"}
    organizations = raw("organizations.csv")
    assert report.counts["organization"]["new"] == len(organizations)

    _check_locations_and_precision(db, report)
    _check_schedules(db, report)
    _check_phones_and_addresses(db, report)
    _check_categories(db)
    _check_eligibility_is_reported_not_guessed(db, report)
    _check_known_record(db)

    again = load(db, MIAMI, source=SOURCE)
    assert again.status == "done"
    assert_all_unchanged(again)
    assert again.counts["service"]["unchanged"] == len(services)
    assert again.precision == report.precision


def _check_locations_and_precision(db: Database, report: RunReport) -> None:
    locations = raw("locations.csv")
    assert report.counts["location"]["new"] == len(locations)
    with_point = [r for r in locations if r["latitude"].strip() and r["longitude"].strip()]
    assert report.precision["exact"] == len(with_point) == 2260
    address_of = {a["location_id"]: a for a in raw("physical_addresses.csv")}
    without = [r for r in locations if r not in with_point]
    usable = [r for r in without if ZIP.match(address_of[r["id"]]["postal_code"].strip())]
    assert report.precision["zip"] == len(usable) == 1798
    # The rest cannot be placed: reported when they have some address, silent when they have
    # none at all (nothing to place).
    rest = [r for r in without if r not in usable]
    assert report.precision["none"] == len(rest)
    unplaced = {(p.file, p.line) for p in report.problems
                if p.table == "location" and p.field == "latitude"}
    for row in rest:
        address = address_of[row["id"]]
        has_address = any(address[f].strip() for f in ("address_1", "city", "postal_code"))
        assert (("locations.csv", int(row["_line"])) in unplaced) == has_address, row["id"]
    # Every location belongs to an organization that is in the import.
    organizations = {o["id"] for o in stored(db, "organization")}
    assert all(loc["organization_id"] in organizations for loc in stored(db, "location"))
    assert all(s["organization_id"] in organizations for s in stored(db, "service"))


def _check_schedules(db: Database, report: RunReport) -> None:
    texts = original_texts()
    assert len(texts) == 2597
    # Each service's hours: one row per rule when the text is understood, else one text row.
    expected_rows = 0
    readable = set()
    for service_id, text in texts.items():
        parsed = parse_hours_text(text)
        if parsed.confident and parsed.rules:
            readable.add(service_id)
            expected_rows += len(parsed.rules)
        else:
            expected_rows += 1
    assert report.counts["schedule"]["new"] == expected_rows
    services = {s["id"]: s["record_source_id"] for s in stored(db, "service")}
    schedules = stored(db, "schedule")
    assert len(schedules) == expected_rows
    per_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in schedules:
        per_service[services[row["service_id"]]].append(row)
    assert set(per_service) == set(texts)
    for service_id, rows in per_service.items():
        assert {r["description"] for r in rows} == {texts[service_id]}, service_id
        ids = sorted(r["record_source_id"] for r in rows)
        assert ids == sorted(f"{service_id}:{i}" for i in range(len(rows)))
        if service_id in readable:
            assert all(r["freq"] in {"WEEKLY", "MONTHLY"} and r["byday"] and r["opens_at"]
                       and r["closes_at"] for r in rows), service_id
        else:
            assert len(rows) == 1 and rows[0]["byday"] is None and rows[0]["opens_at"] is None
    assert len(readable) == 2446


def _check_phones_and_addresses(db: Database, report: RunReport) -> None:
    phones = [p for p in raw("phones.csv") if p["number"].strip()]
    assert report.counts["phone"]["new"] == len(phones) == 4067
    assert sorted(p["number"] for p in stored(db, "phone")) == sorted(
        p["number"].strip() for p in phones)
    addresses = [a for a in raw("physical_addresses.csv")
                 if any(a[f].strip() for f in ("address_1", "city", "state_province",
                                               "postal_code"))]
    rows = stored(db, "address")
    assert len(rows) == len(addresses)
    assert {r["address_type"] for r in rows} == {"physical"}
    # "FL " is trimmed and a blank country next to a US state becomes "US".
    assert not any((r["state_province"] or "").endswith(" ") for r in rows)
    florida = [r for r in rows if r["state_province"] == "FL"]
    assert len(florida) == sum(1 for a in addresses if a["state_province"].strip() == "FL")
    assert {r["country"] for r in florida} == {"US"}


def _check_categories(db: Database) -> None:
    names: dict[str, str] = {}
    for term in raw("taxonomy.csv"):
        names.setdefault(term["id"], term["name"])  # the file lists three ids twice
    expected: set[tuple[str, str]] = set()
    for link in raw("services_taxonomy.csv"):
        code = link["taxonomy_id"]
        for category in categorize([code, names.get(code, "")]):
            expected.add((link["service_id"], category))
    services = {s["id"]: s["record_source_id"] for s in stored(db, "service")}
    with db.session() as session:
        pairs = session.execute(select(service_category.c.service_id,
                                       service_category.c.category_id)).all()
    got = {(services[sid], category) for sid, category in pairs if sid in services}
    assert got == expected
    assert len({service for service, _ in got}) > 3000
    links = {(r["service_id"], r["taxonomy_id"]) for r in raw("services_taxonomy.csv")}
    assert len(stored(db, "attribute")) == len(links)


def _check_eligibility_is_reported_not_guessed(db: Database, report: RunReport) -> None:
    orphans = [r for r in raw("eligibility.csv") if not r["service_id"].strip()]
    assert len(orphans) == 2244
    warning = next(p for p in report.problems if p.file == "eligibility.csv")
    assert f"{len(orphans)} eligibility rows have no service_id" in warning.why
    assert all(s["eligibility_description"] is None for s in stored(db, "service"))


def _check_known_record(db: Database) -> None:
    """Keys Area Interdenominational Resources (KAIR), Marathon FL: a food pantry."""
    service = by_source_id(stored(db, "service"))["6936"]
    assert service["name"] == "KEYS AREA INTERDENOMINATIONAL RESOURCES, INC."
    assert service["alternate_name"] == "KAIR"
    assert service["url"] == "http://www.kaironline.net/index.html"
    organization = next(o for o in stored(db, "organization")
                        if o["id"] == service["organization_id"])
    assert organization["name"] == "KEYS AREA INTERDENOMINATIONAL RESOURCES, INC."
    location = by_source_id(stored(db, "location"))["6936"]
    assert location["geocode_precision"] == "exact"
    assert location["latitude"] == pytest.approx(24.7112095517924)
    assert location["time_zone"] == NEW_YORK.key
    address = next(a for a in stored(db, "address") if a["location_id"] == location["id"])
    assert (address["address_1"], address["city"], address["state_province"],
            address["postal_code"], address["country"]) == (
        "3010 Overseas Highway", "Marathon", "FL", "33050", "US")
    phones = [p["number"] for p in stored(db, "phone") if p["service_id"] == service["id"]]
    assert phones == ["305-743-4582"]
    # Hours: "9:00am-12:00pm, Mon, Thur, Fri; 12:00pm-3:00pm, Tue; 2:00pm-5:00pm, Wed".
    rows = sorted((s for s in stored(db, "schedule") if s["service_id"] == service["id"]),
                  key=lambda s: s["record_source_id"])
    assert [(r["byday"], r["opens_at"], r["closes_at"]) for r in rows] == [
        ("MO,TH,FR", "09:00", "12:00"), ("TU", "12:00", "15:00"), ("WE", "14:00", "17:00")]
    rules = [rule_from_hsds(r) for r in rows]
    tuesday = datetime(2025, 6, 3, 13, 0, tzinfo=NEW_YORK)
    assert open_status(rules, at=tuesday, tz=location["time_zone"]).status is OpenStatus.OPEN
    wednesday = datetime(2025, 6, 4, 10, 0, tzinfo=NEW_YORK)
    result = open_status(rules, at=wednesday, tz=location["time_zone"])
    assert result.status is OpenStatus.CLOSED
    assert result.opens_next == datetime(2025, 6, 4, 14, 0, tzinfo=NEW_YORK)
    sunday = datetime(2025, 6, 8, 10, 0, tzinfo=NEW_YORK)
    assert open_status(rules, at=sunday, tz=location["time_zone"]).status is OpenStatus.CLOSED
    # Categories from its AIRS codes (BD-1800.2000-640 Ongoing Emergency Food Assistance...).
    codes = [r["taxonomy_id"] for r in raw("services_taxonomy.csv") if r["service_id"] == "6936"]
    assert "BD-1800.2000-640" in codes
    with db.session() as session:
        categories = set(session.execute(select(service_category.c.category_id).where(
            service_category.c.service_id == service["id"])).scalars())
    assert categorize(["BD-1800.2000-640"]) <= categories
    assert categories == categorize(codes) | categorize(
        [t["name"] for t in raw("taxonomy.csv") if t["id"] in codes])
    # A program whose parent is a site (Coconut Grove Community Resource Center, 6584) belongs
    # to the site's agency.
    grove = by_source_id(stored(db, "service"))["6587"]
    agency = next(o for o in stored(db, "organization") if o["id"] == grove["organization_id"])
    assert agency["record_source_id"] == "6017"
    assert agency["name"] == "MIAMI-DADE COUNTY COMMUNITY ACTION AND HUMAN SERVICES"


# -- Miami, loader only ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def miami_rows() -> tuple[list[SourceRow], Problems]:
    problems = Problems()
    return list(hsds1.read(MIAMI, problems)), problems


@pytest.mark.shared
def test_miami_text_fields_are_cleaned(miami_rows: tuple[list[SourceRow], Problems]) -> None:
    rows, _problems = miami_rows
    services = {r.values["id"]: r.values for r in rows if r.table == "service"}
    girl_scouts = services["136"]["description"]
    assert "###MON###" not in girl_scouts and "\\n" not in girl_scouts
    assert girl_scouts.endswith("self-worth.")
    raw_text = next(r["description"] for r in raw("services.csv") if r["id"] == "136")
    assert raw_text.endswith("\\n\\n###MON###")


@pytest.mark.shared
def test_miami_unreadable_hours_stay_as_one_text_row(
        miami_rows: tuple[list[SourceRow], Problems]) -> None:
    rows, _problems = miami_rows
    texts = original_texts()
    unreadable = next(sid for sid, text in texts.items()
                      if not parse_hours_text(text).confident)
    schedules = [r.values for r in rows if r.table == "schedule"
                 and r.values.get("service_id") == unreadable]
    assert schedules == [{"id": f"{unreadable}:0", "service_id": unreadable,
                          "description": texts[unreadable]}]


@pytest.mark.shared
def test_miami_taxonomy_terms_carry_their_airs_code(
        miami_rows: tuple[list[SourceRow], Problems]) -> None:
    rows, problems = miami_rows
    terms = [r.values for r in rows if r.table == "taxonomy_term"]
    assert len(terms) == len({t["id"] for t in raw("taxonomy.csv")})
    food = next(t for t in terms if t["id"] == "BD-1800.2000-640")
    assert food["code"] == "BD-1800.2000-640"
    assert food["name"] == "Ongoing Emergency Food Assistance"
    assert food["taxonomy_id"] == "Open211 Miami - AIRS"
    # "J" is listed twice with two names: the first is kept and the second reported.
    assert any(p.file == "taxonomy.csv" and "'J'" in p.why for p in problems)
    links = [r for r in raw("services_taxonomy.csv")]
    repeats = len(links) - len({(r["service_id"], r["taxonomy_id"]) for r in links})
    assert any(f"{repeats} rows repeat" in p.why for p in problems)


# -- a small synthetic HSDS 1.x package --------------------------------------------------------


def write_csv(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    """Write rows (all with the same keys) as one CSV file."""
    with open(folder / name, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def small_package(folder: Path) -> Path:
    """Two services of one organization with the HSDS 1.x tables Miami does not have."""
    folder.mkdir()
    write_csv(folder, "organizations.csv", [
        {"id": "o1", "name": "Eastside Aid", "url": "https://eastside.example.org"}])
    write_csv(folder, "services.csv", [
        {"id": "s1", "organization_id": "o1", "name": "Pantry", "fees": "Free", "status": ""},
        {"id": "s2", "organization_id": "o1", "name": "Clinic", "fees": "", "status": "active"}])
    write_csv(folder, "locations.csv", [
        {"id": "l1", "organization_id": "o1", "name": "Main", "latitude": "38.9",
         "longitude": "-77.0"}])
    write_csv(folder, "services_at_location.csv", [
        {"id": "sl1", "service_id": "s1", "location_id": "l1"},
        {"id": "sl2", "service_id": "s2", "location_id": "l1"}])
    write_csv(folder, "physical_addresses.csv", [
        {"id": "a1", "location_id": "l1", "address_1": "1 Main St", "city": "Washington",
         "state_province": "DC ", "postal_code": "20001", "country": " "}])
    write_csv(folder, "postal_addresses.csv", [
        {"id": "a1", "location_id": "l1", "address_1": "PO Box 9", "city": "Washington",
         "state_province": "DC", "postal_code": "20002", "country": "US"}])
    write_csv(folder, "eligibility.csv", [
        {"id": "e1", "service_id": "s1", "eligibility": "Adults 60 years and older"}])
    write_csv(folder, "regular_schedules.csv", [
        {"id": "r1", "service_id": "s1", "weekday": "Monday", "opens_at": "9:00am",
         "closes_at": "5:00pm"},
        {"id": "r2", "service_id": "s1", "weekday": "Tuesday", "opens_at": "9:00am",
         "closes_at": "5:00pm"},
        {"id": "r3", "service_id": "s2", "weekday": "Funday", "opens_at": "9", "closes_at": "5"}])
    write_csv(folder, "holiday_schedules.csv", [
        {"id": "h1", "service_id": "s1", "closed": "true", "start_date": "2025-12-25",
         "end_date": "2025-12-26", "opens_at": "", "closes_at": ""},
        {"id": "h2", "service_id": "s1", "closed": "true", "start_date": "not a date",
         "end_date": "", "opens_at": "", "closes_at": ""}])
    write_csv(folder, "payments_accepted.csv", [
        {"id": "p1", "service_id": "s2", "payment": "Medicaid"}])
    write_csv(folder, "taxonomy.csv", [
        {"id": "BD-1800", "name": "Emergency Food", "parent_id": "", "vocabulary": "AIRS"}])
    write_csv(folder, "services_taxonomy.csv", [
        {"id": "t1", "service_id": "s1", "taxonomy_id": "BD-1800"},
        {"id": "t2", "service_id": "s2", "taxonomy_id": "LN-1500"}])
    return folder


def test_small_package_reads_every_hsds1_table(tmp_path: Path) -> None:
    folder = small_package(tmp_path / "pkg")
    assert hsds1.detect(folder)
    problems = Problems()
    rows = list(hsds1.read(folder, problems))
    table = defaultdict(list)
    for row in rows:
        table[row.table].append(row.values)
    assert table["organization"][0]["website"] == "https://eastside.example.org"
    s1, s2 = table["service"]
    assert s1["eligibility_description"] == "Adults 60 years and older"
    assert s1["fees_description"] == "Free" and "status" not in s1
    physical, postal = table["address"]
    assert (physical["id"], physical["state_province"], physical["country"],
            physical["address_type"]) == ("a1", "DC", "US", "physical")
    assert (postal["id"], postal["address_type"]) == ("postal:a1", "postal")
    weekly = [s for s in table["schedule"] if s.get("service_id") == "s1" and "freq" in s]
    assert [(s["id"], s["byday"], s["opens_at"], s["closes_at"]) for s in weekly] == [
        ("s1:0", "MO,TU", "09:00", "17:00")]
    assert [s for s in table["schedule"] if s.get("service_id") == "s2"] == [
        {"id": "s2:0", "service_id": "s2", "description": "Funday 9-5"}]
    closure = [s for s in table["schedule"] if s.get("is_closure")]
    assert [(s["id"], s["valid_from"], s["valid_to"]) for s in closure] == [
        ("holiday:h1:0", "2025-12-25", "2025-12-26")]
    assert any(p.file == "holiday_schedules.csv" and p.line == 3 for p in problems.errors)
    assert table["attribute"][0] == {"id": "payment:p1", "link_id": "s2",
                                     "link_entity": "service", "label": "payments_accepted",
                                     "value": "Medicaid"}
    links = [a for a in table["attribute"] if a.get("taxonomy_term_id")]
    assert [(a["link_id"], a["taxonomy_term_id"]) for a in links] == [
        ("s1", "BD-1800"), ("s2", "LN-1500")]
    # LN-1500 is not in taxonomy.csv: kept by code (so it still gives a category), reported.
    assert {"id": "LN-1500", "code": "LN-1500"} in table["taxonomy_term"]
    assert any("not in taxonomy.csv" in p.why for p in problems)


def test_small_package_end_to_end(db: Database, tmp_path: Path) -> None:
    folder = small_package(tmp_path / "pkg")
    report = load(db, folder, source="eastside")
    assert report.status == "done"
    assert report.counts["service"]["new"] == 2
    services = by_source_id(stored(db, "service", "eastside"))
    assert services["s1"]["eligibility"]["min_age"] == 60
    closures = [s for s in stored(db, "schedule", "eastside") if s["is_closure"]]
    assert len(closures) == 1 and closures[0]["valid_from"] == "2025-12-25"
    with db.session() as session:
        categories = set(session.execute(select(service_category.c.category_id).where(
            service_category.c.service_id == services["s2"]["id"])).scalars())
    assert categories == categorize(["LN-1500"]) and categories
    assert_all_unchanged(load(db, folder, source="eastside"))
