"""Directory rows as HSDS 3.1 objects: one row, or a fully nested service.

Used by the JSON API, the HSDS export and the HSDS API, so all three say the same thing.
Signpost's own fields travel as `x_`-prefixed extension properties (HSDS allows additional
properties; see README "HSDS profile"). Confidential locations never carry a street address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from indexer.records import EXTENSION_FIELDS, HSDS_FIELDS, RECORD_TABLES
from service.directory.tables import (
    INTEGER_FIELDS,
    hsds_tables,
    service_category,
)

PRIVATE_ADDRESS_FIELDS = ("attention", "address_1", "address_2")
EXTRA_EXTENSIONS = {
    "service": ("eligibility",),
    "service_area": ("coverage",),
}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat().replace("+00:00", "Z")
    return value


def to_hsds_time(value: datetime | None) -> str | None:
    """A directory time as HSDS writes it (ISO 8601 in UTC, with Z)."""
    if value is None:
        return None
    return _plain(value.astimezone(UTC) if value.tzinfo else value)


def to_hsds(table: str, row: Any, *, extensions: bool = True) -> dict[str, Any]:
    """One directory row as an HSDS object (scalars only), with x_ extensions."""
    out: dict[str, Any] = {}
    for name in HSDS_FIELDS[table]:
        value = row[name]
        if value is None:
            continue
        if (table, name) in INTEGER_FIELDS or (isinstance(value, float) and value.is_integer()
                                               and name not in ("latitude", "longitude")):
            value = int(value)
        out[name] = _plain(value)
    if extensions:
        out["x_source"] = row["record_source"]
        out["x_source_id"] = row["record_source_id"]
        for name in EXTENSION_FIELDS.get(table, ()) + EXTRA_EXTENSIONS.get(table, ()):
            if name in row.keys() and row[name] is not None:
                out["x_" + name] = _plain(row[name])
        if table in RECORD_TABLES:
            out["x_is_active"] = bool(row["is_active"])
    return out


def redact_address(address: dict[str, Any]) -> dict[str, Any]:
    """An address of a confidential location: no street, only the area."""
    return {**address, **{f: "" for f in PRIVATE_ADDRESS_FIELDS if f in address},
            "address_1": ""}


def _rows(conn: Connection | Session, table: str, column: str,
          ids: Iterable[str]) -> dict[str, list[Any]]:
    ids = list(ids)
    grouped: dict[str, list[Any]] = defaultdict(list)
    t = hsds_tables[table]
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        for row in conn.execute(select(t).where(t.c[column].in_(chunk))
                                .order_by(t.c.record_source_id)).mappings():
            grouped[row[column]].append(row)
    return grouped


def full_services(conn: Connection | Session, service_ids: list[str]) -> list[dict[str, Any]]:
    """Fully nested HSDS service objects, in the order of `service_ids`."""
    services = {r["id"]: r for rows in _rows(conn, "service", "id", service_ids).values()
                for r in rows}
    org_ids = {r["organization_id"] for r in services.values() if r["organization_id"]}
    orgs = {k: v[0] for k, v in _rows(conn, "organization", "id", org_ids).items()}
    program_ids = {r["program_id"] for r in services.values() if r["program_id"]}
    programs = {k: v[0] for k, v in _rows(conn, "program", "id", program_ids).items()}
    children = {
        key: _rows(conn, table, "service_id", services)
        for key, table in (("phones", "phone"), ("schedules", "schedule"),
                           ("service_areas", "service_area"), ("languages", "language"),
                           ("funding", "funding"), ("cost_options", "cost_option"),
                           ("required_documents", "required_document"),
                           ("contacts", "contact"), ("capacities", "service_capacity"),
                           ("additional_urls", "url"))
    }
    sals = _rows(conn, "service_at_location", "service_id", services)
    # A site's own hours (HSDS 3.1 service_at_location.schedules), e.g. set by a partner.
    sal_schedules = _rows(conn, "schedule", "service_at_location_id",
                          {s["id"] for rows in sals.values() for s in rows})
    location_ids = {s["location_id"] for rows in sals.values() for s in rows if s["location_id"]}
    locations = {k: v[0] for k, v in _rows(conn, "location", "id", location_ids).items()}
    loc_children = {
        key: _rows(conn, table, "location_id", location_ids)
        for key, table in (("addresses", "address"), ("phones", "phone"),
                           ("schedules", "schedule"), ("languages", "language"),
                           ("accessibility", "accessibility"))
    }
    unit_ids = {c["unit_id"] for rows in children["capacities"].values() for c in rows
                if c["unit_id"]}
    units = {k: v[0] for k, v in _rows(conn, "unit", "id", unit_ids).items()}
    attributes = _rows(conn, "attribute", "link_id", services)
    term_ids = {a["taxonomy_term_id"] for rows in attributes.values() for a in rows
                if a["taxonomy_term_id"]}
    terms = {k: v[0] for k, v in _rows(conn, "taxonomy_term", "id", term_ids).items()}
    categories: dict[str, list[str]] = defaultdict(list)
    for start in range(0, len(service_ids), 500):
        chunk = service_ids[start:start + 500]
        for sid, cid in conn.execute(select(service_category.c.service_id,
                                            service_category.c.category_id)
                                     .where(service_category.c.service_id.in_(chunk))
                                     .order_by(service_category.c.category_id)):
            categories[sid].append(cid)

    out = []
    for sid in service_ids:
        row = services.get(sid)
        if row is None:
            continue
        doc = to_hsds("service", row)
        if categories.get(sid):
            doc["x_categories"] = categories[sid]
        if row["organization_id"] in orgs:
            doc["organization"] = to_hsds("organization", orgs[row["organization_id"]])
        if row["program_id"] in programs:
            doc["program"] = to_hsds("program", programs[row["program_id"]])
        for key, grouped in children.items():
            table = _CHILD_TABLES[key]
            doc[key] = [to_hsds(table, r) for r in grouped.get(sid, [])]
        for capacity, row_ in zip(doc["capacities"], children["capacities"].get(sid, []),
                                  strict=True):
            if row_["unit_id"] in units:
                capacity["unit"] = to_hsds("unit", units[row_["unit_id"]])
        doc["attributes"] = []
        for a in attributes.get(sid, []):
            attribute = to_hsds("attribute", a)
            if a["taxonomy_term_id"] in terms:
                attribute["taxonomy_term"] = to_hsds("taxonomy_term", terms[a["taxonomy_term_id"]])
            doc["attributes"].append(attribute)
        doc["service_at_locations"] = []
        for sal in sals.get(sid, []):
            sal_doc = to_hsds("service_at_location", sal)
            sal_doc["schedules"] = [to_hsds("schedule", r)
                                    for r in sal_schedules.get(sal["id"], [])]
            loc = locations.get(sal["location_id"])
            if loc is not None:
                sal_doc["location"] = location_doc(loc, {k: v.get(loc["id"], [])
                                                         for k, v in loc_children.items()})
            doc["service_at_locations"].append(sal_doc)
        out.append(doc)
    return out


def location_doc(loc: Any, children: dict[str, list[Any]]) -> dict[str, Any]:
    """A nested HSDS location; a confidential one has its street address removed."""
    doc = to_hsds("location", loc)
    for key, rows in children.items():
        doc[key] = [to_hsds(_LOCATION_CHILD_TABLES[key], r) for r in rows]
    if loc["is_confidential"]:
        doc["addresses"] = [redact_address(a) for a in doc.get("addresses", [])]
    return doc


_CHILD_TABLES = {
    "phones": "phone", "schedules": "schedule", "service_areas": "service_area",
    "languages": "language", "funding": "funding", "cost_options": "cost_option",
    "required_documents": "required_document", "contacts": "contact",
    "capacities": "service_capacity", "additional_urls": "url",
}
_LOCATION_CHILD_TABLES = {
    "addresses": "address", "phones": "phone", "schedules": "schedule",
    "languages": "language", "accessibility": "accessibility",
}
