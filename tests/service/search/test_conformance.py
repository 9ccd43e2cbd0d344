"""One conformance suite for every search engine: the same known answers on the same data.

The embedded SQLite engine always runs; the Elasticsearch engine runs when
SIGNPOST_TEST_ELASTICSEARCH_URL points at an 8.x cluster (each test uses its own alias and
deletes its indices afterwards). Both index the documents `build_documents` makes from
`tests.factories.search_package`, and are asked through the same HTTP API.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from service.directory.edits import apply_local_edit
from service.directory.tables import service
from service.search.documents import build_documents
from tests.factories import Package, search_package
from tests.service.search.test_search import KNOWN_ANSWERS

ES_URL = os.environ.get("SIGNPOST_TEST_ELASTICSEARCH_URL")


def _engines() -> list[Any]:
    return ["sqlite", pytest.param("elasticsearch", marks=pytest.mark.skipif(
        not ES_URL, reason="no Elasticsearch cluster: set SIGNPOST_TEST_ELASTICSEARCH_URL "
        "to an 8.x server to run the conformance suite against it"))]


@pytest.fixture
def directory(sqlite_db: Database, tmp_path: Path) -> Database:
    load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    return sqlite_db


@contextmanager
def _backend(kind: str, directory: Database) -> Iterator[Any]:
    """A search backend of `kind` holding the documents of every service in `directory`."""
    if kind == "sqlite":
        from service.search.sqlite import SqliteSearchBackend

        yield SqliteSearchBackend(directory)
        return
    from service.search.elasticsearch import ElasticsearchBackend

    backend = ElasticsearchBackend(ES_URL, db=directory,
                                   alias=f"signpost-test-{uuid.uuid4().hex[:12]}")
    with directory.engine.connect() as conn:
        ids = list(conn.execute(select(service.c.id).order_by(service.c.id)).scalars())
        backend.index(build_documents(conn, ids))
    try:
        yield backend
    finally:
        backend.client.indices.delete(index=f"{backend.alias}-*", ignore_unavailable=True)
        backend.client.close()


@contextmanager
def _api(backend: Any, directory: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=str(directory.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with TestClient(create_app(settings)) as client:
        client.app.state.search = backend
        yield client


@pytest.fixture(params=_engines())
def engine(request: pytest.FixtureRequest, directory: Database) -> Iterator[Any]:
    """A search backend holding the search_package documents."""
    with _backend(request.param, directory) as backend:
        yield backend


@pytest.fixture
def api(engine: Any, directory: Database, tmp_path: Path) -> Iterator[TestClient]:
    with _api(engine, directory, tmp_path) as client:
        yield client


def get(api: TestClient, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def names(api: TestClient, **params: Any) -> list[str]:
    return [r["name"] for r in get(api, **params)["results"]]


@pytest.mark.parametrize(("params", "expected"), KNOWN_ANSWERS,
                         ids=[str(p) for p, _ in KNOWN_ANSWERS])
def test_known_answers(api: TestClient, params: dict, expected: list[str]) -> None:
    assert names(api, **params) == expected


def test_ranking_order_and_totals(api: TestClient) -> None:
    body = get(api, q="food pantry", near="20001", radius_mi=10)
    assert body["total"] == 3 and body["pages"] == 1
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    distances = [r["distance_mi"] for r in get(api, category="1130", near="20001",
                                               sort="distance", radius_mi=10)["results"]]
    assert distances == sorted(distances)


def test_eligibility_filters(api: TestClient) -> None:
    adult = names(api, q="shelter", near="20001", age=30)
    assert "Adult Men's Shelter" in adult and "Youth Shelter" not in adult
    minor = names(api, q="shelter", near="20001", age=17)
    assert "Youth Shelter" in minor and "Adult Men's Shelter" not in minor
    assert "Adult Men's Shelter" not in names(api, q="shelter", near="20001", age=30,
                                              gender="female")
    assert {"Adult Men's Shelter", "Youth Shelter"} <= set(names(api, q="shelter",
                                                                 near="20001"))


def test_cost_capacity_language_and_open_filters(api: TestClient) -> None:
    assert names(api, q="food", near="20001", cost="free") == ["Capitol Food Pantry"]
    assert names(api, q="food", near="20001", open_now="true") == ["Capitol Food Pantry"]
    body = api.post("/api/v1/search", json={"q": "food", "near": "20001", "languages": ["es"],
                                            "capacity": ["has_capacity"]}).json()
    assert [r["name"] for r in body["results"]] == ["Capitol Food Pantry"]
    assert api.post("/api/v1/search", json={"q": "shelter", "near": "20001", "capacity": [
        "waitlist"]}).json()["results"][0]["name"] == "Adult Men's Shelter"


def test_area_wide_services(api: TestClient) -> None:
    for near in ("33125", "Tallahassee, FL"):
        assert "Florida Crisis Hotline" in names(api, q="crisis counseling", near=near)
    assert "Florida Crisis Hotline" not in names(api, q="crisis counseling", near="20001")


def test_spelling(api: TestClient) -> None:
    found = names(api, q="shleter", near="20001")
    assert "Adult Men's Shelter" in found and "Youth Shelter" in found
    assert "Neighborhood Party Supplies" not in names(api, q="pantry", near="20001")


def test_facets(api: TestClient) -> None:
    body = get(api, q="food", near="20001", radius_mi=10)
    food = next(f for f in body["facets"]["categories"] if f["value"] == "1102")
    assert food["count"] == 3
    assert {"value": "free", "label": "Free", "count": 1} in body["facets"]["cost"]
    assert {"value": "es", "label": "Spanish", "count": 1} in body["facets"]["languages"]


def test_reasons_and_cautions(api: TestClient) -> None:
    first = get(api, q="food pantry", near="20001", language="es")["results"][0]
    reasons = {n["code"] for n in first["reasons"]}
    assert {"category", "distance", "language", "free", "has_capacity"} <= reasons
    shelter = get(api, q="shelter", near="20001", age=30)["results"]
    adult = next(r for r in shelter if r["name"] == "Adult Men's Shelter")
    assert "age_fits" in {n["code"] for n in adult["reasons"]}
    assert {"waitlist", "hours_unknown"} <= {n["code"] for n in adult["cautions"]}
    body = api.post("/api/v1/search", json={"q": "food pantry", "near": "20001",
                                            "include_not_referable": True}).json()
    listed = next(r for r in body["results"] if r["name"] == "Closed Intake Pantry")
    assert "do_not_refer" in {c["code"] for c in listed["cautions"]}


def test_near_misses(api: TestClient) -> None:
    body = api.post("/api/v1/search", json={
        "q": "shelter", "near": "20001", "radius_mi": 5, "client": {"age": 30},
        "include_near_misses": True}).json()
    misses = {m["result"]["name"]: m["missed"] for m in body["near_misses"]}
    assert misses["Youth Shelter"][0]["text"] == "ages 12-17; client 30"
    far = api.post("/api/v1/search", json={
        "q": "food pantry", "near": "20001", "radius_mi": 3, "include_near_misses": True}).json()
    missed = {m["result"]["name"]: m["missed"][0] for m in far["near_misses"]}
    assert missed["Anacostia Food Pantry"]["code"] == "distance"


def test_paging(api: TestClient) -> None:
    seen = []
    for page in (1, 2, 3):
        body = get(api, category="1102", near="20001", radius_mi=10, per_page=1, page=page)
        assert body["total"] == 3
        seen += [r["service_id"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == 3


def test_incremental_index_and_remove(api: TestClient, engine: Any,
                                      directory: Database) -> None:
    with directory.session(write=True) as session:
        sid = session.execute(select(service.c.id).where(
            service.c.record_source_id == "pantry-far")).scalar_one()
        apply_local_edit(session, table="service", record_id=sid,
                         changes={"name": "Anacostia Community Pantry"}, edited_by="partner:a")
    engine.remove([sid])
    assert "Anacostia Food Pantry" not in names(api, q="food pantry", near="20001")
    with directory.engine.connect() as conn:
        assert engine.index(build_documents(conn, [sid])) == 1
    assert "Anacostia Community Pantry" in names(api, q="food pantry", near="20001")


def test_rebuild_keeps_every_document(engine: Any, directory: Database, api: TestClient) -> None:
    before = engine.count()
    assert before == 12
    assert engine.rebuild() == before
    assert engine.count() == before
    assert names(api, q="food pantry", near="20001", radius_mi=3) == ["Capitol Food Pantry"]


def test_suggest(api: TestClient) -> None:
    assert api.get("/api/v1/suggest", params={"q": "food pa"}).json()[0] == {
        "kind": "category", "id": "1130", "label": "Food Pantry"}
    assert any(s["label"] == "Capitol Food Pantry"
               for s in api.get("/api/v1/suggest", params={"q": "capitol"}).json())


# --- how a need is read and ranked: its words at word starts, needs before the client ----------


def ranking_package() -> Package:
    """Listings a few hundred yards from the client at 20001 (38.912, -77.018), each pair
    equal but for what the rule under test looks at; the one the rule puts second is nearer."""
    p = Package()
    for number, (key, name, category, lat, description) in enumerate((
            ("tutor-inside", "Statutory Learning Center", "1343", 38.913, "Tutoring after school"),
            ("tutor-start", "Tutoring Hub", "1343", 38.916, "Tutoring after school"),
            ("seniors", "Seniors Day Club", "1278", 38.913, "Day program for seniors"),
            ("pantry", "Eastside Food Pantry", "1130", 38.918, "Free groceries"),
            ("shelter", "Downtown Night Shelter", "1121", 38.912, "Emergency shelter beds"))):
        p.add("organization", id=f"org-{key}", name=f"Provider {number}", description="Provider")
        p.add("service", id=key, organization_id=f"org-{key}", name=name,
              description=description, status="active", x_categories=category,
              x_is_referable="true")
        p.add("location", id=f"loc-{key}", organization_id=f"org-{key}", name=name,
              location_type="physical", latitude=lat, longitude=-77.018)
        p.add("service_at_location", id=f"sal-{key}", service_id=key, location_id=f"loc-{key}")
        p.add("address", id=f"adr-{key}", location_id=f"loc-{key}", address_1="1 Main St",
              city="Washington", state_province="DC", postal_code="20001", country="US",
              address_type="physical")
    return p


@pytest.fixture(params=_engines())
def ranking_api(request: pytest.FixtureRequest, sqlite_db: Database,
                tmp_path: Path) -> Iterator[TestClient]:
    """The API over a backend holding the ranking_package documents."""
    load(sqlite_db, ranking_package().write(tmp_path / "pkg"), source="city")
    with _backend(request.param, sqlite_db) as backend, _api(backend, sqlite_db,
                                                             tmp_path) as client:
        yield client


RANKING_RULES = [
    # A need word counts in a name at the start of a word, even one it only begins
    # ("Tutoring"), never inside one ("Statutory"), though that listing is nearer.
    ("tutor", ["Tutoring Hub", "Statutory Learning Center"]),
    # Words about the client ("seniors") find listings but never outrank the need: the day
    # club is nearer and has the word in its name, the pantry is what was asked for.
    ("food pantry for seniors", ["Eastside Food Pantry", "Seniors Day Club"]),
    # A negated phrase is no part of the need: the shelter (nearest of all) is not found.
    ("needs food, not shelter", ["Eastside Food Pantry"]),
    ("shelter", ["Downtown Night Shelter"]),
]


@pytest.mark.parametrize(("q", "expected"), RANKING_RULES, ids=[q for q, _ in RANKING_RULES])
def test_ranking_rules(ranking_api: TestClient, q: str, expected: list[str]) -> None:
    assert names(ranking_api, q=q, near="20001") == expected
