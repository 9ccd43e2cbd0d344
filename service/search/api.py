"""The search API: the case manager's question in, ranked and explained services out."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from service.deps import SessionDep, SettingsDep
from service.directory.categories import category_tree
from service.search import service as search_service
from service.search.schemas import ClientProfile, SearchQuery, SearchResponse, Suggestion
from service.search.sqlite import SqliteSearchBackend, search_slots

# One search at a time per process (see `_answer`).
SEARCH_INLINE = search_slots() == 1

router = APIRouter(prefix="/api/v1", tags=["search"])


async def get_backend(request: Request):  # noqa: ANN201
    """The app's search engine. `async` because it only reads app state: FastAPI runs a sync
    dependency in the threadpool, a thread hop per request for nothing."""
    return request.app.state.search


async def get_geocoder(request: Request):  # noqa: ANN201
    """The app's geocoder (offline unless an admin enabled an online one); `async` like
    `get_backend`."""
    return request.app.state.geocoder


BackendDep = Annotated[object, Depends(get_backend)]
GeocoderDep = Annotated[object, Depends(get_geocoder)]


@router.get("/search", response_model=SearchResponse, summary="Search services")
async def search_get(
    backend: BackendDep,
    geocoder: GeocoderDep,
    settings: SettingsDep,
    q: Annotated[str | None, Query(max_length=300, description="The need, in words.")] = None,
    category: Annotated[list[str], Query(max_length=20, description="Category ids.")] = [],  # noqa: B006
    near: Annotated[str | None, Query(max_length=200, description="Address, ZIP, 'City, ST' "
                                      "or 'lat,lon'.")] = None,
    radius_mi: Annotated[float, Query(gt=0, le=250, description="Radius in miles.")] = 10.0,
    age: Annotated[int | None, Query(ge=0, le=130, description="Client's age.")] = None,
    gender: Annotated[str | None, Query(max_length=32, description="Client's gender.")] = None,
    language: Annotated[str | None, Query(max_length=32,
                                          description="Client's language.")] = None,
    insurance: Annotated[list[str], Query(max_length=10, description="Client's cover.")] = [],  # noqa: B006
    open_now: Annotated[bool, Query(description="Only places open now.")] = False,
    cost: Annotated[list[Literal["free", "sliding_scale", "insurance"]], Query()] = [],  # noqa: B006
    sort: Annotated[Literal["relevance", "distance"], Query()] = "relevance",
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 10,
    near_misses: Annotated[bool, Query(description="Also list near misses.")] = False,
) -> Response:
    """Services for a need near a place, best first, each with reasons and cautions."""
    query = SearchQuery(
        q=q, categories=category, near=near, radius_mi=radius_mi,
        client=ClientProfile(age=age, gender=gender, language=language, insurance=insurance),
        open_now=open_now, cost=cost, sort=sort, page=page, per_page=per_page,
        include_near_misses=near_misses)
    return await _answer(backend, geocoder, query, demo_notice=settings.demo_notice)


async def _answer(backend: object, geocoder: object, query: SearchQuery, *,
                  demo_notice: bool) -> Response:
    """The search, serialised.

    Run on the event loop itself when this process runs one search at a time (a worker of
    several, see `search_slots`), the engine is the embedded one and clients are placed
    offline: such a search only computes, so a thread would add a hand-over (and a GIL
    contest with the loop) to every request and let no other search run any sooner (wrk at
    concurrency 16 on two workers: a fifth less CPU per request). Elasticsearch and an online
    geocoder wait on the network, and a process with more than one slot runs searches side by
    side: those searches run in the threadpool."""
    if (SEARCH_INLINE and isinstance(backend, SqliteSearchBackend)
            and getattr(geocoder, "online", None) is None):
        return _json(search_service.search(backend, geocoder, query, demo_notice=demo_notice))
    return await run_in_threadpool(
        lambda: _json(search_service.search(backend, geocoder, query, demo_notice=demo_notice)))


def _json(response: SearchResponse) -> Response:
    """The response serialised once by pydantic (FastAPI would validate it again first)."""
    return Response(content=response.model_dump_json(), media_type="application/json")


@router.post("/search", response_model=SearchResponse, summary="Search with a full profile")
async def search_post(query: SearchQuery, backend: BackendDep, geocoder: GeocoderDep,
                      settings: SettingsDep) -> Response:
    """The same search, with the whole client profile and every filter in a JSON body."""
    return await _answer(backend, geocoder, query, demo_notice=settings.demo_notice)


@router.get("/suggest", response_model=list[Suggestion], summary="Type-ahead")
def suggest(backend: BackendDep,
            q: Annotated[str, Query(min_length=1, max_length=100)]) -> list[Suggestion]:
    """Categories and service names that start with what was typed."""
    if backend is None:
        from service.errors import Unavailable
        raise Unavailable("search is not available: no search backend is configured")
    return backend.suggest(q)


@router.get("/categories", summary="The category tree with service counts")
def categories(session: SessionDep) -> list[dict]:
    """Every need category, nested, with how many active services it and its children have."""
    from sqlalchemy import func, select

    from service.directory.tables import service, service_category

    counts = dict(session.execute(
        select(service_category.c.category_id, func.count())
        .join(service, service.c.id == service_category.c.service_id)
        .where(service.c.is_active).where(~service.c.is_hidden)
        .group_by(service_category.c.category_id)).all())
    tree = category_tree()

    def node(cid: str) -> dict:
        children = [node(c.id) for c in tree.children(cid)]
        own = counts.get(cid, 0)
        return {"id": cid, "slug": tree[cid].slug, "name": tree[cid].name,
                "count": own + sum(c["count"] for c in children), "children": children}

    return [node(c.id) for c in tree.roots()]
