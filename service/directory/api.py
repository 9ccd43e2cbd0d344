"""JSON API of the directory: list and read listings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.deps import SessionDep, SettingsDep
from service.directory import service as directory
from service.directory.schemas import ServiceDetail, ServicePage

router = APIRouter(prefix="/api/v1", tags=["directory"])

DEMO_NOTICE = ("Demo data: these listings come from public datasets that are years old. Do not "
               "use them for real referrals.")


@router.get("/services", response_model=ServicePage, summary="List services")
def list_services(
    session: SessionDep,
    settings: SettingsDep,
    name: Annotated[str | None, Query(max_length=200, description="Part of the name.")] = None,
    source: Annotated[str | None, Query(max_length=64, description="Source feed name.")] = None,
    source_id: Annotated[str | None, Query(max_length=200,
                                           description="The service's id in its source.")] = None,
    page: Annotated[int, Query(ge=1, le=100000, description="1-based page.")] = 1,
    per_page: Annotated[int, Query(ge=1, le=100, description="Items per page.")] = 25,
) -> ServicePage:
    """Visible services by name, optionally from one source or with one source id."""
    total, items = directory.list_services(session, name=name, source=source,
                                           source_id=source_id, page=page, per_page=per_page)
    return ServicePage(total=total, page=page, per_page=per_page, items=items,
                       notice=DEMO_NOTICE if settings.demo_notice else None)


@router.get("/services/{service_id}", response_model=ServiceDetail, summary="Read a service")
def get_service(session: SessionDep, settings: SettingsDep,
                service_id: Annotated[str, Path(max_length=64)]) -> ServiceDetail:
    """The full listing: organization, sites, addresses, phones, hours, eligibility."""
    found = directory.get_service(session, service_id)
    return ServiceDetail(**found, notice=DEMO_NOTICE if settings.demo_notice else None)
