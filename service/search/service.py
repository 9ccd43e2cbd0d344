"""Search as the API and the pages use it: place the client, ask the engine, keep the index
fresh after edits and imports."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from indexer.geocode import GeoTables
from service.db import Database
from service.errors import BadRequest, Unavailable
from service.search.backend import Place
from service.search.schemas import SearchQuery, SearchResponse

log = logging.getLogger(__name__)

DEMO_NOTICE = ("Demo data: these listings come from public datasets that are years old. Do not "
               "use them for real referrals.")


def make_backend(settings: Any, db: Database) -> Any:
    """The configured search engine, or None when none can serve this directory."""
    if settings.search_backend == "elasticsearch":
        if not settings.elasticsearch_url:
            log.warning("no search backend: SIGNPOST_SEARCH_BACKEND=elasticsearch needs "
                        "SIGNPOST_ELASTICSEARCH_URL")
            return None
        from service.search.elasticsearch import ElasticsearchBackend
        return ElasticsearchBackend.from_settings(settings, db)
    if not db.is_sqlite:
        log.warning("no search backend: the embedded one needs SQLite records; use "
                    "SIGNPOST_SEARCH_BACKEND=elasticsearch with PostgreSQL")
        return None
    from service.search.sqlite import SqliteSearchBackend
    backend = SqliteSearchBackend(db)
    backend.ensure_schema()
    return backend


def ensure_current_index(settings: Any, db: Database) -> int | None:
    """Rebuild the embedded index when it was written by an older version (run once, before
    the server's workers start); returns the documents written, or None when current."""
    backend = make_backend(settings, db)
    if backend is None or not hasattr(backend, "is_current") or backend.is_current():
        return None
    log.warning("the search index has an older format: rebuilding it from the records")
    return backend.rebuild()


def locate(near: str, geocoder: Any) -> Place:
    """The client's place from an address, ZIP, 'City, ST' or 'lat,lon'; 400 when unknown."""
    text = near.strip()
    if not text:
        raise BadRequest("near is empty", field="near")
    point = geocoder.geocode(text)
    if point is None:
        raise BadRequest(f"could not place {near!r}: give a ZIP code, 'City, ST', an address "
                         "with a ZIP, or 'lat,lon'", field="near")
    tables = GeoTables.default()
    zip_info = tables.nearest_zip(point.lat, point.lon)
    return Place(point.lat, point.lon, label=point.label or text, precision=point.precision,
                 postal_code=zip_info.zip if zip_info else None,
                 state=zip_info.state if zip_info else None,
                 county=zip_info.county if zip_info else None,
                 city=zip_info.city if zip_info else None)


def search(backend: Any, geocoder: Any, query: SearchQuery, *,
           demo_notice: bool = False) -> SearchResponse:
    """Run a search for the API and the pages."""
    if backend is None:
        raise Unavailable("search is not available: no search backend is configured for this "
                          "directory (see SIGNPOST_SEARCH_BACKEND)")
    place = locate(query.near, geocoder) if query.near else None
    response = backend.search(query, place)
    if demo_notice:
        response.notice = DEMO_NOTICE
    return response


REBUILD_MIN = 20000  # an import changing more services than this rebuilds the index


def _wants_rebuild(changed: int, indexed: int) -> bool:
    """Whether an import changing `changed` services rebuilds an index of `indexed`."""
    return changed > REBUILD_MIN or changed > indexed


def _uses_elasticsearch(settings: Any) -> bool:
    return settings.search_backend == "elasticsearch" and bool(settings.elasticsearch_url)


def rebuilds_embedded_index(db: Database, changed: int, *, settings: Any = None) -> bool:
    """Whether `refresh_index` would rebuild the embedded (SQLite) index after an import that
    changes `changed` services."""
    if settings is None:
        from service.config import get_settings
        settings = get_settings()
    if _uses_elasticsearch(settings) or not db.is_sqlite:
        return False
    from service.search.sqlite import SqliteSearchBackend

    backend = SqliteSearchBackend(db)
    backend.ensure_schema()
    return _wants_rebuild(changed, backend.count())


def refresh_index(db: Database, service_ids: set[str], *, settings: Any = None,
                  prebuilt: Any = None, alongside: Any = None) -> int:
    """After an import: rewrite the changed services' documents (or rebuild when most did).

    `prebuilt` (SQLite only): documents the import built from its stage, for a rebuild that
    the import prepared (`rebuilds_embedded_index`, `SqliteSearchBackend.prepare_rebuild`);
    `alongside`: work to run beside that rebuild (see `SqliteSearchBackend.rebuild`)."""
    if settings is None:
        from service.config import get_settings
        settings = get_settings()
    if _uses_elasticsearch(settings):
        from service.search.elasticsearch import ElasticsearchBackend

        es = ElasticsearchBackend.from_settings(settings, db)
        if not service_ids:
            return 0
        try:
            if _wants_rebuild(len(service_ids), es.count()):
                return es.rebuild()
            with db.engine.connect() as conn:
                return es.reindex_services(conn, service_ids)
        except Unavailable as exc:
            # The records are saved; only the index lags until the next rebuild.
            log.warning("search index not refreshed (%s); run `signpost index rebuild`",
                        exc.message)
            return 0
    if not db.is_sqlite:
        return 0
    from service.search.sqlite import SqliteSearchBackend

    backend = SqliteSearchBackend(db)
    backend.ensure_schema()
    if prebuilt is not None:
        return backend.rebuild(prebuilt=prebuilt, alongside=alongside)
    if not service_ids:
        return 0
    if _wants_rebuild(len(service_ids), backend.count()):
        return backend.rebuild()
    with db.engine.connect() as conn:
        conn.execution_options(sqlite_write=True)
        n = backend.reindex_services(conn, service_ids)
        conn.commit()
    return n


def refresh_services(session: Session, backend: Any, service_ids: Iterable[str]) -> int:
    """After a listing edit: rewrite these services' documents so searches show it at once.

    The embedded index lives in the records' database, so its documents are rewritten inside
    the caller's transaction and commit (or roll back) with the edit. Elasticsearch is written
    once that transaction has committed, so a rolled-back edit never reaches it; when the
    cluster is down the edit stays saved and the index lags until `signpost index rebuild`.
    Returns the documents written now (0 when they are written after the commit).
    """
    ids = sorted(set(service_ids))
    if backend is None or not ids:
        return 0
    from service.search.sqlite import SqliteSearchBackend

    if isinstance(backend, SqliteSearchBackend):
        return backend.reindex_services(session.connection(), ids)
    db = getattr(backend, "db", None)
    if db is None:
        log.warning("search index not refreshed after an edit (the engine has no records "
                    "database); run `signpost index rebuild`")
        return 0

    def _after_commit(_session: Session) -> None:
        try:
            with db.engine.connect() as conn:
                backend.reindex_services(conn, ids)
        except Unavailable as exc:
            log.warning("search index not refreshed after an edit (%s); run `signpost index "
                        "rebuild`", exc.message)

    event.listen(session, "after_commit", _after_commit, once=True)
    return 0
