"""The home page (the full web app grows from here)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from service.deps import SessionDep, SettingsDep
from service.directory.tables import import_run, location, service
from service.web import templates

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """Directory size, freshness and the latest imports."""
    services = session.execute(select(func.count()).select_from(service)
                               .where(service.c.is_active)).scalar_one()
    locations = session.execute(select(func.count()).select_from(location)
                                .where(location.c.is_active)).scalar_one()
    runs = session.execute(select(import_run).order_by(import_run.c.id.desc()).limit(10)
                           ).mappings().all()
    return templates.TemplateResponse(request, "home.html", {
        "services": services, "locations": locations, "runs": runs,
        "demo_notice": settings.demo_notice})
