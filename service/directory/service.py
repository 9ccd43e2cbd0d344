"""Directory queries used by the API, the pages and the HSDS API alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.directory.hsds import full_services, to_hsds_time
from service.directory.tables import location, organization, service
from service.errors import NotFound


def list_services(session: Session, *, name: str | None = None, source: str | None = None,
                  source_id: str | None = None, page: int = 1, per_page: int = 25,
                  include_inactive: bool = False) -> tuple[int, list[dict[str, Any]]]:
    """A page of visible services, by name, with the total."""
    query = select(service.c.id).where(~service.c.is_hidden)
    if not include_inactive:
        query = query.where(service.c.status != "inactive").where(service.c.is_active)
    if name:
        query = query.where(func.lower(service.c.name).contains(name.lower(), autoescape=True))
    if source:
        query = query.where(service.c.record_source == source)
    if source_id:
        query = query.where(service.c.record_source_id == source_id)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.execute(
        select(service, organization.c.name.label("organization_name"))
        .outerjoin(organization, organization.c.id == service.c.organization_id)
        .where(service.c.id.in_(query.order_by(service.c.name, service.c.id)
                                .offset((page - 1) * per_page).limit(per_page).scalar_subquery()))
        .order_by(service.c.name, service.c.id)
    ).mappings().all()
    items = [{
        "id": r["id"], "name": r["name"], "organization_id": r["organization_id"],
        "organization_name": r["organization_name"], "status": r["status"],
        "is_referable": r["is_referable"], "source": r["record_source"],
        "source_id": r["record_source_id"], "updated_at": r["updated_at"],
        "verified_at": r["verified_at"],
    } for r in rows]
    return total, items


def get_service(session: Session, service_id: str) -> dict[str, Any]:
    """The full HSDS listing of a visible service, or NotFound.

    The service and each site's location carry `x_updated_at`: their version, which an edit
    (`PATCH /api/v1/services/{id}`, `/locations/{id}`) sends back as `expected_updated_at`.
    """
    row = session.execute(select(service.c.id, service.c.is_hidden, service.c.record_source,
                                 service.c.record_source_id, service.c.updated_at)
                          .where(service.c.id == service_id)).first()
    if row is None or row.is_hidden:
        raise NotFound(f"no service with id {service_id!r}", field="id")
    doc = full_services(session, [service_id])[0]
    doc["x_updated_at"] = to_hsds_time(row.updated_at)
    sites = [s["location"] for s in doc["service_at_locations"] if "location" in s]
    versions = dict(session.execute(select(location.c.id, location.c.updated_at).where(
        location.c.id.in_([loc["id"] for loc in sites]))).all())
    for loc in sites:
        loc["x_updated_at"] = to_hsds_time(versions.get(loc["id"]))
    return {"service": doc, "source": row.record_source, "source_id": row.record_source_id}
