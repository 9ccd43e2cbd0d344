"""Run reports of flat-list imports equal counts computed from the raw files, independently of
the importer (services, skipped rows, precision of the coordinates)."""

from __future__ import annotations

import csv

import pytest

from indexer.demo import DEMO_DIR
from indexer.geocode import GeoTables
from indexer.pipeline import load
from service.db import Database


def rows(name: str) -> list[dict[str, str]]:
    with open(DEMO_DIR / name, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def usable_point(lat: str, lon: str) -> bool:
    try:
        y, x = float(lat), float(lon)
    except ValueError:
        return False
    return -90 <= y <= 90 and -180 <= x <= 180 and (y, x) != (0.0, 0.0)


@pytest.mark.slow
def test_va_report(sqlite_db: Database) -> None:
    raw = rows("va_facilities_fy18q2.csv")
    services = [r for r in raw if r["PrimaryAttribute"] != "Cemetery"]
    report = load(sqlite_db, DEMO_DIR / "va_facilities_fy18q2.csv", format="flat:va_facilities",
                  source="va")
    assert report.counts["service"]["new"] == len(services) == 1705
    assert report.precision["exact"] == sum(usable_point(r["Latitude"], r["Longitude"])
                                            for r in services)
    assert not report.problems.errors


def test_dc_shelters_report(sqlite_db: Database) -> None:
    raw = rows("dc_homeless_shelter_locations.csv")
    report = load(sqlite_db, DEMO_DIR / "dc_homeless_shelter_locations.csv",
                  format="flat:dc_dhs_homeless_shelters", source="shelters")
    assert report.counts["service"]["new"] == len(raw) == 18
    assert report.precision == {"exact": sum(usable_point(r["LATITUDE"], r["LONGITUDE"])
                                             for r in raw)}


@pytest.mark.slow
def test_hud_report_places_offices_by_zip(sqlite_db: Database) -> None:
    raw = rows("hud_pha_contacts.csv")
    tables = GeoTables.default()

    def five(z: str) -> str:
        digits = z.strip().split("-")[0]
        return digits.zfill(5) if digits.isdigit() and 3 <= len(digits) <= 5 else ""

    at_zip = sum(1 for r in raw if five(r["zip_code"]) and tables.zip(five(r["zip_code"])))
    report = load(sqlite_db, DEMO_DIR / "hud_pha_contacts.csv", format="flat:hud_pha_contacts",
                  source="hud")
    assert report.counts["service"]["new"] == len(raw) == 3755
    assert report.precision.get("exact", 0) == 0  # the file has no coordinates
    assert report.precision["zip"] == at_zip
    # The rest are placed by city or state, or reported; none is silently dropped.
    assert sum(report.precision.values()) == len(raw)
