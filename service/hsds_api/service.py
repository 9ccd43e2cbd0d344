"""What the HSDS 3.1 API lists, in which shape, and how it pages.

Visibility follows the rest of Signpost: a service is listed when it is active (`is_active` and
a status other than inactive or defunct), not hidden by its source and not listed as a duplicate
of another service; a service_at_location when it, its service and its location are; an
organization when it is active. Confidential locations are listed with no street address and a
coarse point. Serialisation is `service.directory.hsds` (`to_hsds`, `full_services`,
`location_doc`); this module only selects rows, pages them and completes the documents (see
docs/hsds-profile.md for every choice made here).
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from indexer.enrich import CONFIDENTIAL_DECIMALS
from service.config import PROJECT_ROOT
from service.db import Database
from service.directory.hsds import full_services, location_doc, redact_address, to_hsds
from service.directory.service_areas import Coverage, covers
from service.directory.tables import hsds_tables, import_run
from service.errors import BadRequest, NotFound
from service.search.service import locate

Conn = Connection | Session
Doc = dict[str, Any]

HSDS_VERSION = "3.1"
PROFILE_PATH = PROJECT_ROOT / "docs" / "hsds-profile.md"
INACTIVE_STATUSES = ("inactive", "defunct")
METERS_PER_DEGREE = 6371008.8 * math.pi / 180  # mean Earth radius: one degree of latitude
STREAM_BATCH = 500

organization = hsds_tables["organization"]
program = hsds_tables["program"]
service = hsds_tables["service"]
location = hsds_tables["location"]
sal = hsds_tables["service_at_location"]
address = hsds_tables["address"]
service_area = hsds_tables["service_area"]
attribute = hsds_tables["attribute"]
taxonomy = hsds_tables["taxonomy"]
taxonomy_term = hsds_tables["taxonomy_term"]

# Required HSDS text fields a source may leave empty, and what is sent instead (docs: profile).
REQUIRED_TEXT: dict[str, tuple[str, ...]] = {
    "organization": ("name", "description"),
    "program": ("name", "description"),
    "service": ("name", "status"),
    "location": ("location_type",),
    "address": ("address_1", "city", "state_province", "postal_code", "country",
                "address_type"),
    "phone": ("number",),
    "taxonomy": ("name", "description"),
    "taxonomy_term": ("name", "description"),
    "unit": ("name",),
    "url": ("url",),
    "organization_identifier": ("identifier_type", "identifier"),
}
DEFAULTS = {("service", "status"): "active", ("location", "location_type"): "physical",
            ("address", "address_type"): "physical"}

# Nested objects by key, per object type, so a document can be completed all the way down.
NESTED: dict[str, dict[str, str]] = {
    "service": {"organization": "organization", "program": "program", "phones": "phone",
                "schedules": "schedule", "service_areas": "service_area",
                "languages": "language", "funding": "funding", "cost_options": "cost_option",
                "required_documents": "required_document", "contacts": "contact",
                "capacities": "service_capacity", "additional_urls": "url",
                "attributes": "attribute", "service_at_locations": "service_at_location"},
    "service_at_location": {"location": "location", "service": "service",
                            "service_areas": "service_area", "contacts": "contact",
                            "phones": "phone", "schedules": "schedule",
                            "attributes": "attribute"},
    "location": {"addresses": "address", "phones": "phone", "schedules": "schedule",
                 "languages": "language", "accessibility": "accessibility",
                 "attributes": "attribute"},
    "organization": {"locations": "location", "programs": "program", "phones": "phone",
                     "contacts": "contact", "funding": "funding",
                     "organization_identifiers": "organization_identifier",
                     "attributes": "attribute", "additional_websites": "url",
                     "services": "service"},
    "attribute": {"taxonomy_term": "taxonomy_term"},
    "service_capacity": {"unit": "unit"},
}
LOCATION_CHILDREN = {"addresses": "address", "phones": "phone", "schedules": "schedule",
                     "languages": "language", "accessibility": "accessibility"}


@dataclass
class Filters:
    """The query parameters that narrow a list."""

    search: str | None = None
    taxonomy_term_id: str | None = None
    taxonomy_id: str | None = None
    organization_id: str | None = None
    modified_after: datetime | None = None
    postcode: str | None = None
    proximity: str | None = None
    parent_id: str | None = None
    top_only: bool = False


@dataclass
class Listing:
    """A filtered list: the id query, its stable order, and how to render a page of ids."""

    query: Select
    key: Any
    render: Callable[[Conn, list[str]], list[Doc]]
    order: list[Any] = field(default_factory=list)


# --- visibility ----------------------------------------------------------------------------


def service_visible(t: Any = service) -> ColumnElement[bool]:
    """Listed services: active, not hidden, not a duplicate, not inactive or defunct."""
    return and_(t.c.is_active, ~t.c.is_hidden, t.c.duplicate_of.is_(None),
                or_(t.c.status.is_(None), func.lower(t.c.status).not_in(INACTIVE_STATUSES)))


def _sal_visible() -> ColumnElement[bool]:
    return and_(sal.c.is_active, service_visible(),
                or_(location.c.id.is_(None), location.c.is_active))


def _sal_from() -> Any:
    return sal.join(service, service.c.id == sal.c.service_id).outerjoin(
        location, location.c.id == sal.c.location_id)


# --- filters -------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return [w for w in text.lower().split() if w][:10]


def _text(search: str, *columns: Any) -> ColumnElement[bool]:
    """Every word of `search` appears (case-insensitively) in one of `columns`; a search of
    only spaces asks nothing."""
    return and_(true(), *[or_(*[func.lower(c).contains(word, autoescape=True) for c in columns])
                  for word in _words(search)])


def _tagged(link_id: Any, filters: Filters) -> ColumnElement[bool]:
    """The record carries an attribute with that term, or with any term of that taxonomy."""
    a, term = attribute.alias("f_attribute"), taxonomy_term.alias("f_term")
    query = select(a.c.id).select_from(a.join(term, term.c.id == a.c.taxonomy_term_id))
    query = query.where(a.c.link_id == link_id)
    if filters.taxonomy_term_id:
        query = query.where(a.c.taxonomy_term_id == filters.taxonomy_term_id)
    if filters.taxonomy_id:
        query = query.where(term.c.taxonomy_id == filters.taxonomy_id)
    return query.exists()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # within a day of year 1 or 9999: before or after anything stored
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)


def _service_changed(since: datetime) -> ColumnElement[bool]:
    """The service, its organization, one of its sites or their locations changed since."""
    o, s, loc = organization.alias("m_org"), sal.alias("m_sal"), location.alias("m_loc")
    return or_(
        service.c.updated_at >= since,
        select(o.c.id).where(o.c.id == service.c.organization_id, o.c.updated_at >= since)
        .exists(),
        select(s.c.id).where(s.c.service_id == service.c.id, s.c.updated_at >= since).exists(),
        select(s.c.id).select_from(s.join(loc, loc.c.id == s.c.location_id))
        .where(s.c.service_id == service.c.id, loc.c.updated_at >= since).exists(),
    )


def _sal_changed(since: datetime) -> ColumnElement[bool]:
    """The site, its location, its service or the service's organization changed since."""
    o = organization.alias("m_org")
    return or_(sal.c.updated_at >= since, location.c.updated_at >= since,
               service.c.updated_at >= since,
               select(o.c.id).where(o.c.id == service.c.organization_id,
                                    o.c.updated_at >= since).exists())


def _organization_changed(since: datetime) -> ColumnElement[bool]:
    """The organization, one of its locations or one of its services changed since."""
    s, loc = service.alias("m_svc"), location.alias("m_loc")
    return or_(organization.c.updated_at >= since,
               select(s.c.id).where(s.c.organization_id == organization.c.id,
                                    s.c.updated_at >= since).exists(),
               select(loc.c.id).where(loc.c.organization_id == organization.c.id,
                                      loc.c.updated_at >= since).exists())


def _many(column: Any, ids: Iterable[str]) -> ColumnElement[bool]:
    """`column IN ids`, rendered inline so a long list never meets a bound-parameter limit."""
    return column.in_(bindparam(None, sorted(ids), expanding=True, literal_execute=True))


def _zip(postcode: str) -> str:
    text = postcode.strip()
    match = re.fullmatch(r"(\d{5})(?:-?\d{4})?", text)
    return match.group(1) if match else text


def _in_postcode(conn: Conn, postcode: str) -> ColumnElement[bool]:
    """At a location with an address in the postcode, or with a service area that covers it."""
    code = _zip(postcode)
    a = address.alias("p_address")
    conditions: list[ColumnElement[bool]] = [
        select(a.c.id).where(a.c.location_id == sal.c.location_id,
                             or_(a.c.postal_code == code,
                                 a.c.postal_code.startswith(code + "-", autoescape=True)))
        .exists()]
    services: set[str] = set()
    sites: set[str] = set()
    for sid, site_id, coverage in conn.execute(
            select(service_area.c.service_id, service_area.c.service_at_location_id,
                   service_area.c.coverage)):
        if isinstance(coverage, str):
            coverage = json.loads(coverage)
        if not coverage or covers(Coverage.from_dict(coverage), postal_code=code) is not True:
            continue
        if site_id:
            sites.add(site_id)
        elif sid:
            services.add(sid)
    if services:
        conditions.append(_many(sal.c.service_id, services))
    if sites:
        conditions.append(_many(sal.c.id, sites))
    return or_(*conditions)


def _meters(proximity: str) -> float:
    try:
        meters = float(proximity)
    except ValueError:
        meters = math.nan
    if not (0 < meters <= 1_000_000):
        raise BadRequest("proximity is a distance in meters, more than 0 and at most 1000000",
                         field="proximity")
    return meters


def _near(postcode: str, meters: float, geocoder: Any) -> tuple[ColumnElement[bool], Any]:
    """Locations within `meters` of the postcode's centroid, and the squared distance."""
    try:
        place = locate(postcode, geocoder)
    except BadRequest as exc:
        raise BadRequest(exc.message.replace("near", "postcode", 1), field="postcode") from exc
    degrees = meters / METERS_PER_DEGREE
    shrink = math.cos(math.radians(place.lat))
    dy = location.c.latitude - place.lat
    dx = (location.c.longitude - place.lon) * shrink
    distance2 = dy * dy + dx * dx
    condition = and_(location.c.latitude.is_not(None), location.c.longitude.is_not(None),
                     location.c.latitude.between(place.lat - degrees, place.lat + degrees),
                     distance2 <= degrees * degrees)
    return condition, distance2


# --- listings ------------------------------------------------------------------------------


def services_listing(filters: Filters, *, minimal: bool = False,
                     full: bool = False) -> Listing:
    """Listed services, by id."""
    query = select(service.c.id).where(service_visible())
    if filters.organization_id:
        query = query.where(service.c.organization_id == filters.organization_id)
    if filters.search:
        query = query.where(_text(filters.search, service.c.name, service.c.alternate_name,
                                  service.c.description))
    if filters.taxonomy_term_id or filters.taxonomy_id:
        query = query.where(_tagged(service.c.id, filters))
    if filters.modified_after:
        query = query.where(_service_changed(_utc(filters.modified_after)))
    render = minimal_services if minimal else (public_services if full else service_items)
    return Listing(query, service.c.id, render, [service.c.id])


def service_at_locations_listing(conn: Conn, filters: Filters, geocoder: Any, *,
                                 full: bool = False) -> Listing:
    """Listed service_at_locations, by id (by distance, then id, with `proximity`)."""
    query = select(sal.c.id).select_from(_sal_from()).where(_sal_visible())
    order: list[Any] = [sal.c.id]
    if filters.organization_id:
        query = query.where(service.c.organization_id == filters.organization_id)
    if filters.search:
        query = query.where(_text(filters.search, service.c.name, service.c.alternate_name,
                                  service.c.description, location.c.name, sal.c.description))
    if filters.taxonomy_term_id or filters.taxonomy_id:
        query = query.where(or_(_tagged(sal.c.id, filters), _tagged(service.c.id, filters)))
    if filters.modified_after:
        query = query.where(_sal_changed(_utc(filters.modified_after)))
    if filters.proximity is not None:
        meters = _meters(filters.proximity)
        if not filters.postcode:
            raise BadRequest("proximity is measured from a postcode's centroid: give postcode "
                             "too", field="proximity")
        condition, distance2 = _near(filters.postcode, meters, geocoder)
        query = query.where(condition)
        order = [distance2, sal.c.id]
    elif filters.postcode:
        query = query.where(_in_postcode(conn, filters.postcode))
    render = full_service_at_locations if full else service_at_location_items
    return Listing(query, sal.c.id, render, order)


def organizations_listing(filters: Filters, *, full: bool = False,
                          full_service: bool = False) -> Listing:
    """Active organizations, by id."""
    query = select(organization.c.id).where(organization.c.is_active)
    if filters.search:
        query = query.where(_text(filters.search, organization.c.name,
                                  organization.c.alternate_name, organization.c.description))
    if filters.taxonomy_term_id or filters.taxonomy_id:
        s = service.alias("t_svc")
        query = query.where(or_(
            _tagged(organization.c.id, filters),
            select(s.c.id).where(s.c.organization_id == organization.c.id, service_visible(s),
                                 _tagged(s.c.id, filters)).exists()))
    if filters.modified_after:
        query = query.where(_organization_changed(_utc(filters.modified_after)))
    if full or full_service:
        def render(conn: Conn, ids: list[str]) -> list[Doc]:
            return full_organizations(conn, ids, full_service=full_service)
    else:
        render = organization_items
    return Listing(query, organization.c.id, render, [organization.c.id])


def taxonomies_listing(filters: Filters) -> Listing:
    """Every taxonomy, by id."""
    query = select(taxonomy.c.id)
    if filters.search:
        query = query.where(_text(filters.search, taxonomy.c.name, taxonomy.c.description))
    return Listing(query, taxonomy.c.id, _plain_items("taxonomy"), [taxonomy.c.id])


def taxonomy_terms_listing(filters: Filters) -> Listing:
    """Every taxonomy term, by id; `top_only` keeps the terms without a parent."""
    query = select(taxonomy_term.c.id)
    if filters.search:
        query = query.where(_text(filters.search, taxonomy_term.c.name, taxonomy_term.c.code,
                                  taxonomy_term.c.description))
    if filters.taxonomy_id:
        query = query.where(taxonomy_term.c.taxonomy_id == filters.taxonomy_id)
    if filters.parent_id:
        query = query.where(taxonomy_term.c.parent_id == filters.parent_id)
    if filters.top_only:
        query = query.where(taxonomy_term.c.parent_id.is_(None))
    return Listing(query, taxonomy_term.c.id, _plain_items("taxonomy_term"),
                   [taxonomy_term.c.id])


def page(conn: Conn, listing: Listing, page_number: int, per_page: int) -> Doc:
    """One page of a listing in the HSDS Page envelope (1-based pages)."""
    total = conn.execute(select(func.count()).select_from(
        listing.query.order_by(None).subquery())).scalar_one()
    ids = list(conn.execute(listing.query.order_by(*listing.order)
                            .offset((page_number - 1) * per_page).limit(per_page)).scalars())
    contents = listing.render(conn, ids) if ids else []
    total_pages = math.ceil(total / per_page)
    return {"total_items": total, "total_pages": total_pages, "page_number": page_number,
            "size": len(contents), "first_page": page_number == 1,
            "last_page": page_number >= total_pages, "empty": not contents,
            "contents": contents}


def stream(db: Database, listing: Listing) -> Iterator[bytes]:
    """Every item of a listing as NDJSON lines, by id, read in batches in one transaction."""
    last: str | None = None
    with db.engine.connect() as conn:
        while True:
            query = listing.query if last is None else listing.query.where(listing.key > last)
            ids = list(conn.execute(query.order_by(listing.key).limit(STREAM_BATCH)).scalars())
            if not ids:
                return
            yield b"".join(dumps(doc) + b"\n" for doc in listing.render(conn, ids))
            if len(ids) < STREAM_BATCH:
                return
            last = ids[-1]


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str).encode()


# --- one record ----------------------------------------------------------------------------


def get_service(conn: Conn, service_id: str) -> Doc:
    """A listed service, fully nested; NotFound otherwise."""
    row = conn.execute(select(service.c.id, service.c.duplicate_of)
                       .where(service.c.id == service_id)).first()
    if row is not None and row.duplicate_of:
        raise NotFound(f"service {service_id!r} is listed as a duplicate of "
                       f"{row.duplicate_of!r}", field="id")
    if row is None or not _exists(conn, service.c.id, service_id, service_visible()):
        raise NotFound(f"no service with id {service_id!r}", field="id")
    return public_services(conn, [service_id])[0]


def get_service_at_location(conn: Conn, sal_id: str) -> Doc:
    """A listed service_at_location, fully nested with its location and service."""
    found = conn.execute(select(sal.c.id).select_from(_sal_from())
                         .where(sal.c.id == sal_id, _sal_visible())).first()
    if found is None:
        raise NotFound(f"no service_at_location with id {sal_id!r}", field="id")
    return full_service_at_locations(conn, [sal_id])[0]


def get_organization(conn: Conn, org_id: str, *, full_service: bool = False) -> Doc:
    """An active organization, with its locations and the ids and names of its services."""
    if not _exists(conn, organization.c.id, org_id, organization.c.is_active):
        raise NotFound(f"no organization with id {org_id!r}", field="id")
    return full_organizations(conn, [org_id], full_service=full_service)[0]


def get_taxonomy(conn: Conn, taxonomy_id: str) -> Doc:
    """One taxonomy."""
    docs = _plain_items("taxonomy")(conn, [taxonomy_id])
    if not docs:
        raise NotFound(f"no taxonomy with id {taxonomy_id!r}", field="id")
    return docs[0]


def get_taxonomy_term(conn: Conn, term_id: str) -> Doc:
    """One taxonomy term, with its taxonomy as `taxonomy_detail`."""
    docs = _plain_items("taxonomy_term")(conn, [term_id])
    if not docs:
        raise NotFound(f"no taxonomy_term with id {term_id!r}", field="id")
    doc = docs[0]
    if doc.get("taxonomy_id"):
        detail = _plain_items("taxonomy")(conn, [doc["taxonomy_id"]])
        if detail:
            doc["taxonomy_detail"] = detail[0]
    return doc


def _exists(conn: Conn, id_column: Any, record_id: str, condition: Any) -> bool:
    return conn.execute(select(id_column).where(id_column == record_id, condition)
                        .limit(1)).first() is not None


# --- rendering -----------------------------------------------------------------------------


def _by_id(conn: Conn, table: Any, ids: Iterable[str]) -> dict[str, Any]:
    ids = sorted(set(ids))
    found: dict[str, Any] = {}
    for start in range(0, len(ids), 500):
        for row in conn.execute(select(table).where(table.c.id.in_(ids[start:start + 500]))
                                ).mappings():
            found[row["id"]] = row
    return found


def _grouped(conn: Conn, table: Any, column: str, ids: Iterable[str],
             condition: Any = None) -> dict[str, list[Any]]:
    ids = sorted(set(ids))
    grouped: dict[str, list[Any]] = defaultdict(list)
    for start in range(0, len(ids), 500):
        query = select(table).where(table.c[column].in_(ids[start:start + 500]))
        if condition is not None:
            query = query.where(condition)
        for row in conn.execute(query.order_by(table.c.record_source_id, table.c.id)).mappings():
            grouped[row[column]].append(row)
    return grouped


def complete(table: str, doc: Doc) -> Doc:
    """Fill required text the source left empty, protect confidential locations and drop
    inactive sites, all the way down."""
    for name in REQUIRED_TEXT.get(table, ()):
        if doc.get(name) is None:
            doc[name] = DEFAULTS.get((table, name), "")
    if table == "location" and doc.get("x_is_confidential"):
        for key in ("latitude", "longitude"):
            if isinstance(doc.get(key), int | float):
                doc[key] = round(doc[key], CONFIDENTIAL_DECIMALS)
        if "addresses" in doc:
            doc["addresses"] = [redact_address(a) for a in doc["addresses"]]
    if table == "service" and "service_at_locations" in doc:
        doc["service_at_locations"] = [
            s for s in doc["service_at_locations"]
            if s.get("x_is_active", True) and s.get("location", {}).get("x_is_active", True)]
    for key, child in NESTED.get(table, {}).items():
        value = doc.get(key)
        if isinstance(value, list):
            for item in value:
                complete(child, item)
        elif isinstance(value, dict):
            complete(child, value)
    return doc


def _plain_items(table: str) -> Callable[[Conn, list[str]], list[Doc]]:
    def render(conn: Conn, ids: list[str]) -> list[Doc]:
        rows = _by_id(conn, hsds_tables[table], ids)
        return [complete(table, to_hsds(table, rows[i])) for i in ids if i in rows]
    return render


def organization_items(conn: Conn, ids: list[str]) -> list[Doc]:
    """Organizations with their one-to-one fields (compiled/organization_list)."""
    return _plain_items("organization")(conn, ids)


def service_items(conn: Conn, ids: list[str]) -> list[Doc]:
    """Services with their one-to-one fields, organization and program (compiled/service_list)."""
    rows = _by_id(conn, service, ids)
    orgs = _by_id(conn, organization, (r["organization_id"] for r in rows.values()
                                       if r["organization_id"]))
    programs = _by_id(conn, program, (r["program_id"] for r in rows.values()
                                      if r["program_id"]))
    out = []
    for sid in ids:
        row = rows.get(sid)
        if row is None:
            continue
        doc = to_hsds("service", row)
        if row["organization_id"] in orgs:
            doc["organization"] = to_hsds("organization", orgs[row["organization_id"]])
        if row["program_id"] in programs:
            doc["program"] = to_hsds("program", programs[row["program_id"]])
        out.append(complete("service", doc))
    return out


def minimal_services(conn: Conn, ids: list[str]) -> list[Doc]:
    """Services as id, name, status and `modified_date` (when the directory last changed it,
    its organization, sites or locations)."""
    modified: dict[str, datetime] = {}

    def seen(sid: str, when: Any) -> None:
        when = _utc(when)
        if when is not None and (sid not in modified or when > modified[sid]):
            modified[sid] = when

    rows = conn.execute(select(service.c.id, service.c.name, service.c.status,
                               service.c.updated_at).where(service.c.id.in_(ids))).all()
    for sid, _name, _status, when in rows:
        seen(sid, when)
    for query in (
            select(service.c.id, organization.c.updated_at)
            .join(organization, organization.c.id == service.c.organization_id)
            .where(service.c.id.in_(ids)),
            select(sal.c.service_id, sal.c.updated_at).where(sal.c.service_id.in_(ids)),
            select(sal.c.service_id, location.c.updated_at)
            .join(location, location.c.id == sal.c.location_id)
            .where(sal.c.service_id.in_(ids))):
        for sid, when in conn.execute(query):
            seen(sid, when)
    by_id = {r.id: r for r in rows}
    return [complete("service", {
        "id": sid, "name": by_id[sid].name, "status": by_id[sid].status,
        "modified_date": to_hsds_time(modified.get(sid))}) for sid in ids if sid in by_id]


def to_hsds_time(value: datetime | None) -> str | None:
    """A UTC time as HSDS writes it (ISO 8601, Z)."""
    value = _utc(value)
    return value.isoformat().replace("+00:00", "Z") if value else None


def public_services(conn: Conn, ids: list[str]) -> list[Doc]:
    """Fully nested services (`full_services`), completed and without inactive sites."""
    return [complete("service", doc) for doc in full_services(conn, ids)]


def service_at_location_items(conn: Conn, ids: list[str]) -> list[Doc]:
    """Sites with their location and service (compiled/service_at_location_list)."""
    rows = _by_id(conn, sal, ids)
    locations = _by_id(conn, location, (r["location_id"] for r in rows.values()
                                        if r["location_id"]))
    services = {d["id"]: d for d in service_items(
        conn, sorted({r["service_id"] for r in rows.values() if r["service_id"]}))}
    out = []
    for sid in ids:
        row = rows.get(sid)
        if row is None:
            continue
        doc = to_hsds("service_at_location", row)
        if row["location_id"] in locations:
            doc["location"] = to_hsds("location", locations[row["location_id"]])
        if row["service_id"] in services:
            doc["service"] = services[row["service_id"]]
        out.append(complete("service_at_location", doc))
    return out


def _attributes(conn: Conn, link_ids: Iterable[str]) -> dict[str, list[Doc]]:
    grouped = _grouped(conn, attribute, "link_id", link_ids)
    terms = _by_id(conn, taxonomy_term, (a["taxonomy_term_id"] for rows in grouped.values()
                                         for a in rows if a["taxonomy_term_id"]))
    out: dict[str, list[Doc]] = {}
    for link_id, rows in grouped.items():
        docs = []
        for row in rows:
            doc = to_hsds("attribute", row)
            if row["taxonomy_term_id"] in terms:
                doc["taxonomy_term"] = to_hsds("taxonomy_term", terms[row["taxonomy_term_id"]])
            docs.append(doc)
        out[link_id] = docs
    return out


def full_service_at_locations(conn: Conn, ids: list[str]) -> list[Doc]:
    """Sites fully nested: location (with addresses, phones, hours...), the site's own
    service areas, contacts, phones, hours and attributes, and the full service."""
    rows = _by_id(conn, sal, ids)
    services = {d["id"]: d for d in full_services(
        conn, sorted({r["service_id"] for r in rows.values() if r["service_id"]}))}
    children = {key: _grouped(conn, hsds_tables[table], "service_at_location_id", rows)
                for key, table in (("service_areas", "service_area"), ("contacts", "contact"),
                                   ("phones", "phone"), ("schedules", "schedule"))}
    attributes = _attributes(conn, rows)
    out = []
    for sid in ids:
        row = rows.get(sid)
        if row is None:
            continue
        full = services.get(row["service_id"])
        nested = next((s for s in (full or {}).get("service_at_locations", [])
                       if s["id"] == sid), None)
        doc = dict(nested) if nested else to_hsds("service_at_location", row)
        for key, table in (("service_areas", "service_area"), ("contacts", "contact"),
                           ("phones", "phone"), ("schedules", "schedule")):
            doc[key] = [to_hsds(table, r) for r in children[key].get(sid, [])]
        doc["attributes"] = attributes.get(sid, [])
        if full is not None:
            doc["service"] = {k: v for k, v in full.items() if k != "service_at_locations"}
        out.append(complete("service_at_location", doc))
    return out


def full_organizations(conn: Conn, ids: list[str], *, full_service: bool = False) -> list[Doc]:
    """Organizations fully nested, with `services`: their listed services (one-to-one fields,
    or fully nested with `full_service`)."""
    rows = _by_id(conn, organization, ids)
    children = {key: _grouped(conn, hsds_tables[table], "organization_id", rows)
                for key, table in (("funding", "funding"), ("contacts", "contact"),
                                   ("phones", "phone"), ("programs", "program"),
                                   ("organization_identifiers", "organization_identifier"),
                                   ("additional_websites", "url"))}
    attributes = _attributes(conn, rows)
    locations = _grouped(conn, location, "organization_id", rows, location.c.is_active)
    location_ids = [loc["id"] for group in locations.values() for loc in group]
    location_children = {key: _grouped(conn, hsds_tables[table], "location_id", location_ids)
                         for key, table in LOCATION_CHILDREN.items()}
    service_ids: dict[str, list[str]] = defaultdict(list)
    for org_id, sid in conn.execute(
            select(service.c.organization_id, service.c.id)
            .where(_many(service.c.organization_id, rows), service_visible())
            .order_by(service.c.id)):
        service_ids[org_id].append(sid)
    all_ids = [sid for group in service_ids.values() for sid in group]
    if full_service:
        services = {d["id"]: d for d in public_services(conn, all_ids)}
    else:
        services = {sid: to_hsds("service", r) for sid, r in _by_id(conn, service,
                                                                    all_ids).items()}
    out = []
    for org_id in ids:
        row = rows.get(org_id)
        if row is None:
            continue
        doc = to_hsds("organization", row)
        for key, table in (("funding", "funding"), ("contacts", "contact"), ("phones", "phone"),
                           ("programs", "program"),
                           ("organization_identifiers", "organization_identifier"),
                           ("additional_websites", "url")):
            doc[key] = [to_hsds(table, r) for r in children[key].get(org_id, [])]
        doc["attributes"] = attributes.get(org_id, [])
        doc["locations"] = [
            location_doc(loc, {k: v.get(loc["id"], []) for k, v in location_children.items()})
            for loc in locations.get(org_id, [])]
        doc["services"] = [services[s] for s in service_ids.get(org_id, []) if s in services]
        out.append(complete("organization", doc))
    return out


# --- about, versions -----------------------------------------------------------------------


def about(base_url: str, profile_url: str, openapi_url: str) -> Doc:
    """The root document: HSDS version, profile and OpenAPI document."""
    return {"version": HSDS_VERSION, "profile": profile_url,
            "openapi_url": base_url.rstrip("/") + openapi_url}


def profile_text() -> str:
    """The profile document (Markdown); NotFound when the docs are not installed."""
    if not PROFILE_PATH.exists():
        raise NotFound("the HSDS profile document is not installed here")
    return PROFILE_PATH.read_text(encoding="utf-8")


def data_version(conn: Conn) -> tuple[str, datetime | None]:
    """What the directory's data is now (a key for ETags) and when it last changed.

    Records change their `updated_at` when imported, edited or deactivated; other rows change
    only through an import run. So the latest of those times and the latest run say it all.
    """
    times = [select(func.max(t.c.updated_at)).scalar_subquery()
             for t in (organization, service, location, sal)]
    runs = [select(func.max(import_run.c.id)).scalar_subquery(),
            select(func.max(import_run.c.finished_at)).scalar_subquery()]
    row = conn.execute(select(*times, *runs)).one()
    stamps = [_utc(v) for v in (*row[:4], row[5]) if v is not None]
    key = "|".join(str(v) for v in row)
    return key, max(stamps) if stamps else None
