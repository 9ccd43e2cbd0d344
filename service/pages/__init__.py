"""The web app's pages: server-rendered HTML around `templates/base.html`.

Each page module is a thin router that calls the same service functions as the JSON API and
hands plain values to a template; templates never query. `router` gathers them all.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from service.deps import SessionDep, SettingsDep
from service.directory.tables import import_run, location, service
from service.pages import admin, auth, clients, partner, referrals, search, services
from service.pages.headers import SecurityHeaders
from service.web import templates

__all__ = ["SecurityHeaders", "router"]

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def home(request: Request, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """Directory size, freshness and the latest imports."""
    services_count = session.execute(select(func.count()).select_from(service)
                                     .where(service.c.is_active)).scalar_one()
    locations = session.execute(select(func.count()).select_from(location)
                                .where(location.c.is_active)).scalar_one()
    runs = session.execute(select(import_run).order_by(import_run.c.id.desc()).limit(10)
                           ).mappings().all()
    return templates.TemplateResponse(request, "home.html", {
        "services": services_count, "locations": locations, "runs": runs,
        "demo_notice": settings.demo_notice})


router.include_router(auth.router)
router.include_router(search.router)
router.include_router(services.router)
router.include_router(clients.router)
router.include_router(referrals.router)
router.include_router(partner.router)
router.include_router(admin.router)
