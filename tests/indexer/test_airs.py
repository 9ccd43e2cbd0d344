"""AIRS/iCarol 211 exports (DC and San Francisco, 2014) imported end to end.

Expected figures are computed here from the raw CSV with the `csv` module, following the
assembly rules documented in `indexer.loaders.airs` (which records become services, where each
is placed, which flags it inherits) but not its code; only the street spelling rule
(`street_key`) is shared, and it has a test of its own. AIRS term names are licensed, so no
name appears in this file: expected names are read from the export at test time.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from indexer.ids import directory_id
from indexer.loaders import airs, find_loader
from indexer.pipeline import RunReport, load
from indexer.records import Problems
from service.db import Database
from service.directory.categories import categorize
from service.directory.tables import hsds_tables, service_category
from tests.conftest import DATASETS

EXPORTS = DATASETS / "airs_211_exports"
DC = EXPORTS / "dc_211_airs_export_2014.csv"
SF = EXPORTS / "sf_211_airs_export_2014.csv"
SOURCES = {DC: "dc211", SF: "sf211"}
YES = {"yes", "true", "1", "-1", "y"}
CHANGES = ("new", "changed", "deactivated", "reactivated", "removed", "duplicate")


# -- the raw export, read independently -----------------------------------------------------------


def raw_records(path: Path) -> list[dict[str, str]]:
    """Every data row as stripped text, with its 1-based line number under "_line"."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        out, line = [], 1
        for cells in reader:
            start, line = line + 1, reader.line_num
            row = {h: c.strip() for h, c in zip(header, cells, strict=True)}
            row["_line"] = str(start)
            out.append(row)
        return out


def yes(row: dict[str, str] | None, column: str) -> bool:
    """The cell says yes."""
    return row is not None and row.get(column, "").lower() in YES


def private(row: dict[str, str]) -> bool:
    """Private address flag, or a street that only says it is confidential (DC)."""
    streets = (row.get("PhysicalAddress1", ""), row.get("PhysicalAddress2", ""))
    return yes(row, "PhysicalAddressIsPrivate") or any(
        s.strip(" .").lower() == "confidential" for s in streets)


def has_point(row: dict[str, str]) -> bool:
    """A street or both coordinates."""
    return bool(row["PhysicalAddress1"] or (row["Latitude"] and row["Longitude"]))


@dataclass
class Place:
    """An expected location: the rows placed there, owner first."""

    rows: list[dict[str, str]]

    @property
    def owner(self) -> dict[str, str]:
        """The row the location is built from."""
        return self.rows[0]


@dataclass
class Expected:
    """What importing one export must produce, by the loader's documented rules."""

    records: list[dict[str, str]]
    levels: Counter[str] = field(default_factory=Counter)
    organizations: int = 0
    services: dict[str, tuple[dict[str, str], dict[str, str] | None]] = field(
        default_factory=dict)  # number -> (its row, its agency row)
    places: list[Place] = field(default_factory=list)
    service_places: dict[str, list[int]] = field(default_factory=dict)
    error_lines: set[int] = field(default_factory=set)

    def count(self, flag: str) -> int:
        """Services with the flag on their own row or their agency's."""
        def has(row: dict[str, str] | None) -> bool:
            """The row itself carries the flag."""
            if row is None:
                return False
            status = row["AgencyStatus"].lower()
            return {"hidden": yes(row, "ExcludeFromWebsite"), "inactive": status == "inactive",
                    "not_referable": "do not refer" in status}[flag]
        return sum(has(own) or has(agency) for own, agency in self.services.values())

    @property
    def with_coordinates(self) -> int:
        """Locations some row gives coordinates for."""
        return sum(any(r["Latitude"] and r["Longitude"] for r in p.rows) for p in self.places)

    @property
    def confidential(self) -> int:
        """Locations some row marks private."""
        return sum(any(private(r) for r in p.rows) for p in self.places)


def expected(path: Path) -> Expected:
    """Organizations, services, places and errors of the export, from the raw rows."""
    records = raw_records(path)
    out = Expected(records, Counter(r["TaxonomyLevelName"] for r in records))
    by_num = {r["ResourceAgencyNum"]: r for r in records}
    agencies = {n: r for n, r in by_num.items() if r["TaxonomyLevelName"] == "Agency"}
    kids: dict[tuple[str, str], list[dict[str, str]]] = {}
    for r in records:
        if r["TaxonomyLevelName"] != "Agency":
            kids.setdefault((r["ParentAgencyNum"], r["TaxonomyLevelName"]), []).append(r)
    groups = list(agencies) + sorted({p for p, _ in kids} - set(agencies))
    out.organizations = len(groups)
    keyed: dict[str, dict[tuple[str, str], int]] = {g: {} for g in groups}

    def new_place(group: str, row: dict[str, str]) -> int:
        """A new location owned by `row`."""
        out.places.append(Place([row]))
        key = airs.street_key(row["PhysicalAddress1"], row["PhysicalPostalCode"])
        if key is not None:
            keyed[group].setdefault(key, len(out.places) - 1)
        return len(out.places) - 1

    def join(group: str, row: dict[str, str]) -> int:
        """The agency's location at the same street and ZIP, or a new one."""
        key = airs.street_key(row["PhysicalAddress1"], row["PhysicalPostalCode"])
        if key in keyed[group]:
            out.places[keyed[group][key]].rows.append(row)
            return keyed[group][key]
        return new_place(group, row)

    # Sites first, then agencies' own addresses, then program-at-site links, then programs.
    site_place = {s["ResourceAgencyNum"]: new_place(g, s)
                  for g in groups for s in kids.get((g, "Site"), [])}
    agency_place: dict[str, int] = {}
    for g, agency in agencies.items():
        alone = not kids.get((g, "Site")) and not kids.get((g, "Program"))
        if has_point(agency) or (alone and agency["PhysicalPostalCode"]):
            agency_place[g] = join(g, agency)
    linked: dict[str, list[int]] = {}
    for g in groups:
        for link in kids.get((g, "ProgramAtSite"), []):
            program = by_num.get(link["ConnectsToProgramNum"])
            if program is None or program["TaxonomyLevelName"] != "Program":
                out.error_lines.add(int(link["_line"]))
            elif link["AgencyStatus"].lower() == "inactive" or yes(link, "ExcludeFromWebsite"):
                continue
            elif link["ConnectsToSiteNum"] in site_place:
                linked.setdefault(program["ResourceAgencyNum"], []).append(
                    site_place[link["ConnectsToSiteNum"]])
            elif has_point(link) or link["PhysicalPostalCode"]:
                linked.setdefault(program["ResourceAgencyNum"], []).append(new_place(g, link))
            else:
                out.error_lines.add(int(link["_line"]))
    for g in groups:
        agency = agencies.get(g)
        own = [site_place[s["ResourceAgencyNum"]] for s in kids.get((g, "Site"), [])]
        if g in agency_place and agency_place[g] not in own:
            own.append(agency_place[g])
        for program in kids.get((g, "Program"), []):
            num = program["ResourceAgencyNum"]
            if num in linked:
                places = linked[num]
            elif has_point(program):
                places = [join(g, program)]
            elif len(own) == 1:
                out.places[own[0]].rows.append(program)
                places = own[:1]
            elif program["PhysicalPostalCode"]:
                places = [new_place(g, program)]
            else:
                places = []
            out.services[num] = (program, agency)
            out.service_places[num] = places
    placed = {out.places[i].owner["ResourceAgencyNum"] for places in out.service_places.values()
              for i in places}
    for g in groups:
        agency = agencies.get(g)
        for site in kids.get((g, "Site"), []):
            num = site["ResourceAgencyNum"]
            if num not in placed:
                out.services[num] = (site, agency)
                out.service_places[num] = [site_place[num]]
        alone = not kids.get((g, "Site")) and not kids.get((g, "Program"))
        if agency is not None and alone and (
                agency["AgencyDescription"] or has_point(agency) or agency["PhysicalPostalCode"]
                or agency["TaxonomyCodes"] or agency.get("Tax")):
            out.services[g] = (agency, None)
            out.service_places[g] = [agency_place[g]] if g in agency_place else []
    return out


# -- the directory, read back -----------------------------------------------------------------


def rows(db: Database, table: str, **where: Any) -> list[dict[str, Any]]:
    """Rows of a directory table matching every `column=value`."""
    t = hsds_tables[table]
    query = select(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with db.session() as session:
        return [dict(r) for r in session.execute(query).mappings()]


def one(db: Database, table: str, **where: Any) -> dict[str, Any]:
    """The single matching row."""
    found = rows(db, table, **where)
    assert len(found) == 1, (table, where, len(found))
    return found[0]


def count(db: Database, table: str, **where: Any) -> int:
    """Number of matching rows."""
    t = hsds_tables[table]
    query = select(func.count()).select_from(t)
    for column, value in where.items():
        query = query.where(t.c[column] == value)
    with db.session() as session:
        return session.execute(query).scalar_one()


def record_id(path: Path, table: str, number: str) -> str:
    """The directory id of an export record's row in `table`."""
    return directory_id(SOURCES[path], table, number)


def categories(db: Database, service_id: str) -> set[str]:
    """The category ids of a service."""
    with db.session() as session:
        return set(session.execute(select(service_category.c.category_id).where(
            service_category.c.service_id == service_id)).scalars())


def locations_of(db: Database, service_id: str) -> list[dict[str, Any]]:
    """The locations a service is offered at."""
    return [one(db, "location", id=sal["location_id"])
            for sal in rows(db, "service_at_location", service_id=service_id)]


def check_categories(db: Database, service_id: str, row: dict[str, str]) -> None:
    """Categories come from the row's AIRS codes (and the term names the file gives)."""
    found = categories(db, service_id)
    names = [t.strip() for t in row["TaxonomyTerm"].split(";") if t.strip()]
    assert found
    assert categorize(terms_in(row)) <= found <= categorize(terms_in(row) + names)


def terms_in(row: dict[str, str]) -> list[str]:
    """The AIRS codes of a raw row, in order ("A; B * C" -> A, B, C)."""
    return [c.strip() for c in re.split(r"[;*]", row["TaxonomyCodes"]) if c.strip()]


# -- checks shared by both exports --------------------------------------------------------------


def check_counts(db: Database, path: Path, report: RunReport, want: Expected) -> None:
    """The run report and the directory agree with the figures computed from the raw CSV."""
    counts = report.counts
    assert report.status == "done"
    assert counts["organization"]["read"] == counts["organization"]["new"] == want.organizations
    assert counts["service"]["read"] == counts["service"]["new"] == len(want.services)
    for flag in ("hidden", "inactive", "not_referable"):
        assert counts["service"].get(flag, 0) == want.count(flag), flag
    assert counts["location"]["new"] == len(want.places)
    sals = sum(len(p) for p in want.service_places.values())
    assert counts["service_at_location"]["new"] == sals
    # Every location with coordinates keeps them ("exact"); the others were placed from their
    # address, or reported as not placeable.
    assert report.precision["exact"] == want.with_coordinates
    assert sum(report.precision.values()) == len(want.places)
    unplaced = [p for p in report.problems if p.field == "latitude"
                and "could not be placed" in p.why]
    without_address = sum(
        not any(r["Latitude"] for r in p.rows) and not any(
            p.owner[c] for c in ("PhysicalAddress1", "PhysicalCity", "PhysicalStateProvince",
                                 "PhysicalPostalCode")) for p in want.places)
    assert report.precision.get("none", 0) == len(unplaced) + without_address
    assert {e.line for e in report.problems.errors} == want.error_lines
    # The directory holds what the report says.
    assert count(db, "organization") == want.organizations
    assert count(db, "service") == len(want.services)
    assert count(db, "service", is_hidden=True) == want.count("hidden")
    assert count(db, "service", status="inactive") == want.count("inactive")
    assert count(db, "service", is_referable=False) == want.count("not_referable")
    assert count(db, "location", geocode_precision="exact") == want.with_coordinates
    assert count(db, "location", is_confidential=True) == want.confidential
    for location in rows(db, "location", is_confidential=True):
        for address in rows(db, "address", location_id=location["id"]):
            assert not address["address_1"]
        if location["latitude"] is not None:
            assert location["latitude"] == round(location["latitude"], 2)
            assert location["longitude"] == round(location["longitude"], 2)


def check_reimport(db: Database, path: Path, first: RunReport) -> None:
    """The same export again changes nothing and reports every row unchanged."""
    before = {t: count(db, t) for t in first.counts if t in hsds_tables}
    again = load(db, path, source=SOURCES[path])
    assert again.status == "done"
    for table, outcomes in again.counts.items():
        for outcome in CHANGES:
            assert not outcomes.get(outcome), (table, outcome, outcomes[outcome])
        if table in hsds_tables:
            assert outcomes["unchanged"] == first.counts[table]["new"], table
    assert not again.changed_service_ids
    assert {t: count(db, t) for t in before} == before
    assert len(again.problems) == len(first.problems)


# -- fast checks without a database ---------------------------------------------------------------


def test_street_key_matches_spellings_of_one_place() -> None:
    """Spellings of one address match; other addresses and withheld streets do not."""
    key = airs.street_key
    assert key("360 Fourth Street", "94107") == key("360 - 4th Street", "94107-2605")
    assert key("1156 Valencia", "94110") == key("1156 Valencia Street, Suite 2", "94110")
    assert key("5656 A 3Rd Street, NE", "20011") != key("5656A 3rd Street, NW", "20011")
    assert key("360 Fourth Street", "94107") != key("360 Fourth Street", "94103")
    assert key("Confidential", "20043") is None
    assert key("", "20043") is None


def test_languages_are_split_and_coded() -> None:
    """Free-text language lists become (name, ISO code) pairs."""
    parse = airs.parse_languages
    assert parse("English, Spanish") == [("English", "en"), ("Spanish", "es")]
    assert parse("English; Spanish and French") == [
        ("English", "en"), ("Spanish", "es"), ("French", "fr")]
    assert parse("Chinese (Cantonese, Mandarin)") == [
        ("Chinese", "zh"), ("Cantonese", "zh"), ("Mandarin", "zh")]
    # SF lost its line breaks between values.
    assert parse("SpanishChinese (Cantonese)") == [
        ("Spanish", "es"), ("Chinese", "zh"), ("Cantonese", "zh")]
    assert parse("American Sign Language by contract") == [("American Sign Language", "ase")]
    assert parse("TDD and some Spanish") == [("Spanish", "es")]
    assert parse("Fujinese") == [("Fujinese", None)]  # a language the table does not know
    assert parse("None") == []
    assert parse("140 Languages through the AT&T Language Line") == []


def test_detect(tmp_path: Path) -> None:
    """AIRS headers are recognised; other CSVs and folders are not."""
    header = "ResourceAgencyNum,PublicName,TaxonomyLevelName,ParentAgencyNum\n"
    (tmp_path / "export.csv").write_text(header + "1,A,Agency,0\n", encoding="utf-8")
    (tmp_path / "other.csv").write_text("id,name\n1,A\n", encoding="utf-8")
    assert airs.detect(tmp_path / "export.csv")
    assert find_loader(tmp_path / "export.csv").format == "airs"
    assert not airs.detect(tmp_path / "other.csv")
    assert not airs.detect(tmp_path)


@pytest.mark.shared
@pytest.mark.parametrize("path", [DC, SF], ids=["dc", "sf"])
def test_real_exports_are_detected(path: Path) -> None:
    """Both real exports are picked up as AIRS without naming the format."""
    assert airs.detect(path)
    assert find_loader(path).format == "airs"


@pytest.mark.shared
@pytest.mark.parametrize("path", [DC, SF], ids=["dc", "sf"])
def test_every_record_is_read_or_reported(path: Path) -> None:
    """Each CSV row of each level is the source of some HSDS row, or of an error."""
    want = expected(path)
    problems = Problems()
    lines = {r.line for r in airs.read(path, problems)}
    level_of = {int(r["_line"]): r["TaxonomyLevelName"] for r in want.records}
    used = Counter(level_of[line] for line in lines if line in level_of)
    reported = Counter(level_of[p.line] for p in problems.errors if p.line in level_of)
    assert used + reported == want.levels
    assert {p.line for p in problems.errors} == want.error_lines


# -- small export: every level and rule, no shared data needed ----------------------------------

SMALL_COLUMNS = (
    "ResourceAgencyNum,PublicName,TaxonomyLevelName,ParentAgency,ParentAgencyNum,"
    "ConnectsToSiteNum,ConnectsToProgramNum,AgencyStatus,ExcludeFromWebsite,AgencyDescription,"
    "PhysicalAddress1,PhysicalCity,PhysicalStateProvince,PhysicalPostalCode,"
    "PhysicalAddressIsPrivate,Latitude,Longitude,Phone1Number,Phone1Name,HoursOfOperation,"
    "LanguagesOffered,Eligibility,TaxonomyCodes,TaxonomyTerm"
)
SMALL_ROWS = [
    # An agency that is only itself: an organization, and a service at its address.
    "1,Lone Pantry,Agency,Lone Pantry,0,,,Active,No,Gives food boxes,10 Main St,Washington,DC,"
    "20001,No,38.9,-77.01,202-555-0100,Main,\"Monday - Friday, 9 am - 5 pm\",English; Spanish,"
    "Adults 18 and older,BD-1800.2000,Term A",
    # An agency with two sites and one program placed at a site by a ProgramAtSite row.
    "2,Big Agency,Agency,Big Agency,0,,,\"Active, but do not refer\",Yes,Many things,"
    "20 Oak Ave,Washington,DC,20002,No,38.91,-77.02,202-555-0200,Main,,,,,",
    "3,Oak Site,Site,Big Agency,2,,,Active,No,,20 Oak Avenue,Washington,DC,20002,No,38.91,"
    "-77.02,,,Mon-Fri 9-5,,,,",
    "4,Hidden Site,Site,Big Agency,2,,,Inactive,No,,,Washington,DC,20003,Yes,,,,,,,,,",
    "5,Big Agency - Clinic,Program,Big Agency,2,,,Active,No,Sees patients,,,,,No,,,,,,,,"
    "LT-1750 * YB-8000,Term B",
    "6,,ProgramAtSite,Big Agency,2,3,5,Active,No,,20 Oak Avenue,Washington,DC,20002,No,38.91,"
    "-77.02,,,Tuesdays 1-3 pm,,,,",
    # A program-at-site naming a program that is not in the export: an error.
    "7,,ProgramAtSite,Big Agency,2,3,99,Active,No,,,,,,No,,,,,,,,,",
    # One naming a site that is not in the export, with an address of its own: used.
    "9,,ProgramAtSite,Big Agency,2,77,5,Active,No,,40 Pine St,Washington,DC,20005,No,,,,,,,,,",
    # An inactive one: the program is not offered there.
    "10,,ProgramAtSite,Big Agency,2,4,5,Inactive,No,,,,,,No,,,,,,,,,",
    # A site whose agency row is missing: an organization from its ParentAgency name.
    "8,Orphan Site,Site,Missing Agency,50,,,Active,No,,30 Elm St,Washington,DC,20004,No,38.92,"
    "-77.03,202-555-0300,Main,,,,,",
]


def test_small_export_assembles_every_level(db: Database, tmp_path: Path) -> None:
    """Each level and rule of the loader on a tiny hand-made export."""
    path = tmp_path / "small.csv"
    path.write_text("\n".join([SMALL_COLUMNS, *SMALL_ROWS]) + "\n", encoding="utf-8")
    report = load(db, path, source="small")
    assert report.status == "done"
    assert [(e.line, e.field) for e in report.problems.errors] == [(8, "ConnectsToProgramNum")]
    whys = [p.why for p in report.problems]
    assert any("agency 50 is not in this export" in why for why in whys)
    assert any("site '77' is not in this export" in why for why in whys)
    assert any("inactive or excluded from the website" in why for why in whys)

    def sid(num: str, table: str = "service") -> str:
        """The directory id of a record of the small export."""
        return directory_id("small", table, num)

    assert {r["record_source_id"] for r in rows(db, "organization")} == {"1", "2", "50"}
    assert one(db, "organization", id=sid("50", "organization"))["name"] == "Missing Agency"
    # Services: the lone agency, the program, the hidden site (no program there), the orphan.
    assert {r["record_source_id"] for r in rows(db, "service")} == {"1", "5", "4", "8"}
    lone = one(db, "service", id=sid("1"))
    assert (lone["name"], lone["description"], lone["status"]) == (
        "Lone Pantry", "Gives food boxes", "active")
    assert lone["eligibility"]["min_age"] == 18
    assert {(r["name"], r["code"]) for r in rows(db, "language", service_id=lone["id"])} == {
        ("English", "en"), ("Spanish", "es")}
    assert [loc["name"] for loc in locations_of(db, lone["id"])] == ["Lone Pantry"]
    assert [p["number"] for p in rows(db, "phone", service_id=lone["id"])] == ["202-555-0100"]
    hours = rows(db, "schedule", service_id=lone["id"])
    assert hours and hours[0]["opens_at"] == "09:00" and hours[0]["byday"] == "MO,TU,WE,TH,FR"
    assert categories(db, lone["id"]) == categorize("BD-1800.2000")
    term = one(db, "taxonomy_term", record_source_id="BD-1800.2000")
    assert (term["code"], term["name"]) == ("BD-1800.2000", "Term A")
    # The program inherits its agency's flags and is offered at the site its link names, with
    # the link's own hours; that site is then not a service of its own.
    clinic = one(db, "service", id=sid("5"))
    assert (clinic["is_hidden"], clinic["is_referable"], clinic["status"]) == (
        True, False, "active")
    links = rows(db, "service_at_location", service_id=clinic["id"])
    assert {(r["record_source_id"], r["location_id"]) for r in links} == {
        ("6", sid("3", "location")), ("9", sid("9", "location"))}
    sal = next(r for r in links if r["record_source_id"] == "6")
    assert one(db, "schedule", service_at_location_id=sal["id"])["description"] == \
        "Tuesdays 1-3 pm"
    assert {t["code"] for t in rows(db, "taxonomy_term")} >= {"LT-1750", "YB-8000"}
    # The agency's own address is its Oak site: one location, not two (plus the hidden site
    # and the address of program-at-site 9).
    assert count(db, "location", organization_id=sid("2", "organization")) == 3
    # The inactive private site is the agency's service there, kept, inactive, hidden, with the
    # agency's phone, a ZIP-placed point that is coarsened, and no street.
    hidden = one(db, "service", id=sid("4"))
    assert (hidden["name"], hidden["status"], hidden["is_hidden"]) == (
        "Big Agency", "inactive", True)
    assert [p["number"] for p in rows(db, "phone", service_id=hidden["id"])] == ["202-555-0200"]
    place = one(db, "location", id=sid("4", "location"))
    assert place["is_confidential"] and place["geocode_precision"] == "zip"
    assert place["latitude"] == round(place["latitude"], 2)
    assert one(db, "address", location_id=place["id"])["address_1"] == ""
    orphan = one(db, "service", id=sid("8"))
    assert orphan["name"] == "Missing Agency"
    assert orphan["organization_id"] == sid("50", "organization")


# -- the real exports, end to end ---------------------------------------------------------------


def import_and_count(db: Database, path: Path) -> tuple[RunReport, Expected]:
    """Import the export and check every figure against the raw CSV."""
    want = expected(path)
    report = load(db, path, source=SOURCES[path])
    check_counts(db, path, report, want)
    return report, want


@pytest.mark.shared
@pytest.mark.slow
def test_dc_export_end_to_end(db: Database) -> None:
    """DC 211: counts from the raw CSV, one known program, a withheld address, re-import."""
    report, want = import_and_count(db, DC)
    raw = {r["ResourceAgencyNum"]: r for r in want.records}
    assert want.levels == {"Agency": 494, "Program": 1637, "Site": 1}
    # Barney Neighborhood House - Senior Program (record 372285).
    service = one(db, "service", id=record_id(DC, "service", "372285"))
    assert service["name"] == "Barney Neighborhood House - Senior Program"
    assert one(db, "organization", id=service["organization_id"])["name"] == \
        "Barney Neighborhood House"
    assert (service["status"], service["is_referable"], service["is_hidden"]) == (
        "active", True, False)
    assert service["fees_description"] == "No Fee"
    assert service["application_process"] == "Telephone, By Appointment, Walk-In"
    assert service["url"] == "http://www.barneyneighborhoodhouse.org"
    # Its three programs at 5656A 3rd Street NW share one location; the agency's own
    # (mistyped "NE") address is another, with the agency's office hours.
    [location] = locations_of(db, service["id"])
    address = one(db, "address", location_id=location["id"], address_type="physical")
    assert (address["address_1"], address["city"], address["state_province"],
            address["postal_code"]) == ("5656 A 3Rd Street, NW", "Washington", "DC", "20011")
    assert (location["latitude"], location["longitude"], location["geocode_precision"]) == (
        38.952387, -77.017836, "exact")
    sharing = {s["record_source_id"] for s in rows(db, "service_at_location",
                                                   location_id=location["id"])}
    assert sharing == {f"{n}@{location['record_source_id']}"
                       for n in ("372457", "372465", "372285")}
    office = one(db, "location", id=record_id(DC, "location", "371792"))
    assert one(db, "schedule", location_id=office["id"])["opens_at"] == "08:30"
    phones = {(p["number"], p["type"]) for p in rows(db, "phone", service_id=service["id"])}
    assert phones == {("(202) 939-9020", "voice"), ("(202) 939-5755", "fax")}
    [hours] = rows(db, "schedule", service_id=service["id"])
    assert (hours["byday"], hours["opens_at"], hours["closes_at"]) == (
        "MO,TU,WE,TH,FR", "08:30", "16:30")
    assert hours["description"] == "8:30 am - 4:30 pm, Monday - Friday"
    assert service["eligibility"]["min_age"] == 60
    assert service["eligibility"]["residency"] == "District of Columbia"
    languages = rows(db, "language", service_id=service["id"])
    assert {(r["code"], r["note"]) for r in languages} == {
        ("en", "English, Spanish"), ("es", "English, Spanish")}
    check_categories(db, service["id"], raw["372285"])
    codes = terms_in(raw["372285"])
    names = [t.strip() for t in raw["372285"]["TaxonomyTerm"].split(";") if t.strip()]
    linked = {a["taxonomy_term_id"] for a in rows(db, "attribute", link_id=service["id"])}
    terms = {t["code"]: t["name"] for t in rows(db, "taxonomy_term") if t["id"] in linked}
    assert terms == dict(zip(codes, names, strict=True))
    area = one(db, "service_area", service_id=service["id"])
    assert area["name"] == "Residents of Wards 1 and 4 of the District of Columbia"
    # DC writes a withheld address as the street "Confidential": record 372610.
    [hidden_place] = locations_of(db, record_id(DC, "service", "372610"))
    assert hidden_place["is_confidential"]
    assert (hidden_place["latitude"], hidden_place["longitude"]) == (38.9, -77.03)
    assert one(db, "address", location_id=hidden_place["id"],
               address_type="physical")["address_1"] == ""
    check_reimport(db, DC, report)


@pytest.mark.shared
@pytest.mark.slow
def test_sf_export_end_to_end(db: Database) -> None:
    """SF 211: counts, a known program and site service, a private site, re-import."""
    report, want = import_and_count(db, SF)
    raw = {r["ResourceAgencyNum"]: r for r in want.records}
    assert want.levels == {"Site": 1960, "Agency": 841, "Program": 20, "ProgramAtSite": 3}
    # SOUTH OF MARKET CORPS (program 10607583), placed at the Salvation Army's site at the
    # same address spelled differently ("360 Fourth Street" / "360 - 4th Street").
    service = one(db, "service", id=record_id(SF, "service", "10607583"))
    assert service["name"] == "SOUTH OF MARKET CORPS"
    assert one(db, "organization", id=service["organization_id"])["name"] == \
        "THE SALVATION ARMY GOLDEN STATE DIVISION"
    [location] = locations_of(db, service["id"])
    assert location["record_source_id"] == "10598385"
    assert location["name"] == "SOUTH OF MARKET CORPS AND SENIOR ACTIVITIES"
    address = one(db, "address", location_id=location["id"])
    assert (address["address_1"], address["city"], address["state_province"],
            address["postal_code"]) == ("360 - 4th Street", "San Francisco", "CA", "94107")
    assert (location["latitude"], location["longitude"]) == (37.7757, -122.3952)
    assert count(db, "service", id=record_id(SF, "service", "10598385")) == 0
    phones = {(p["number"], p["type"], p["description"])
              for p in rows(db, "phone", service_id=service["id"])}
    assert phones == {("415-777-2677", "voice", "Main"), ("415-777-2351", "fax", "Fax"),
                      ("415-777-2677", "voice", "Toll free: Front Desk")}
    [hours] = rows(db, "schedule", service_id=service["id"])
    assert (hours["byday"], hours["opens_at"], hours["closes_at"]) == (
        "MO,TU,WE,TH,FR", "08:30", "15:00")
    assert service["eligibility_description"] == \
        "Senior (age 55 or over)\nOlder adult (age 55 or over)"  # markup removed
    assert service["eligibility"]["min_age"] == 55
    assert "seniors" in service["eligibility"]["populations"]
    assert {(r["name"], r["code"]) for r in rows(db, "language", service_id=service["id"])} \
        == {("Chinese", "zh"), ("Cantonese", "zh"), ("Mandarin", "zh")}
    check_categories(db, service["id"], raw["10607583"])
    # A site without programs is its agency's service there: ON LOK's 30th Street site,
    # with the site's hours and languages, the agency's description, phones and `Tax` term.
    site_service = one(db, "service", id=record_id(SF, "service", "10597411"))
    agency = raw[raw["10597411"]["ParentAgencyNum"]]
    assert site_service["name"] == "ON LOK LIFEWAYS"
    assert site_service["description"] == agency["AgencyDescription"]
    assert [loc["name"] for loc in locations_of(db, site_service["id"])] == [
        "30TH STREET SENIOR SERVICES"]
    assert {p["number"] for p in rows(db, "phone", service_id=site_service["id"])} >= {
        agency["Phone1Number"]}
    assert one(db, "schedule", service_id=site_service["id"])["byday"] == \
        "MO,TU,WE,TH,FR,SA"
    assert {r["code"] for r in rows(db, "language", service_id=site_service["id"])} == {
        "es", "zh"}
    [attribute] = rows(db, "attribute", link_id=site_service["id"])
    assert one(db, "taxonomy_term", id=attribute["taxonomy_term_id"])["name"] == \
        agency["Tax"]
    # A private (confidential) site: no street, a coarsened point from its ZIP.
    private_site = raw["10597327"]
    assert private_site["PhysicalAddressIsPrivate"] == "Yes"
    place = one(db, "location", id=record_id(SF, "location", "10597327"))
    assert place["is_confidential"] and place["geocode_precision"] == "zip"
    assert (place["latitude"], place["longitude"]) == (
        round(place["latitude"], 2), round(place["longitude"], 2))
    address = one(db, "address", location_id=place["id"], address_type="physical")
    assert address["postal_code"] == "94114"
    assert all(a["address_1"] == "" for a in rows(db, "address", location_id=place["id"]))
    assert one(db, "service", id=record_id(SF, "service", "10597327"))["is_hidden"] is False
    check_reimport(db, SF, report)
