"""Search documents: one per service at a location, plus one per area-wide service without a
walk-in site. Built from the directory's records; both engines index the same documents.
"""

from __future__ import annotations

import json
from collections import defaultdict, namedtuple
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache
from typing import Any

from sqlalchemy import Connection, literal_column, select, text
from sqlalchemy.orm import Session

from service.directory.categories import category_tree
from service.directory.schedules import rule_from_hsds, weekly_open_slots
from service.directory.tables import hsds_tables, organization, service, service_category
from service.search import geo

SEARCHABLE_STATUSES = ("active", "temporarily closed")
BATCH = 1000

t_sal = hsds_tables["service_at_location"]
t_loc = hsds_tables["location"]
t_addr = hsds_tables["address"]
t_phone = hsds_tables["phone"]
t_sched = hsds_tables["schedule"]
t_lang = hsds_tables["language"]
t_area = hsds_tables["service_area"]
t_cost = hsds_tables["cost_option"]
t_access = hsds_tables["accessibility"]


@dataclass
class SearchDocument:
    """Everything search needs about one service at one place, denormalised."""

    key: str  # the service_at_location id, or "area:<service id>"
    service_id: str
    sal_id: str | None
    location_id: str | None
    name: str
    organization: str | None
    description: str
    categories: list[str]
    lat: float | None
    lon: float | None
    precision: str | None
    is_confidential: bool
    time_zone: str | None
    address: dict[str, Any]
    phones: list[dict[str, Any]]
    languages: list[str]
    cost: list[str]
    eligibility: dict[str, Any] | None
    coverage: list[dict[str, Any]]
    schedules: list[dict[str, Any]]
    hours_known: bool
    open_hours: str  # 168 chars, "1" where the place may be open that hour of the week
    open_certain: str  # 168 chars, "1" where it is surely open all that hour
    capacity_status: str | None
    capacity_updated_at: datetime | None
    verified_at: datetime | None
    updated_at: datetime | None
    status: str
    is_referable: bool
    accessibility: list[str]
    source: str
    source_id: str
    location_source_id: str | None
    area_tokens: list[str] = field(default_factory=list)

    def tags(self, categories: frozenset[str] | None = None, cell: int | None = None) -> str:
        """The place and category tokens of the document (`categories`: what
        `categories_with_ancestors` gives, and `cell` the point's finest geohash cell, when
        the caller has them already)."""
        if categories is None:
            categories = self.categories_with_ancestors()
        tokens = {f"c{cid}" for cid in categories}
        if self.lat is not None and self.lon is not None:
            if cell is None:
                cell = geo.cell(self.lat, self.lon, geo.PRECISIONS[-1])
            tokens.update(geo.cell_tokens(cell))
        tokens.update(self.area_tokens)
        return " ".join(sorted(tokens))

    def categories_with_ancestors(self) -> frozenset[str]:
        """The listing's categories and every broader one ("detox" is also "addiction")."""
        return _with_ancestors(tuple(self.categories))

    def display(self) -> dict[str, Any]:
        """What a result shows and explains (both engines store exactly this)."""
        verified = self.verified_at
        if isinstance(verified, datetime):
            verified = (verified if verified.tzinfo else verified.replace(tzinfo=UTC)).isoformat()
        return {
            "name": self.name, "organization": self.organization, "address": self.address,
            "phones": self.phones, "eligibility": self.eligibility, "schedules": self.schedules,
            "time_zone": self.time_zone, "precision": self.precision,
            "is_confidential": self.is_confidential, "languages": self.languages,
            "cost": self.cost, "capacity_status": self.capacity_status, "verified_at": verified,
            "categories": self.categories, "is_referable": self.is_referable,
            "is_area": self.sal_id is None, "sal_id": self.sal_id,
            "service_id": self.service_id, "source": self.source, "source_id": self.source_id,
            "location_source_id": self.location_source_id,
            "coverage_text": "; ".join(c.get("text") or "" for c in self.coverage if c) or None,
            "lat": self.lat, "lon": self.lon,
        }

    def body(self) -> str:
        """The searchable text besides name and organization."""
        tree = category_tree()
        names = [tree[c].name for c in self.categories if c in tree]
        return " ".join(filter(None, [self.description, " ".join(names)]))


@lru_cache(maxsize=4096)
def _with_ancestors(categories: tuple[str, ...]) -> frozenset[str]:
    """Categories and every broader one; listings share a few sets of categories, so each set
    is worked out once."""
    tree = category_tree()
    out = set(categories)
    for cid in categories:
        if cid in tree:
            out.update(a.id for a in tree.ancestors(cid))
    return frozenset(out)


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _grouped(conn: Connection | Session, table: Any, column: str, ids: Iterable[str],
             columns: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    """Rows of `table` whose `column` is one of `ids`, grouped by it, in the source's order:
    `columns` of them (and `column`) as named tuples, or every column, as mappings, when none
    are named."""
    ids = sorted(set(ids))
    out: dict[str, list[Any]] = defaultdict(list)
    if not ids:
        return out
    query = select(table) if not columns else select(*(table.c[c] for c in (column, *columns)))
    rows = conn.execute(query.where(_among(conn, table.c[column], ids))
                        .order_by(table.c.record_source_id), _ids_param(conn, ids))
    if not columns:
        for row in rows.mappings():
            out[row[column]].append(row)
        return out
    # A document uses a few columns of each row: fetching every one cost several times as
    # much (each date-time parsed, each JSON value decoded). A named tuple's fields read ten
    # times as fast as a result row's attributes.
    make = _record(column, columns)._make
    for row in rows:
        out[row[0]].append(make(row))
    return out


@cache
def _record(key: str, columns: tuple[str, ...]) -> Any:
    """The named tuple of a key column and other columns."""
    return namedtuple("Record", (key, *columns))  # type: ignore[misc]


def _is_sqlite(conn: Connection | Session) -> bool:
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.dialect.name == "sqlite"


def _among(conn: Connection | Session, column: Any, ids: list[str]) -> Any:
    """`column IN ids`; on SQLite the ids are one JSON parameter (`_ids_param`): thousands
    of bound parameters cost more to compile than to run."""
    if _is_sqlite(conn):
        return column.in_(select(literal_column("value")).select_from(text("json_each(:ids)")))
    return column.in_(ids)


def _ids_param(conn: Connection | Session, ids: list[str]) -> dict[str, str]:
    """The parameter `_among` needs."""
    return {"ids": json.dumps(ids)} if _is_sqlite(conn) else {}


def _languages(rows: list[Any]) -> list[str]:
    out = []
    for r in rows:
        for value in (r.code, r.name):
            if value:
                out.append(value.strip().lower())
    return sorted(set(out))


def _cost(svc: Any, costs: list[Any], eligibility: dict[str, Any] | None) -> list[str]:
    text = " ".join(filter(None, [svc.fees_description, svc.fees])).lower()
    tags = set()
    if any(w in text for w in ("free", "no fee", "no charge", "no cost")) or any(
            c.amount == 0 for c in costs if c.amount is not None):
        tags.add("free")
    if "sliding" in text:
        tags.add("sliding_scale")
    insurance = set((eligibility or {}).get("insurance") or [])
    for word in ("medicaid", "medicare", "insurance", "tricare"):
        if word in text:
            insurance.add("private" if word == "insurance" else word)
    if insurance - {"free", "sliding_scale", "uninsured"}:
        tags.add("insurance")
    tags.update(i for i in insurance if i not in ("free",))
    if "free" in insurance:
        tags.add("free")
    if "sliding_scale" in insurance:
        tags.add("sliding_scale")
    return sorted(tags)


def _coverage_tokens(coverage: dict[str, Any]) -> list[str]:
    tokens = []
    if coverage.get("kind") == "nation":
        tokens.append(geo.area_token("nation"))
    for state in coverage.get("states") or []:
        tokens.append(geo.area_token("state", state))
    for county in coverage.get("counties") or []:
        name, state = (county if isinstance(county, (list, tuple)) else (county, ""))
        tokens.append(geo.area_token("county", state, name))
    for city in coverage.get("cities") or []:
        name, state = (city if isinstance(city, (list, tuple)) else (city, ""))
        tokens.append(geo.area_token("city", state, name))
    for code in coverage.get("postal_codes") or []:
        tokens.append(geo.area_token("zip", code))
    return tokens


def _slots(rules: list[Any]) -> tuple[bool, str, str]:
    if not rules:
        return False, "0" * 168, "0" * 168
    slots = weekly_open_slots(rules)
    hours = "".join("1" if b in slots.hours else "0" for b in range(168))
    certain = "".join("1" if b in slots.certain and not slots.date_limited else "0"
                      for b in range(168))
    return slots.known, hours, certain


def _rules(rows: list[Any]) -> list[Any]:
    rules = []
    for row in rows:
        try:
            rule = rule_from_hsds(dict(row))
        except ValueError:
            continue
        if rule.opens_at is not None or rule.is_closure or rule.has_recurrence:
            rules.append(rule)
    return rules


def build_documents(conn: Connection | Session, service_ids: list[str]) -> Iterator[
        SearchDocument]:
    """The documents of these services (none for services that are not searchable)."""
    unused = _unused_links(conn) if len(service_ids) > BATCH else frozenset()
    for start in range(0, len(service_ids), BATCH):
        yield from _build_batch(conn, service_ids[start:start + BATCH], unused)


# Every (table, column) the builder looks rows up by: a stage is indexed on each before
# documents are built from it (indexer.prebuild).
LOOKUPS = (
    ("service", "duplicate_of"), ("service_category", "service_id"),
    ("service_at_location", "service_id"), ("address", "location_id"),
    ("phone", "service_id"), ("phone", "location_id"), ("schedule", "service_id"),
    ("schedule", "location_id"), ("schedule", "service_at_location_id"),
    ("language", "service_id"), ("language", "location_id"), ("service_area", "service_id"),
    ("cost_option", "service_id"), ("accessibility", "location_id"),
)
# Those a directory may not use at all: many exports have no schedules, languages, service
# areas, costs or accessibility, and phones belong to services or to locations, seldom both.
OPTIONAL_LINKS = tuple(link for link in LOOKUPS if link[0] not in (
    "service_category", "service_at_location", "address"))


def _unused_links(conn: Connection | Session) -> frozenset[tuple[str, str]]:
    """The (table, column) links of OPTIONAL_LINKS that no row uses: a large build asks once,
    rather than looking each batch of 1,000 services up in them (a lookup that finds nothing
    still costs a tenth of a small document; an edit meanwhile is reindexed after it)."""
    unused = set()
    for table, column in OPTIONAL_LINKS:
        col = hsds_tables[table].c[column]
        if conn.execute(select(col).where(col.is_not(None)).limit(1)).first() is None:
            unused.add((table, column))
    return frozenset(unused)


# The columns a document takes from each table (see `_grouped`).
SERVICE_COLUMNS = ("id", "name", "description", "eligibility", "fees_description", "fees",
                   "verified_at", "updated_at", "status", "is_referable", "record_source",
                   "record_source_id")
SITE_COLUMNS = ("id", "location_id", "is_active", "capacity_status", "capacity_updated_at")
LOCATION_COLUMNS = ("is_active", "latitude", "longitude", "geocode_precision",
                    "is_confidential", "time_zone", "record_source_id")
ADDRESS_COLUMNS = ("address_type", "address_1", "address_2", "city", "state_province",
                   "postal_code")
PHONE_COLUMNS = ("number", "extension", "type")
LANGUAGE_COLUMNS = ("code", "name")
_Service = namedtuple("_Service", (*SERVICE_COLUMNS, "org_name"))  # type: ignore[misc]


def _build_batch(conn: Connection | Session, ids: list[str],
                 unused: frozenset[tuple[str, str]] = frozenset()) -> Iterator[SearchDocument]:
    def grouped(table: Any, column: str, keys: Iterable[str],
                columns: tuple[str, ...] = ()) -> dict[str, list[Any]]:
        if (table.name, column) in unused:
            return {}
        return _grouped(conn, table, column, keys, columns)

    rows = conn.execute(
        select(*(service.c[c] for c in SERVICE_COLUMNS), organization.c.name.label("org_name"))
        .outerjoin(organization, organization.c.id == service.c.organization_id)
        .where(_among(conn, service.c.id, ids))
        .where(service.c.is_active).where(~service.c.is_hidden)
        .where(service.c.duplicate_of.is_(None))
        .where(service.c.status.in_(SEARCHABLE_STATUSES)), _ids_param(conn, ids))
    services = [_Service._make(row) for row in rows]
    if not services:
        return
    sids = [s.id for s in services]
    categories: dict[str, list[str]] = defaultdict(list)
    for sid, cid in conn.execute(select(service_category.c.service_id,
                                        service_category.c.category_id)
                                 .where(_among(conn, service_category.c.service_id, sids)),
                                 _ids_param(conn, sids)):
        categories[sid].append(cid)
    # A kept duplicate lists the categories of the listings merged into it.
    merged = () if ("service", "duplicate_of") in unused else conn.execute(
        select(service.c.duplicate_of, service_category.c.category_id)
        .join(service_category, service_category.c.service_id == service.c.id)
        .where(_among(conn, service.c.duplicate_of, sids)).where(service.c.is_active),
        _ids_param(conn, sids))
    for keeper, cid in merged:
        if cid not in categories[keeper]:
            categories[keeper].append(cid)
    sals = grouped(t_sal, "service_id", sids, SITE_COLUMNS)
    loc_ids = [s.location_id for rows in sals.values() for s in rows if s.location_id]
    locations = {k: v[0] for k, v in grouped(t_loc, "id", loc_ids, LOCATION_COLUMNS).items()}
    addresses = grouped(t_addr, "location_id", loc_ids, ADDRESS_COLUMNS)
    svc_phones = grouped(t_phone, "service_id", sids, PHONE_COLUMNS)
    loc_phones = grouped(t_phone, "location_id", loc_ids, PHONE_COLUMNS)
    svc_sched = grouped(t_sched, "service_id", sids)
    loc_sched = grouped(t_sched, "location_id", loc_ids)
    sal_sched = grouped(t_sched, "service_at_location_id",
                        [s.id for rows in sals.values() for s in rows])
    svc_lang = grouped(t_lang, "service_id", sids, LANGUAGE_COLUMNS)
    loc_lang = grouped(t_lang, "location_id", loc_ids, LANGUAGE_COLUMNS)
    areas = grouped(t_area, "service_id", sids, ("coverage",))
    costs = grouped(t_cost, "service_id", sids, ("amount",))
    access = grouped(t_access, "location_id", loc_ids, ("description", "details"))

    for svc in services:
        sid = svc.id
        eligibility = _json(svc.eligibility)
        cost = _cost(svc, costs.get(sid, []), eligibility)
        coverage = [c for c in (_json(a.coverage) for a in areas.get(sid, [])) if c]
        area_tokens = [t for c in coverage for t in _coverage_tokens(c)]
        common = dict(
            service_id=sid, name=svc.name, organization=svc.org_name,
            description=(svc.description or "")[:2000],
            categories=sorted(categories.get(sid, [])), eligibility=eligibility, cost=cost,
            coverage=coverage, verified_at=svc.verified_at, updated_at=svc.updated_at,
            status=svc.status, is_referable=bool(svc.is_referable),
            source=svc.record_source, source_id=svc.record_source_id,
        )
        site_rows = [(s, locations[s.location_id]) for s in sals.get(sid, ())
                     if s.is_active and s.location_id in locations
                     and locations[s.location_id].is_active]
        for sal, loc in site_rows:
            loc_id = sal.location_id
            here = addresses.get(loc_id) or [None]
            addr = next((a for a in here if a is not None
                         and (a.address_type or "physical") != "postal"), here[0])
            address = {}
            if addr is not None:
                address = {"address_1": None if loc.is_confidential else addr.address_1,
                           "address_2": None if loc.is_confidential else addr.address_2,
                           "city": addr.city, "state": addr.state_province,
                           "postal_code": addr.postal_code}
            schedule_rows = (sal_sched.get(sal.id) or svc_sched.get(sid)
                             or loc_sched.get(loc_id) or [])
            known, hours, certain = _slots(_rules(schedule_rows))
            phones = [{"number": p.number, "extension": p.extension, "type": p.type}
                      for p in (svc_phones.get(sid, []) + loc_phones.get(loc_id, []))]
            yield SearchDocument(
                key=sal.id, sal_id=sal.id, location_id=loc_id,
                lat=loc.latitude, lon=loc.longitude, precision=loc.geocode_precision,
                is_confidential=bool(loc.is_confidential), time_zone=loc.time_zone,
                address=address, phones=_dedupe_phones(phones),
                languages=_languages(svc_lang.get(sid, []) + loc_lang.get(loc_id, [])),
                schedules=[_plain_row(r) for r in schedule_rows], hours_known=known,
                open_hours=hours, open_certain=certain,
                capacity_status=sal.capacity_status,
                capacity_updated_at=sal.capacity_updated_at,
                accessibility=[a.description or a.details or "" for a in
                               access.get(loc_id, [])],
                location_source_id=loc.record_source_id,
                area_tokens=area_tokens,
                **common,
            )
        if not site_rows and coverage:
            known, hours, certain = _slots(_rules(svc_sched.get(sid, [])))
            phones = [{"number": p.number, "extension": p.extension, "type": p.type}
                      for p in svc_phones.get(sid, [])]
            yield SearchDocument(
                key=f"area:{sid}", sal_id=None, location_id=None, lat=None, lon=None,
                precision=None, is_confidential=False, time_zone=None, address={},
                phones=_dedupe_phones(phones), languages=_languages(svc_lang.get(sid, [])),
                schedules=[_plain_row(r) for r in svc_sched.get(sid, [])], hours_known=known,
                open_hours=hours, open_certain=certain, capacity_status=None,
                capacity_updated_at=None, accessibility=[], location_source_id=None,
                area_tokens=area_tokens,
                **common,
            )


def _dedupe_phones(phones: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for p in phones:
        if p["number"] not in seen:
            seen.add(p["number"])
            out.append(p)
    return out[:5]


def _plain_row(row: Any) -> dict[str, Any]:
    keep = ("freq", "interval", "byday", "bymonthday", "byweekno", "byyearday", "dtstart",
            "until", "count", "wkst", "valid_from", "valid_to", "opens_at", "closes_at",
            "description", "is_closure")
    return {k: row[k] for k in keep if row[k] is not None}
