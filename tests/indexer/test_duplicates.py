"""Real duplicates: facilities on both SAMHSA lists are listed once, with both kinds of care."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from indexer.demo import DEMO_DIR
from indexer.duplicates import duplicate_key
from indexer.geocode import GeoTables
from indexer.pipeline import load
from service.db import Database
from service.directory.tables import service
from service.search.schemas import SearchQuery
from service.search.sqlite import SqliteSearchBackend

MH = DEMO_DIR / "samhsa_mental_health_facilities.csv"
SUT = DEMO_DIR / "samhsa_substance_use_treatment_facilities.csv"


def _keys(path: Path) -> Counter:
    """Facilities by (name, street, ZIP) straight from the raw file, zero-padded ZIPs; rows
    that repeat another row exactly (the loader keeps one) count once."""
    keys: Counter = Counter()
    seen = set()
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            content = tuple(v for k, v in row.items() if k)  # the first column is a row index
            if content in seen:
                continue
            seen.add(content)
            zip_code = row["zip"].strip().split(".")[0].zfill(5)
            key = duplicate_key(row["name1"].strip(), row["name1"].strip(), row["street1"],
                                zip_code)
            if key:
                keys[key] += 1
    return keys


def test_shared_keys_are_normalised_alike() -> None:
    a = duplicate_key("Hope Center, Inc.", "Hope Center Inc", "12 North Main Street", "06708")
    b = duplicate_key("HOPE CENTER INC", "hope center incorporated", "12 N. Main St", "06708-1234")
    assert a == b
    assert duplicate_key("Hope Center", "Hope", "12 Main St", "") is None


@pytest.mark.slow
def test_facilities_on_both_samhsa_lists_are_listed_once(sqlite_db: Database) -> None:
    load(sqlite_db, MH, format="flat:samhsa_mental_health", source="samhsa_mental_health")
    load(sqlite_db, SUT, format="flat:samhsa_substance_use", source="samhsa_substance_use")
    mh, sut = _keys(MH), _keys(SUT)
    both = set(mh) & set(sut)
    assert len(both) > 1000  # the dataset README speaks of about 1,738 overlapping rows
    expected = sum(n - 1 for n in (mh + sut).values() if n > 1)
    with sqlite_db.session() as session:
        merged = session.execute(select(func.count()).select_from(service)
                                 .where(service.c.duplicate_of.is_not(None))).scalar_one()
    # Every listing but one of each group points at the one kept (a few more where the
    # mapping's own cleaning joins spellings the raw comparison keeps apart).
    assert expected <= merged <= expected * 1.05
    # Search lists such a facility once, with mental health and substance use categories.
    backend = SqliteSearchBackend(sqlite_db)
    with sqlite_db.session() as session:
        kept, dup = session.execute(select(service.c.duplicate_of, service.c.id).where(
            service.c.duplicate_of.is_not(None)).limit(1)).one()
        name = session.execute(select(service.c.name).where(service.c.id == kept)).scalar_one()
    from indexer.geocode import Geocoder
    from service.search.service import locate

    with sqlite_db.session() as session:
        from service.directory.tables import hsds_tables
        sal, loc = hsds_tables["service_at_location"], hsds_tables["location"]
        lat, lon = session.execute(select(loc.c.latitude, loc.c.longitude)
                                   .join(sal, sal.c.location_id == loc.c.id)
                                   .where(sal.c.service_id == kept)).one()
    response = backend.search(SearchQuery(q=name, radius_mi=1, per_page=50),
                              locate(f"{lat},{lon}", Geocoder()))
    same = [r for r in response.results if r.name == name and r.distance_mi < 0.01]
    assert len(same) == 1
    assert {"1178"} & set(same[0].categories) or {"1181"} & set(same[0].categories)
    assert {"1220", "1214"} & set(same[0].categories)
    assert dup != kept
    assert GeoTables.default() is not None
