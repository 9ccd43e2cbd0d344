"""Ohana CSV loader: the San Mateo County sample end to end, known records, hours and holidays.

Expected figures are computed here from the raw CSV files with `csv`, independently of the
loader; only the directory's own category mapping is shared with it.
"""

from __future__ import annotations

import csv
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from indexer.loaders import ohana
from indexer.pipeline import RunReport, load
from indexer.records import Problems
from service.db import Database
from service.directory.categories import categorize
from service.directory.schedules import OpenStatus, open_status, rule_from_hsds
from service.directory.tables import hsds_tables, service_category
from tests.conftest import DATASETS

OHANA = DATASETS / "hsds_ohana_smc_sample"
SOURCE = "smc"
LOS_ANGELES = ZoneInfo("America/Los_Angeles")

pytestmark = pytest.mark.shared


def raw(name: str) -> list[dict[str, str]]:
    """One CSV file of the sample as the csv module reads it."""
    with open(OHANA / name, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def stored(db: Database, table: str) -> list[dict[str, Any]]:
    """Every row of one directory table that came from the sample."""
    t = hsds_tables[table]
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(t).where(t.c.record_source == SOURCE)).mappings()]


def by_source_id(db: Database, table: str) -> dict[str, dict[str, Any]]:
    """Rows of one table keyed by the sample's own ids."""
    return {r["record_source_id"]: r for r in stored(db, table)}


def categories_of(db: Database, service_id: str) -> set[str]:
    """The directory categories stored for one service (directory id)."""
    with db.session() as session:
        return set(session.execute(select(service_category.c.category_id).where(
            service_category.c.service_id == service_id)).scalars())


def taxonomy_codes(value: str) -> list[str]:
    """The codes in a services.csv taxonomy_ids cell ("105, 108, 108-05")."""
    return [c for c in re.split(r"[\s,;]+", value) if c]


@pytest.fixture
def loaded(db: Database) -> tuple[Database, RunReport]:
    """The sample imported once into a fresh database."""
    report = load(db, OHANA, source=SOURCE)
    assert report.status == "done"
    return db, report


def test_detect() -> None:
    assert ohana.detect(OHANA)
    assert not ohana.detect(DATASETS / "hsds_open211_miami")
    assert not ohana.detect(OHANA / "services.csv")


def test_counts_match_the_files_and_reimport_is_unchanged(
        loaded: tuple[Database, RunReport]) -> None:
    db, report = loaded
    assert not report.problems.errors, [str(p) for p in report.problems.errors]
    services = raw("services.csv")
    assert report.counts["service"]["read"] == report.counts["service"]["new"] == len(services)
    assert report.counts["organization"]["new"] == len(raw("organizations.csv"))
    # One service_at_location per service (Ohana services point at one location).
    assert report.counts["service_at_location"]["new"] == sum(
        1 for s in services if s["location_id"].strip())
    locations = raw("locations.csv")
    assert report.counts["location"]["new"] == len(locations)
    with_point = [r for r in locations if r["latitude"].strip() and r["longitude"].strip()]
    assert report.precision["exact"] == len(with_point) == 21
    # The one without coordinates is virtual and has only a mail address: nothing to place.
    assert report.precision["none"] == len(locations) - len(with_point)
    virtual = [r for r in stored(db, "location") if r["location_type"] == "virtual"]
    assert [r["record_source_id"] for r in virtual] == [
        r["id"] for r in locations if r["virtual"] == "true"]

    addresses = stored(db, "address")
    assert sum(a["address_type"] == "physical" for a in addresses) == len(raw("addresses.csv"))
    assert sum(a["address_type"] == "postal" for a in addresses) == len(
        raw("mail_addresses.csv"))
    assert report.counts["phone"]["new"] == sum(1 for p in raw("phones.csv") if p["number"])
    assert report.counts["contact"]["new"] == len(raw("contacts.csv"))
    assert report.counts["program"]["new"] == len(raw("programs.csv"))
    assert report.counts["taxonomy_term"]["new"] == len(raw("taxonomy.csv"))

    # Keywords, kept as one attribute per service that has them.
    keywords = {r["record_source_id"].split(":")[1]: r["value"]
                for r in stored(db, "attribute") if r["label"] == "keywords"}
    assert keywords == {s["id"]: s["keywords"].strip() for s in services if s["keywords"].strip()}

    # Categories from the old Open Eligibility codes, each with its taxonomy.csv name.
    names = {t["taxonomy_id"]: t["name"] for t in raw("taxonomy.csv")}
    expected = {(s["id"], c) for s in services for code in taxonomy_codes(s["taxonomy_ids"])
                for c in categorize([code, names.get(code, "")])}
    ids = {r["id"]: r["record_source_id"] for r in stored(db, "service")}
    with db.session() as session:
        pairs = session.execute(select(service_category)).all()
    assert {(ids[sid], cat) for sid, cat in pairs if sid in ids} == expected
    assert expected

    again = load(db, OHANA, source=SOURCE)
    for table, counts in again.counts.items():
        if table != "search":
            assert counts["unchanged"] == counts["read"], (table, dict(counts))
            assert not counts.get("new") and not counts.get("changed"), table


def test_known_record_second_career_employment_program(
        loaded: tuple[Database, RunReport]) -> None:
    db, _report = loaded
    service = by_source_id(db, "service")["2"]
    assert service["name"] == "Second Career Employment Program"
    assert service["status"] == "active"
    assert service["fees_description"] == "None. Donations requested of clients who can afford it."
    assert service["eligibility_description"].startswith("Age 55 or over, county resident")
    assert service["eligibility"]["min_age"] == 55
    assert service["eligibility"]["max_age"] is None
    organization = next(o for o in stored(db, "organization")
                        if o["id"] == service["organization_id"])
    assert organization["name"] == "Peninsula Family Service"
    location = by_source_id(db, "location")["2"]
    sal = by_source_id(db, "service_at_location")["2"]
    assert (sal["service_id"], sal["location_id"]) == (service["id"], location["id"])
    assert location["latitude"] == pytest.approx(37.5639843)
    assert location["time_zone"] == LOS_ANGELES.key
    addresses = {a["address_type"]: a for a in stored(db, "address")
                 if a["location_id"] == location["id"]}
    physical, postal = addresses["physical"], addresses["postal"]
    assert (physical["address_1"], physical["city"], physical["state_province"],
            physical["postal_code"], physical["country"]) == (
        "24 Second Avenue", "San Mateo", "CA", "94401", "US")
    assert postal["attention"] == "PFS Second Career Services"
    phones = sorted((p["number"], p["type"], p["extension"]) for p in stored(db, "phone")
                    if p["location_id"] == location["id"])
    assert phones == [("650 403-4300", "voice", 4385), ("650 403-4302", "fax", None)]
    contact = next(c for c in stored(db, "contact") if c["location_id"] == location["id"])
    assert (contact["name"], contact["title"]) == (
        "Brenda Brown", "Director, Second Career Services")
    languages = sorted(lang["name"] for lang in stored(db, "language")
                       if lang["location_id"] == location["id"])
    assert languages == ["Chinese (Mandarin)", "Italian", "Spanish", "Tagalog"]
    access = [a["description"] for a in stored(db, "accessibility")
              if a["location_id"] == location["id"]]
    assert access == ["Wheelchair accessible"]
    funding = sorted(f["source"] for f in stored(db, "funding")
                     if f["service_id"] == service["id"])
    assert funding == ["County", "Federal", "State"]
    areas = [a["name"] for a in stored(db, "service_area") if a["service_id"] == service["id"]]
    assert areas == ["San Mateo County"]
    assert categories_of(db, service["id"]) == set()  # no taxonomy_ids in the file


def test_hours_holidays_and_categories_of_the_example_location(
        loaded: tuple[Database, RunReport]) -> None:
    """Location 22 / service 22 carry the sample's weekday hours, holidays and taxonomy ids."""
    db, report = loaded
    location = by_source_id(db, "location")["22"]
    service = by_source_id(db, "service")["22"]
    schedules = stored(db, "schedule")
    weekly = sorted((s for s in schedules if s["location_id"] == location["id"]
                     and not s["is_closure"] and s["valid_from"] is None),
                    key=lambda s: s["record_source_id"])
    assert [(s["byday"], s["opens_at"], s["closes_at"]) for s in weekly] == [
        ("MO,TU,WE,TH,FR", "08:00", "17:00"), ("SA", "10:00", "18:00"), ("SU", "11:00", "17:00")]
    service_hours = sorted((s["byday"], s["opens_at"], s["closes_at"]) for s in schedules
                           if s["service_id"] == service["id"] and not s["is_closure"])
    # "14:00" to "4:00 PM" and "10:00" to "3pm": mixed styles read alike.
    assert service_hours == [("MO", "08:00", "12:00"), ("MO", "14:00", "16:00"),
                             ("WE", "10:00", "15:00")]

    # Holidays: closure rows with is_closure. "January 01, 0001" means every year, so it is
    # stored for this year and the next; 24 Dec 2015 has special hours (10:00-16:00).
    holidays = raw("holiday_schedules.csv")
    closures = [s for s in schedules if s["is_closure"]]
    assert closures and all(s["valid_from"] and s["valid_to"] for s in closures)
    annual = [h for h in holidays if h["start_date"].endswith("0001")]
    years = (date.today().year, date.today().year + 1)
    assert sorted(s["valid_from"] for s in closures if s["notes"] == "every year") == sorted(
        f"{y}-{_month_day(h['start_date'])}" for h in annual for y in years)
    assert sum(1 for s in closures if s["service_id"] == service["id"]) == 2 * sum(
        1 for h in annual if h["service_id"] == "22")

    rules = [rule_from_hsds(s) for s in schedules if s["location_id"] == location["id"]]
    tz = location["time_zone"]
    new_year = datetime(years[1], 1, 1, 12, 0, tzinfo=LOS_ANGELES)
    assert open_status(rules, at=new_year, tz=tz).status is OpenStatus.CLOSED
    after = datetime(years[1], 1, 2, 12, 0, tzinfo=LOS_ANGELES)
    assert open_status(rules, at=after, tz=tz).status is OpenStatus.OPEN
    summer = datetime(years[0], 7, 15, 12, 0, tzinfo=LOS_ANGELES)  # closed 1 June-1 September
    assert open_status(rules, at=summer, tz=tz).status is OpenStatus.CLOSED
    christmas_eve = datetime(2015, 12, 24, tzinfo=LOS_ANGELES)  # a Thursday: usually 8-17
    status = [open_status(rules, at=christmas_eve.replace(hour=h), tz=tz).status
              for h in (9, 12, 16)]
    assert status == [OpenStatus.CLOSED, OpenStatus.OPEN, OpenStatus.CLOSED]

    # Location 1's only row ("Monday", "9am", "03:00") cannot be read: kept as text.
    fair_oaks = by_source_id(db, "location")["1"]
    text_rows = [s for s in schedules if s["location_id"] == fair_oaks["id"]]
    assert [(s["description"], s["byday"], s["opens_at"]) for s in text_rows] == [
        ("Monday 9am-03:00", None, None)]

    # taxonomy_ids "105, 108, 108-05, 108-05-01, 111, 111-05": old Open Eligibility codes.
    row = next(s for s in raw("services.csv") if s["id"] == "22")
    codes = taxonomy_codes(row["taxonomy_ids"])
    assert codes == ["105", "108", "108-05", "108-05-01", "111", "111-05"]
    names = {t["taxonomy_id"]: t["name"] for t in raw("taxonomy.csv")}
    assert categories_of(db, service["id"]) == categorize(codes + [names[c] for c in codes])
    assert categorize(["108-05-01"]) <= categories_of(db, service["id"])
    labels = {a["label"]: a["value"] for a in stored(db, "attribute")
              if a["link_id"] == service["id"] and a["label"]}
    assert labels == {"keywords": "Salud, Medicina",
                      "audience": row["audience"], "accepted_payments": "Cash, Check, Credit Card"}
    assert not report.problems.errors


def _month_day(text: str) -> str:
    """"June 01, 0001" -> "06-01"."""
    return datetime.strptime(text.replace("0001", "2000"), "%B %d, %Y").strftime("%m-%d")


def test_phones_attach_where_their_columns_say() -> None:
    problems = Problems()
    rows = [r for r in ohana.read(OHANA, problems) if r.table == "phone"]
    by_id = {r.values["id"]: r.values for r in rows}
    for phone in raw("phones.csv"):
        values = by_id[phone["id"]]
        for fk in ("contact_id", "location_id", "organization_id", "service_id"):
            assert values.get(fk, "") == phone[fk].strip(), (phone["id"], fk)
    assert by_id["46"]["type"] == "textphone"  # Ohana "tty"
    assert by_id["59"]["type"] == "text"  # Ohana "sms"
    assert by_id["43"]["description"] == "Information (222-555-INFO)"  # vanity number kept
    assert not problems
