"""Partner listing updates: partners keep their organizations' listings current; admins oversee.

A partner (or an admin) edits a service (details, status, eligibility, hours, and per site its
capacity and hours) or a location (name, addresses, phones, accessibility). An edit is planned as
a list of field changes (old -> new) against the listing as it is now, under a row lock, and only
if the listing has not changed since the version the caller read, when they send it (409
otherwise). Then either

* it is applied at once: the values are written as local edits (`service.directory.edits`, so a
  re-import keeps them until the source changes that field), the listing's `updated_at` moves,
  its search documents are rewritten in the same transaction (`search.refresh_services`), and
  the edit is kept in `listing_edit` (applied) with an audit event carrying the diff; or
* it waits (a partner's edit while `partner_edits_require_approval` is set): the listing is
  untouched until an admin approves it (applied, if the fields have not changed meanwhile) or
  rejects it with a reason.

An admin may revert an applied edit: the old values come back, unless a field changed again
since (409, naming the fields).

Who may edit what: an admin, any listing; a partner, the listings of the organizations their
account is linked to (`user_organization`), and when the link names sites, only those sites'
capacity and hours and those locations. Listings are public, so a partner editing another
organization's listing is told so plainly (403, naming the organization); a hidden listing, which
the public cannot see, answers 404 as if absent. Functions flush; the request owns the commit.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, func, insert, select, update
from sqlalchemy.orm import Session, aliased

from indexer.records import HSDS_FIELDS
from service.accounts.service import Principal
from service.accounts.tables import app_user, user_organization
from service.audit import service as audit
from service.directory import edits
from service.directory.eligibility import RESTRICTION, Eligibility, parse_eligibility
from service.directory.schemas import HoursIn, LocationEdit, ServiceEdit
from service.directory.tables import (
    hsds_tables,
    listing_edit,
    location,
    organization,
    service,
    service_at_location,
)
from service.errors import AppError, Conflict, Forbidden, InvalidTransition, NotFound
from service.search import service as search_service

PARTNER_CONFIRMED, ADMIN_CONFIRMED = "partner confirmed", "admin confirmed"
SERVICE_TEXT = ("name", "alternate_name", "description", "email", "url", "fees_description",
                "application_process")
LOCATION_TEXT = ("name", "description", "transportation")
# The three statuses a partner speaks of, as HSDS status and Signpost's `is_referable`.
STATUSES = {"active": ("active", True), "temporarily closed": ("temporarily closed", True),
            "active do not refer": ("active", False)}
LISTED = ("active", "temporarily closed")  # what the stale list and partner portal watch


class Invalid(AppError):
    """A value the payload's shape allows but the listing cannot take (422, naming the field)."""

    status, code = 422, "invalid"


# --- who may change what ----------------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """The listings a caller may change: all (admins), or their organizations', each with every
    site (None) or only some locations."""

    everything: bool
    organizations: Mapping[str, frozenset[str] | None]

    def organization(self, organization_id: str | None) -> bool:
        return self.everything or organization_id in self.organizations

    def site(self, organization_id: str | None, location_id: str | None) -> bool:
        if self.everything:
            return True
        if organization_id not in self.organizations:
            return False
        sites = self.organizations[organization_id]
        return sites is None or location_id in sites


def reach_of(session: Session, *, actor: Principal) -> Reach:
    """What `actor` may edit."""
    if actor.role == "admin":
        return Reach(True, {})
    if actor.role != "partner":
        return Reach(False, {})
    rows = session.execute(select(user_organization.c.organization_id,
                                  user_organization.c.location_ids)
                           .where(user_organization.c.user_id == actor.user_id)).all()
    return Reach(False, {r.organization_id: frozenset(r.location_ids) if r.location_ids else None
                         for r in rows})


def _organization_name(session: Session, organization_id: str | None) -> str:
    name = session.execute(select(organization.c.name)
                           .where(organization.c.id == organization_id)).scalar()
    return name or "no organization"


def _refuse(session: Session, *, what: str, organization_id: str | None, field: str,
            site: bool = False) -> None:
    name = _organization_name(session, organization_id)
    if site:
        raise Forbidden(f"your account speaks only for some sites of {name!r}; this {what} is "
                        "not one of them", field=field)
    raise Forbidden(f"this {what} belongs to {name!r}, which your account does not speak for; "
                    "an admin can link your account to it", field=field)


def _service_for_edit(session: Session, *, reach: Reach, service_id: str) -> dict[str, Any]:
    """The service row, locked for the edit; 404 if absent (or hidden from this caller), 403
    if it is another organization's."""
    row = session.execute(select(service).where(service.c.id == service_id)
                          .with_for_update()).mappings().first()
    if row is None or (row["is_hidden"] and not reach.organization(row["organization_id"])):
        raise NotFound(f"no service with id {service_id!r}", field="service_id")
    if not reach.organization(row["organization_id"]):
        _refuse(session, what="service", organization_id=row["organization_id"],
                field="service_id")
    return dict(row)


def _location_for_edit(session: Session, *, reach: Reach, location_id: str) -> dict[str, Any]:
    """The location row, locked; 404 if absent, 403 if it is not the caller's."""
    row = session.execute(select(location).where(location.c.id == location_id)
                          .with_for_update()).mappings().first()
    if row is None:
        raise NotFound(f"no location with id {location_id!r}", field="location_id")
    if not reach.organization(row["organization_id"]):
        _refuse(session, what="location", organization_id=row["organization_id"],
                field="location_id")
    if not reach.site(row["organization_id"], row["id"]):
        _refuse(session, what="location", organization_id=row["organization_id"],
                field="location_id", site=True)
    return dict(row)


# --- values -----------------------------------------------------------------------------------


def _utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (SQLite gives naive values back; they are UTC by construction)."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _plain(value: Any) -> Any:
    """A JSON value that compares equal whichever database it was read from."""
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Child rows as a comparable value: plain, in a fixed order (their order carries nothing)."""
    plain = [_plain({k: v for k, v in r.items() if v is not None}) for r in rows]
    return sorted(plain, key=lambda r: json.dumps(r, sort_keys=True))


def check_version(current: datetime, expected: Sequence[tuple[str, datetime | None]]) -> None:
    """409 when the caller read an older version than `current` (each (field, value) given)."""
    for field, value in expected:
        if value is not None and _utc(value) != _utc(current):
            raise Conflict(f"the listing changed since you read it (it is now at "
                           f"{_utc(current).isoformat()}): read it again and redo your edit",
                           field=field)


# --- changes: where each value lives, reading and writing them --------------------------------
#
# A change is a JSON object: {"field": the name people see, "old", "new", and either "table",
# "id", "column" (a column of a record) or "table", "where" (the child rows matching `where`, e.g.
# one site's schedules)}. "stamp" marks a timestamp set to the moment the change is applied.


def _column(field: str, table: str, record_id: str, column: str, old: Any, new: Any, *,
            stamp: bool = False) -> dict[str, Any] | None:
    old, new = _plain(old), _plain(new)
    if old == new and not stamp:
        return None
    change = {"field": field, "table": table, "id": record_id, "column": column, "old": old,
              "new": new}
    if stamp:
        change["stamp"] = True
    return change


def _child_rows(session: Session, field: str, table: str, where: dict[str, Any],
                new: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    old = _rows(edits.read_child_rows(session, table=table, where=where))
    new = _rows(new)
    if old == new:
        return None
    return {"field": field, "table": table, "where": where, "old": old, "new": new}


def _current(session: Session, change: Mapping[str, Any]) -> Any:
    table = hsds_tables[change["table"]]
    if "column" in change:
        return _plain(session.execute(select(table.c[change["column"]])
                                      .where(table.c.id == change["id"])).scalar())
    return _rows(edits.read_child_rows(session, table=change["table"], where=change["where"]))


def _db_value(table: str, column: str, value: Any) -> Any:
    if value is not None and isinstance(hsds_tables[table].c[column].type, DateTime):
        return datetime.fromisoformat(value)
    return value


def _write(session: Session, changes: Sequence[Mapping[str, Any]], side: str, *,
           edited_by: str) -> None:
    """Write each change's `side` ("new" to apply, "old" to revert)."""
    local: dict[tuple[str, str], dict[str, Any]] = {}
    direct: dict[tuple[str, str], dict[str, Any]] = {}
    for change in changes:
        table, value = change["table"], change[side]
        if "column" not in change:
            edits.replace_child_rows(session, table=table, where=change["where"], rows=value)
            continue
        column = change["column"]
        editable = column in HSDS_FIELDS[table] or column in edits.EDITABLE_EXTENSIONS.get(
            table, ())
        target = local if editable else direct
        target.setdefault((table, change["id"]), {})[column] = _db_value(table, column, value)
    for (table, record_id), values in local.items():
        edits.apply_local_edit(session, table=table, record_id=record_id, changes=values,
                               edited_by=edited_by)
    for (table, record_id), values in direct.items():
        t = hsds_tables[table]
        session.execute(update(t).where(t.c.id == record_id).values(**values))


def _stale_fields(session: Session, changes: Sequence[Mapping[str, Any]], side: str) -> list[str]:
    """The fields whose value is no longer the change's `side`."""
    out: list[str] = []
    for change in changes:
        if _current(session, change) != change[side] and change["field"] not in out:
            out.append(change["field"])
    return out


def _edited_by(actor: Principal) -> str:
    return f"{actor.role}:{actor.username}"


# --- planning a service edit ------------------------------------------------------------------


def _hours_rows(hours: Sequence[HoursIn]) -> list[dict[str, Any]]:
    """HSDS 3.1 schedule rows (weekly rules) for the given hours."""
    rows = []
    for h in hours:
        row = {"freq": "WEEKLY", "interval": 1, "byday": ",".join(h.days),
               "opens_at": h.opens_at, "closes_at": h.closes_at, "is_closure": False}
        if h.description and h.description.strip():
            row["description"] = h.description.strip()
        rows.append(row)
    return rows


def _language_rows(languages: Sequence[str]) -> list[dict[str, Any]]:
    """Codes ("es", "zh-Hant") as `code`, anything else as `name`."""
    rows = []
    for item in languages:
        short = item.replace("-", "").isalpha() and len(item.split("-")[0]) <= 3
        rows.append({"code": item.lower()} if short else {"name": item})
    return rows


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _new_eligibility(svc: Mapping[str, Any], data: Any) -> tuple[str | None, int | None,
                                                                  int | None, dict | None]:
    """(text, min age, max age, structured eligibility) after the edit."""
    given = data.model_fields_set
    if "description" in given:
        text = (data.description or "").strip() or None
    else:
        text = svc["eligibility_description"]
    min_age = data.min_age if "min_age" in given else svc["minimum_age"]
    max_age = data.max_age if "max_age" in given else svc["maximum_age"]
    if min_age is not None and max_age is not None and max_age < min_age:
        raise Invalid(f"max_age ({max_age}) would be below min_age ({min_age})",
                      field="eligibility.max_age")
    parsed = parse_eligibility(text, minimum_age=min_age, maximum_age=max_age)
    current = _json(svc["eligibility"])
    if "description" not in given and current:
        # The text is the same: keep what was known (or set by hand) beyond the ages.
        kept = Eligibility.from_dict(current)
        for name in ("genders", "gender_kind", "populations", "population_kind",
                     "required_populations", "residency", "residency_kind", "insurance",
                     "documents", "income_limit", "open_to_all"):
            setattr(parsed, name, getattr(kept, name))
    if "genders" in given:
        parsed.genders = list(data.genders or [])
        parsed.gender_kind = RESTRICTION if parsed.genders else None
    if "populations" in given:
        parsed.required_populations = list(data.populations or [])
        parsed.populations = list(parsed.required_populations)
        parsed.population_kind = RESTRICTION if parsed.populations else None
    if "documents" in given:
        parsed.documents = list(data.documents or [])
    if parsed.restrictions():
        parsed.open_to_all = False
    structured = parsed.to_dict()
    if structured == Eligibility().to_dict():
        structured = None
    return text, min_age, max_age, structured


def _listing_status(status: str | None, is_referable: bool) -> str:
    if status == "active" and not is_referable:
        return "active do not refer"
    return status or "active"


def _plan_service(session: Session, *, reach: Reach, svc: Mapping[str, Any],
                  data: ServiceEdit) -> list[dict[str, Any]]:
    """The field changes `data` makes to the service (none for fields already so)."""
    sid = svc["id"]
    given = data.model_fields_set
    planned: list[dict[str, Any] | None] = []
    for name in SERVICE_TEXT:
        if name in given:
            planned.append(_column(name, "service", sid, name, svc[name], getattr(data, name)))
    if "status" in given:
        status, referable = STATUSES[data.status]
        planned.append(_column("status", "service", sid, "status", svc["status"], status))
        planned.append(_column("is_referable", "service", sid, "is_referable",
                               bool(svc["is_referable"]), referable))
    if "eligibility" in given:
        text, min_age, max_age, structured = _new_eligibility(svc, data.eligibility)
        planned += [
            _column("eligibility.description", "service", sid, "eligibility_description",
                    svc["eligibility_description"], text),
            _column("eligibility.min_age", "service", sid, "minimum_age", svc["minimum_age"],
                    min_age),
            _column("eligibility.max_age", "service", sid, "maximum_age", svc["maximum_age"],
                    max_age),
            _column("eligibility", "service", sid, "eligibility", _json(svc["eligibility"]),
                    structured),
        ]
    if "languages" in given:
        planned.append(_child_rows(session, "languages", "language",
                                   {"service_id": sid, "location_id": None, "phone_id": None},
                                   _language_rows(data.languages or [])))
    if "hours" in given:
        planned.append(_child_rows(session, "hours", "schedule",
                                   {"service_id": sid, "location_id": None,
                                    "service_at_location_id": None},
                                   _hours_rows(data.hours or [])))
    seen: set[str] = set()
    for i, site in enumerate(data.sites or []):
        field = f"sites.{i}.service_at_location_id"
        sal_id = site.service_at_location_id
        if sal_id in seen:
            raise Invalid(f"site {sal_id!r} is given twice", field=field)
        seen.add(sal_id)
        sal = session.execute(select(service_at_location).where(
            service_at_location.c.id == sal_id).where(
            service_at_location.c.service_id == sid).with_for_update()).mappings().first()
        if sal is None:
            raise Invalid(f"{sal_id!r} is not a site of this service", field=field)
        if not reach.site(svc["organization_id"], sal["location_id"]):
            _refuse(session, what="site", organization_id=svc["organization_id"], field=field,
                    site=True)
        site_given = site.model_fields_set
        if "capacity_status" in site_given and site.capacity_status is not None:
            planned.append(_column(f"sites.{sal_id}.capacity_status", "service_at_location",
                                   sal_id, "capacity_status", sal["capacity_status"],
                                   site.capacity_status))
            planned.append(_column(f"sites.{sal_id}.capacity_updated_at",
                                   "service_at_location", sal_id, "capacity_updated_at",
                                   sal["capacity_updated_at"], datetime.now(UTC), stamp=True))
        if "hours" in site_given:
            planned.append(_child_rows(session, f"sites.{sal_id}.hours", "schedule",
                                       {"service_at_location_id": sal_id},
                                       _hours_rows(site.hours or [])))
    return [c for c in planned if c is not None]


# --- planning a location edit -----------------------------------------------------------------

PHONE_SCOPE = ("service_id", "organization_id", "contact_id", "service_at_location_id")


def _plan_location(session: Session, *, loc: Mapping[str, Any], data: LocationEdit,
                   geocoder: Any) -> list[dict[str, Any]]:
    """The field changes `data` makes to the location; a new street address moves its point."""
    lid = loc["id"]
    given = data.model_fields_set
    planned: list[dict[str, Any] | None] = []
    for name in LOCATION_TEXT:
        if name in given:
            planned.append(_column(name, "location", lid, name, loc[name], getattr(data, name)))
    if "is_confidential" in given:
        planned.append(_column("is_confidential", "location", lid, "is_confidential",
                               bool(loc["is_confidential"]), data.is_confidential))
    addresses = None
    if "addresses" in given:
        addresses = _child_rows(session, "addresses", "address", {"location_id": lid},
                                [a.model_dump() for a in data.addresses or []])
        planned.append(addresses)
    if "phones" in given:
        planned.append(_child_rows(session, "phones", "phone",
                                   {"location_id": lid, **{k: None for k in PHONE_SCOPE}},
                                   [p.model_dump() for p in data.phones or []]))
    if "accessibility" in given:
        planned.append(_child_rows(session, "accessibility", "accessibility",
                                   {"location_id": lid},
                                   [a.model_dump() for a in data.accessibility or []]))
    point = None
    if "latitude" in given or "longitude" in given:
        missing = "longitude" if data.longitude is None else "latitude"
        if data.latitude is None or data.longitude is None:
            raise Invalid("give latitude and longitude together", field=missing)
        point = (data.latitude, data.longitude, "exact")
    elif addresses is not None and geocoder is not None:
        street = next((a for a in data.addresses or [] if a.address_type == "physical"), None)
        if street is not None:
            found = geocoder.geocode_address(address_1=street.address_1, city=street.city,
                                             state=street.state_province,
                                             postal_code=street.postal_code)
            if found is not None:
                point = (found.lat, found.lon, found.precision)
    if point is not None:
        from indexer.geocode import timezone_for

        lat, lon, precision = point
        planned += [
            _column("latitude", "location", lid, "latitude", loc["latitude"], lat),
            _column("longitude", "location", lid, "longitude", loc["longitude"], lon),
            _column("geocode_precision", "location", lid, "geocode_precision",
                    loc["geocode_precision"], precision),
            _column("time_zone", "location", lid, "time_zone", loc["time_zone"],
                    timezone_for(lat, lon) or loc["time_zone"]),
        ]
    return [c for c in planned if c is not None]


# --- recording, auditing, refreshing search ---------------------------------------------------


def _audit_changes(changes: Sequence[Mapping[str, Any]], edit_id: int) -> dict[str, Any]:
    fields = [c["field"] for c in changes]
    return {**audit.diff({c["field"]: c["old"] for c in changes},
                         {c["field"]: c["new"] for c in changes}, fields=fields),
            "listing_edit_id": {"old": None, "new": edit_id}}


def _entity(row: Mapping[str, Any]) -> tuple[str, str]:
    if row["entity_type"] == "service":
        return "service", row["service_id"]
    return "location", row["location_id"]


def _services_at(session: Session, location_id: str) -> list[str]:
    return list(session.execute(select(service_at_location.c.service_id).where(
        service_at_location.c.location_id == location_id).distinct()).scalars())


def _touch(session: Session, row: Mapping[str, Any], now: datetime) -> datetime:
    """Move the edited record's version (`updated_at`) to `now`."""
    kind, record_id = _entity(row)
    table = hsds_tables[kind]
    session.execute(update(table).where(table.c.id == record_id).values(updated_at=now))
    return now


def _refresh(session: Session, search: Any, row: Mapping[str, Any]) -> None:
    kind, record_id = _entity(row)
    ids = [record_id] if kind == "service" else _services_at(session, record_id)
    search_service.refresh_services(session, search, ids)


def _record(session: Session, *, actor: Principal, entity: Mapping[str, Any],
            changes: list[dict[str, Any]], pending: bool, search: Any) -> dict[str, Any]:
    """Apply (or keep pending) planned changes; store, audit and reindex; the result."""
    now = datetime.now(UTC)
    row = {"entity_type": entity["entity_type"], "service_id": entity.get("service_id"),
           "location_id": entity.get("location_id"),
           "organization_id": entity["organization_id"]}
    version = entity["updated_at"]
    if not pending:
        for change in changes:
            if change.get("stamp"):
                change["new"] = now.isoformat()
        _write(session, changes, "new", edited_by=_edited_by(actor))
        version = _touch(session, row, now)
    edit_id = session.execute(insert(listing_edit).values(
        **row, status="pending" if pending else "applied", changes=changes,
        created_by=actor.user_id, created_at=now).returning(listing_edit.c.id)).scalar_one()
    kind, record_id = _entity(row)
    audit.record(session, actor=actor, action="listing.propose" if pending else "listing.edit",
                 entity_type=kind, entity_id=record_id,
                 changes=_audit_changes(changes, edit_id))
    if not pending:
        _refresh(session, search, row)
    return {"edit": get_edit(session, edit_id), "updated_at": _utc(version)}


def edit_service(session: Session, *, actor: Principal, service_id: str, data: ServiceEdit,
                 expected: Sequence[tuple[str, datetime | None]] = (),
                 require_approval: bool = False, search: Any = None) -> dict[str, Any]:
    """Edit a service listing (applied at once, or pending an admin when a partner's edits need
    approval); {"edit": the recorded edit or None when nothing changed, "updated_at"}."""
    reach = reach_of(session, actor=actor)
    svc = _service_for_edit(session, reach=reach, service_id=service_id)
    check_version(svc["updated_at"], [("expected_updated_at", data.expected_updated_at),
                                      *expected])
    changes = _plan_service(session, reach=reach, svc=svc, data=data)
    if not changes:
        return {"edit": None, "updated_at": _utc(svc["updated_at"])}
    entity = {"entity_type": "service", "service_id": service_id,
              "organization_id": svc["organization_id"], "updated_at": svc["updated_at"]}
    return _record(session, actor=actor, entity=entity, changes=changes,
                   pending=require_approval and actor.role == "partner", search=search)


def edit_location(session: Session, *, actor: Principal, location_id: str, data: LocationEdit,
                  expected: Sequence[tuple[str, datetime | None]] = (),
                  require_approval: bool = False, search: Any = None,
                  geocoder: Any = None) -> dict[str, Any]:
    """Edit a location (name, addresses, phones, accessibility, point), like `edit_service`."""
    reach = reach_of(session, actor=actor)
    loc = _location_for_edit(session, reach=reach, location_id=location_id)
    check_version(loc["updated_at"], [("expected_updated_at", data.expected_updated_at),
                                      *expected])
    changes = _plan_location(session, loc=loc, data=data, geocoder=geocoder)
    if not changes:
        return {"edit": None, "updated_at": _utc(loc["updated_at"])}
    entity = {"entity_type": "location", "location_id": location_id,
              "organization_id": loc["organization_id"], "updated_at": loc["updated_at"]}
    return _record(session, actor=actor, entity=entity, changes=changes,
                   pending=require_approval and actor.role == "partner", search=search)


def verify_service(session: Session, *, actor: Principal, service_id: str,
                   search: Any = None) -> dict[str, Any]:
    """"Still accurate": the listing is confirmed now by the caller (audited)."""
    reach = reach_of(session, actor=actor)
    svc = _service_for_edit(session, reach=reach, service_id=service_id)
    now = datetime.now(UTC)
    after = {"verified_at": now, "verified_by": actor.username,
             "verification_method": ADMIN_CONFIRMED if actor.role == "admin"
             else PARTNER_CONFIRMED}
    session.execute(update(service).where(service.c.id == service_id).values(**after))
    audit.record(session, actor=actor, action="listing.verify", entity_type="service",
                 entity_id=service_id,
                 changes=audit.diff({k: _utc(svc[k]) if k == "verified_at" else svc[k]
                                     for k in after}, after, fields=list(after)))
    search_service.refresh_services(session, search, [service_id])
    return {"service_id": service_id, **after}


# --- reading edits ----------------------------------------------------------------------------


def _edits_query() -> Any:
    creator, decider, reverter = aliased(app_user), aliased(app_user), aliased(app_user)
    return (select(listing_edit, organization.c.name.label("organization_name"),
                   service.c.name.label("service_name"), location.c.name.label("location_name"),
                   creator.c.username.label("creator"), decider.c.username.label("decider"),
                   reverter.c.username.label("reverter"))
            .outerjoin(organization, organization.c.id == listing_edit.c.organization_id)
            .outerjoin(service, service.c.id == listing_edit.c.service_id)
            .outerjoin(location, location.c.id == listing_edit.c.location_id)
            .outerjoin(creator, creator.c.id == listing_edit.c.created_by)
            .outerjoin(decider, decider.c.id == listing_edit.c.decided_by)
            .outerjoin(reverter, reverter.c.id == listing_edit.c.reverted_by))


def _edit_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "entity_type": row["entity_type"], "service_id": row["service_id"],
        "location_id": row["location_id"],
        "name": row["service_name"] if row["entity_type"] == "service" else row["location_name"],
        "organization_id": row["organization_id"],
        "organization_name": row["organization_name"], "status": row["status"],
        "changes": [{"field": c["field"], "old": c["old"], "new": c["new"]}
                    for c in _json(row["changes"])],
        "created_by": row["creator"], "created_at": _utc(row["created_at"]),
        "decided_by": row["decider"], "decided_at": _utc(row["decided_at"]),
        "decision_reason": row["decision_reason"], "reverted_by": row["reverter"],
        "reverted_at": _utc(row["reverted_at"]), "revert_reason": row["revert_reason"],
    }


def get_edit(session: Session, edit_id: int) -> dict[str, Any]:
    """One edit as the API shows it."""
    row = session.execute(_edits_query().where(listing_edit.c.id == edit_id)).mappings().first()
    if row is None:
        raise NotFound(f"no listing edit {edit_id}", field="edit_id")
    return _edit_out(row)


def list_edits(session: Session, *, actor: Principal, status: str | None = None,
               service_id: str | None = None, location_id: str | None = None, page: int = 1,
               per_page: int = 25) -> tuple[int, list[dict[str, Any]]]:
    """Edits, newest first: every edit for an admin, their organizations' for a partner."""
    query = _edits_query()
    reach = reach_of(session, actor=actor)
    if not reach.everything:
        query = query.where(listing_edit.c.organization_id.in_(list(reach.organizations)))
    for column, value in ((listing_edit.c.status, status), (listing_edit.c.service_id, service_id),
                          (listing_edit.c.location_id, location_id)):
        if value is not None:
            query = query.where(column == value)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(listing_edit.c.id.desc()).offset((page - 1) * per_page)
                           .limit(per_page)).mappings().all()
    return total, [_edit_out(r) for r in rows]


# --- an admin's decisions ---------------------------------------------------------------------


def _edit_for_decision(session: Session, edit_id: int, *, status: str,
                       verb: str) -> dict[str, Any]:
    row = session.execute(select(listing_edit).where(listing_edit.c.id == edit_id)
                          .with_for_update()).mappings().first()
    if row is None:
        raise NotFound(f"no listing edit {edit_id}", field="edit_id")
    if row["status"] != status:
        raise InvalidTransition(f"only {'a' if status == 'pending' else 'an'} {status} edit can "
                                f"be {verb}; this one is {row['status']}", field="status")
    row = dict(row)
    row["changes"] = _json(row["changes"])
    kind, record_id = _entity(row)
    table = hsds_tables[kind]
    session.execute(select(table.c.id).where(table.c.id == record_id).with_for_update())
    return row


def approve(session: Session, *, actor: Principal, edit_id: int, reason: str | None = None,
            search: Any = None) -> dict[str, Any]:
    """Apply a pending edit, unless its fields changed since it was proposed (409, naming
    them)."""
    row = _edit_for_decision(session, edit_id, status="pending", verb="approved")
    changes = row["changes"]
    stale = _stale_fields(session, changes, "old")
    if stale:
        raise Conflict(f"the listing changed since this edit was proposed ({', '.join(stale)}); "
                       "reject it and ask for the edit again", field=",".join(stale))
    now = datetime.now(UTC)
    for change in changes:
        if change.get("stamp"):
            change["new"] = now.isoformat()
    _write(session, changes, "new", edited_by=_edited_by(actor))
    _touch(session, row, now)
    session.execute(update(listing_edit).where(listing_edit.c.id == edit_id).values(
        status="applied", changes=changes, decided_by=actor.user_id, decided_at=now,
        decision_reason=reason))
    kind, record_id = _entity(row)
    audit.record(session, actor=actor, action="listing.approve", entity_type=kind,
                 entity_id=record_id, changes=_audit_changes(changes, edit_id))
    _refresh(session, search, row)
    return get_edit(session, edit_id)


def reject(session: Session, *, actor: Principal, edit_id: int, reason: str) -> dict[str, Any]:
    """Discard a pending edit, with the reason the partner will read."""
    row = _edit_for_decision(session, edit_id, status="pending", verb="rejected")
    session.execute(update(listing_edit).where(listing_edit.c.id == edit_id).values(
        status="rejected", decided_by=actor.user_id, decided_at=datetime.now(UTC),
        decision_reason=reason))
    kind, record_id = _entity(row)
    audit.record(session, actor=actor, action="listing.reject", entity_type=kind,
                 entity_id=record_id,
                 changes={"status": {"old": "pending", "new": "rejected"},
                          "listing_edit_id": {"old": None, "new": edit_id}})
    return get_edit(session, edit_id)


def revert(session: Session, *, actor: Principal, edit_id: int, reason: str | None = None,
           search: Any = None) -> dict[str, Any]:
    """Restore the old values of an applied edit, unless a field changed again since (409,
    naming them)."""
    row = _edit_for_decision(session, edit_id, status="applied", verb="reverted")
    changes = row["changes"]
    stale = _stale_fields(session, changes, "new")
    if stale:
        raise Conflict(f"these fields changed again since this edit: {', '.join(stale)}; "
                       "edit them by hand instead", field=",".join(stale))
    now = datetime.now(UTC)
    _write(session, changes, "old", edited_by=_edited_by(actor))
    _touch(session, row, now)
    session.execute(update(listing_edit).where(listing_edit.c.id == edit_id).values(
        status="reverted", reverted_by=actor.user_id, reverted_at=now, revert_reason=reason))
    kind, record_id = _entity(row)
    audit.record(session, actor=actor, action="listing.revert", entity_type=kind,
                 entity_id=record_id,
                 changes={**audit.diff({c["field"]: c["new"] for c in changes},
                                       {c["field"]: c["old"] for c in changes},
                                       fields=[c["field"] for c in changes]),
                          "listing_edit_id": {"old": None, "new": edit_id}})
    _refresh(session, search, row)
    return get_edit(session, edit_id)


# --- what needs a look ------------------------------------------------------------------------


def _days_since(value: datetime | None, now: datetime) -> int | None:
    return None if value is None else max(0, (now - _utc(value)).days)


def stale_listings(session: Session, *, actor: Principal, stale_days: int, page: int = 1,
                   per_page: int = 25, now: datetime | None = None,
                   ) -> tuple[int, list[dict[str, Any]]]:
    """Listed services not verified in `stale_days` days (or never), least recently verified
    first: all of them for an admin, their organizations' for a partner."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=stale_days)
    query = (select(service.c.id, service.c.name, service.c.organization_id,
                    organization.c.name.label("organization_name"), service.c.verified_at,
                    service.c.verified_by)
             .outerjoin(organization, organization.c.id == service.c.organization_id)
             .where(service.c.is_active).where(service.c.status.in_(LISTED))
             .where(service.c.duplicate_of.is_(None))
             .where(service.c.verified_at.is_(None) | (service.c.verified_at < cutoff)))
    reach = reach_of(session, actor=actor)
    if not reach.everything:
        query = query.where(service.c.organization_id.in_(list(reach.organizations)))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(service.c.verified_at.is_not(None),
                                          service.c.verified_at, service.c.name, service.c.id)
                           .offset((page - 1) * per_page).limit(per_page)).mappings().all()
    return total, [{"service_id": r["id"], "name": r["name"],
                    "organization_id": r["organization_id"],
                    "organization_name": r["organization_name"],
                    "verified_at": _utc(r["verified_at"]), "verified_by": r["verified_by"],
                    "days_since_verified": _days_since(r["verified_at"], now)} for r in rows]


def partner_listings(session: Session, *, actor: Principal, stale_days: int, page: int = 1,
                     per_page: int = 25, now: datetime | None = None,
                     ) -> tuple[int, list[dict[str, Any]]]:
    """The services of the caller's organizations with their sites (only their sites when
    their link names some), status, capacity, verification and pending edits."""
    now = now or datetime.now(UTC)
    reach = reach_of(session, actor=actor)
    query = (select(service.c.id, service.c.name, service.c.organization_id,
                    organization.c.name.label("organization_name"), service.c.status,
                    service.c.is_referable, service.c.updated_at, service.c.verified_at)
             .outerjoin(organization, organization.c.id == service.c.organization_id)
             .where(service.c.is_active)
             .where(service.c.organization_id.in_(list(reach.organizations))))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(query.order_by(organization.c.name, service.c.name, service.c.id)
                           .offset((page - 1) * per_page).limit(per_page)).mappings().all()
    ids = [r["id"] for r in rows]
    sites: dict[str, list[dict[str, Any]]] = {sid: [] for sid in ids}
    for s in session.execute(
            select(service_at_location.c.id, service_at_location.c.service_id,
                   service_at_location.c.location_id, service_at_location.c.capacity_status,
                   service_at_location.c.capacity_updated_at,
                   location.c.name.label("location_name"),
                   location.c.updated_at.label("location_updated_at"),
                   location.c.organization_id)
            .outerjoin(location, location.c.id == service_at_location.c.location_id)
            .where(service_at_location.c.service_id.in_(ids))
            .where(service_at_location.c.is_active)
            .order_by(location.c.name, service_at_location.c.id)).mappings():
        owner = next(r["organization_id"] for r in rows if r["id"] == s["service_id"])
        if reach.site(owner, s["location_id"]):
            sites[s["service_id"]].append({
                "service_at_location_id": s["id"], "location_id": s["location_id"],
                "location_name": s["location_name"],
                "location_updated_at": _utc(s["location_updated_at"]),
                "capacity_status": s["capacity_status"],
                "capacity_updated_at": _utc(s["capacity_updated_at"])})
    pending = dict(session.execute(
        select(listing_edit.c.service_id, func.count()).where(listing_edit.c.status == "pending")
        .where(listing_edit.c.service_id.in_(ids)).group_by(listing_edit.c.service_id)).all())
    cutoff = now - timedelta(days=stale_days)
    return total, [{
        "service_id": r["id"], "name": r["name"], "organization_id": r["organization_id"],
        "organization_name": r["organization_name"],
        "status": _listing_status(r["status"], bool(r["is_referable"])),
        "updated_at": _utc(r["updated_at"]), "verified_at": _utc(r["verified_at"]),
        "is_stale": r["verified_at"] is None or _utc(r["verified_at"]) < cutoff,
        "pending_edits": pending.get(r["id"], 0), "sites": sites[r["id"]],
    } for r in rows]
