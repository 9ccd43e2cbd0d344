"""`signpost index rebuild`: recompute everything derived from the stored records.

Run it after upgrading Signpost (a better hours, eligibility or coverage parser, new geo
tables): parsed eligibility, structured coverage and time zones are derived again from the
text and coordinates each record keeps. Work goes in batches of short transactions, so the
directory stays writable meanwhile.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select, update

from indexer.geocode import timezone_for
from service.db import Database
from service.directory.eligibility import parse_eligibility
from service.directory.service_areas import parse_service_area
from service.directory.tables import hsds_tables, location, service

BATCH = 2000
service_area = hsds_tables["service_area"]


def rebuild(db: Database) -> Counter[str]:
    """Re-derive eligibility, coverage and time zones; return how many rows changed."""
    counts: Counter[str] = Counter()
    counts["eligibility"] = _rebuild_eligibility(db)
    counts["coverage"] = _rebuild_coverage(db)
    counts["time_zones"] = _rebuild_time_zones(db)
    return counts


def _batches(db: Database, query):  # noqa: ANN001, ANN202
    with db.session() as session:
        rows = session.execute(query).all()
    for start in range(0, len(rows), BATCH):
        yield rows[start:start + BATCH]


def _rebuild_eligibility(db: Database) -> int:
    changed = 0
    query = select(service.c.id, service.c.eligibility_description, service.c.minimum_age,
                   service.c.maximum_age, service.c.eligibility)
    for batch in _batches(db, query):
        with db.session(write=True) as session:
            for sid, text, lo, hi, current in batch:
                new = None
                if text or lo is not None or hi is not None:
                    new = parse_eligibility(text, minimum_age=lo, maximum_age=hi).to_dict()
                if new != current:
                    session.execute(update(service).where(service.c.id == sid)
                                    .values(eligibility=new))
                    changed += 1
    return changed


def _rebuild_coverage(db: Database) -> int:
    changed = 0
    query = select(service_area.c.id, service_area.c.name, service_area.c.description,
                   service_area.c.extent, service_area.c.extent_type, service_area.c.coverage)
    for batch in _batches(db, query):
        with db.session(write=True) as session:
            for area_id, name, description, extent, extent_type, current in batch:
                text = " ".join(filter(None, (name, description))) or None
                new = None
                if text or extent:
                    new = parse_service_area(text, extent=extent,
                                             extent_type=extent_type).to_dict()
                if new != current:
                    session.execute(update(service_area).where(service_area.c.id == area_id)
                                    .values(coverage=new))
                    changed += 1
    return changed


def _rebuild_time_zones(db: Database) -> int:
    changed = 0
    query = select(location.c.id, location.c.latitude, location.c.longitude,
                   location.c.time_zone).where(location.c.latitude.is_not(None))
    for batch in _batches(db, query):
        with db.session(write=True) as session:
            for loc_id, lat, lon, current in batch:
                zone = timezone_for(lat, lon)
                if zone != current:
                    session.execute(update(location).where(location.c.id == loc_id)
                                    .values(time_zone=zone))
                    changed += 1
    return changed
