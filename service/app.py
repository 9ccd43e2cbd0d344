"""The FastAPI application: `create_app(settings)` builds everything in its lifespan."""

from __future__ import annotations

import gc
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

from service import access, errors, openapi, pages
from service.accounts import api as accounts_api
from service.audit import api as audit_api
from service.cli import make_geocoder
from service.clients import api as clients_api
from service.config import PROJECT_ROOT, Settings, get_settings
from service.db import Database
from service.directory import api as directory_api
from service.directory import partner_api as listing_updates_api
from service.hsds_api import api as hsds_api
from service.notifications import api as notifications_api
from service.pages.session import WebSession
from service.referrals import api as referrals_api
from service.reports import api as reports_api
from service.search import api as search_api
from service.search.service import make_backend

STATIC_DIR = PROJECT_ROOT / "service" / "static"  # served at /static


def _warm_up(app: FastAPI) -> None:
    """Load the geo tables, categories and search vocabulary now, then freeze them out of the
    garbage collector's sight: a full collection over a million long-lived objects otherwise
    stalls a request for hundreds of milliseconds now and then.

    Everything else a search loads on first use is loaded here too (the ZIP grid, the time
    zone finder, the table of access rules): the worker's first searches would otherwise
    wait about a second for them, with every other request on that worker behind them."""
    from indexer.geocode import GeoTables, timezone_for
    from service.directory.categories import category_tree, synonyms

    GeoTables.default().nearest_zip(39.83, -98.58)  # builds the ZIP grid
    timezone_for(39.83, -98.58)  # loads the time zone finder
    category_tree()
    synonyms()
    access.prepare(app)
    if app.state.search is not None:
        with app.state.db.engine.connect() as conn:
            app.state.search._vocabulary(conn.connection.dbapi_connection)
    gc.collect()
    gc.freeze()


def _start_delivery(settings: Settings, db: Database):  # noqa: ANN202
    """The notification sender's background thread (a pass every minute), when an SMTP host is
    set; None otherwise (messages wait in the outbox)."""
    from service.notifications.sender import DeliveryLoop, SmtpConfig

    config = SmtpConfig.from_settings(settings)
    if config is None:
        return None
    loop = DeliveryLoop(db, config, base_url=settings.public_base_url)
    loop.start()
    return loop


def create_app(settings: Settings | None = None) -> FastAPI:
    """A ready app; nothing connects until it starts."""
    settings = settings or get_settings()
    # Sync routes run in threads; with Python's default 5 ms GIL switch interval the event loop
    # waits up to 5 ms to hand each answer over. 0.5 ms quadruples requests/s (see bench/).
    sys.setswitchinterval(0.0005)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.database_url)
        db.migrate()
        app.state.db = db
        app.state.settings = settings
        app.state.search = make_backend(settings, db)
        stale = getattr(app.state.search, "stale_format", lambda: None)()
        if stale is not None:  # every search would fail on the old layout: say so, now
            raise RuntimeError(f"the search index has format {stale}, written by an older "
                               "version of Signpost: run `signpost index rebuild` (`signpost "
                               "serve` rebuilds it before starting its workers)")
        app.state.geocoder = make_geocoder(settings)
        _warm_up(app)
        delivery = _start_delivery(settings, db)
        try:
            yield
        finally:
            if delivery is not None:
                delivery.stop()
            db.dispose()

    app = FastAPI(
        title="Signpost",
        version="0.1.0",
        description="Community resource directory with referral matching. Listings follow "
                    "Open Referral HSDS 3.1; Signpost's own fields are prefixed x_.",
        lifespan=lifespan,
        dependencies=[Depends(access.enforce)],  # every route's rule: service/access.py
    )
    errors.install(app)
    openapi.install(app)  # every operation documents its error answers

    @app.get("/health", tags=["meta"], summary="Health check")
    def health() -> dict[str, str]:
        """'ok' when the app can reach its database."""
        with app.state.db.session() as session:
            session.execute(text("SELECT 1"))
        return {"status": "ok"}

    app.include_router(directory_api.router)
    app.include_router(listing_updates_api.router)
    app.include_router(search_api.router)
    app.include_router(accounts_api.router)
    app.include_router(accounts_api.users_router)
    app.include_router(clients_api.router)
    app.include_router(clients_api.caseloads_router)
    app.include_router(audit_api.router)
    app.include_router(referrals_api.router)
    app.include_router(reports_api.router)
    app.include_router(notifications_api.router)
    app.include_router(hsds_api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(WebSession, settings=settings)  # visitor nonce (CSRF), flash messages
    app.add_middleware(pages.SecurityHeaders)  # CSP, nosniff, no framing on every page
    return app
