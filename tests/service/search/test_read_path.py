"""The embedded engine's read path: hours as a ranking signal and a filter, many searches at
once, and a busy database answered like everywhere else in the API."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.geocode import Geocoder
from indexer.pipeline import load
from service.db import Database
from service.search.schemas import SearchQuery
from service.search.service import locate
from service.search.sqlite import SqliteSearchBackend
from tests.factories import Package

MONDAY_10AM = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)  # 10:00 in Washington (EDT)
TUESDAY_10AM = datetime(2025, 6, 3, 14, 0, tzinfo=UTC)


def twin_pantries() -> Package:
    """Two pantries alike in all but their hours: one opens on Mondays, one on Tuesdays."""
    p = Package()
    for key, day in (("monday", "MO"), ("tuesday", "TU")):
        p.add("organization", id=f"org-{key}", name="Twin Pantries Inc", description="Food")
        p.add("service", id=key, organization_id=f"org-{key}", name=f"Pantry open {key}s",
              description="Groceries", status="active", x_categories="1130")
        p.add("location", id=f"loc-{key}", organization_id=f"org-{key}", name="Pantry",
              location_type="physical", latitude=38.915, longitude=-77.020)
        p.add("service_at_location", id=f"sal-{key}", service_id=key, location_id=f"loc-{key}")
        p.add("address", id=f"adr-{key}", location_id=f"loc-{key}", address_1="1 Main St",
              city="Washington", state_province="DC", postal_code="20001", country="US",
              address_type="physical")
        p.add("schedule", id=f"sch-{key}", service_id=key, freq="WEEKLY", byday=day,
              opens_at="09:00", closes_at="17:00")
    return p


def _names(backend: SqliteSearchBackend, at: datetime, **query: object) -> list[str]:
    search = SearchQuery(q="pantry", near="20001", **query)
    response = backend.search(search, locate("20001", Geocoder()), now=at)
    return [r.name for r in response.results]


@pytest.mark.parametrize(("at", "first"), [(MONDAY_10AM, "Pantry open mondays"),
                                           (TUESDAY_10AM, "Pantry open tuesdays")])
def test_the_pantry_open_now_ranks_first(sqlite_db: Database, tmp_path: Path,
                                         at: datetime, first: str) -> None:
    load(sqlite_db, twin_pantries().write(tmp_path / "pkg"), source="city")
    assert _names(SqliteSearchBackend(sqlite_db), at)[0] == first


@pytest.mark.parametrize(("at", "open_then"), [(MONDAY_10AM, ["Pantry open mondays"]),
                                               (TUESDAY_10AM, ["Pantry open tuesdays"])])
def test_open_at_keeps_only_the_pantry_open_then(sqlite_db: Database, tmp_path: Path,
                                                 at: datetime, open_then: list[str]) -> None:
    load(sqlite_db, twin_pantries().write(tmp_path / "pkg"), source="city")
    assert _names(SqliteSearchBackend(sqlite_db), MONDAY_10AM, open_at=at) == open_then


def test_many_searches_at_once_each_get_their_own_answer(directory: Database) -> None:
    backend = SqliteSearchBackend(directory)
    place = locate("20001", Geocoder())
    queries = [SearchQuery(q=q, near="20001", radius_mi=radius)
               for q in ("food pantry", "shelter", "rehab", "crisis counseling", "pantry")
               for radius in (1.0, 3.0, 10.0, 25.0)]
    alone = [backend.search(q, place, now=MONDAY_10AM).model_dump_json() for q in queries]
    with ThreadPoolExecutor(max_workers=16) as pool:
        together = list(pool.map(
            lambda q: backend.search(q, place, now=MONDAY_10AM).model_dump_json(), queries * 4))
    assert together == alone * 4


@pytest.mark.parametrize("inline", [True, False], ids=["on the event loop", "in a thread"])
def test_a_busy_database_answers_a_search_with_a_503_to_retry(
        api: TestClient, monkeypatch: pytest.MonkeyPatch, inline: bool) -> None:
    from service.search import api as search_api

    monkeypatch.setattr(search_api, "SEARCH_INLINE", inline)

    def busy(self: SqliteSearchBackend, conn: sqlite3.Connection) -> dict[str, int]:
        error = sqlite3.OperationalError("database is locked")
        error.sqlite_errorcode = 5  # SQLITE_BUSY, as the driver sets it
        raise error

    monkeypatch.setattr(SqliteSearchBackend, "_vocabulary", busy)
    response = api.get("/api/v1/search", params={"q": "food", "near": "20001"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"


SEARCHES = [{"q": "food pantry", "near": "20001", "radius_mi": 10},
            {"q": "shelter", "near": "20001", "age": 30, "language": "es"},
            {"category": "1130", "near": "20001", "sort": "distance"},
            {"q": "rehab", "near": "20001", "near_misses": "true"}]


@pytest.mark.parametrize("inline", [True, False], ids=["on the event loop", "in a thread"])
def test_a_search_answers_alike_on_the_event_loop_or_in_a_thread(
        api: TestClient, monkeypatch: pytest.MonkeyPatch, inline: bool) -> None:
    """A worker of several (one search at a time) answers on its event loop; any other
    process in a thread: the answers, reasons and cautions and errors, are the same."""
    from service.search import api as search_api

    monkeypatch.setattr(search_api, "SEARCH_INLINE", False)
    expected = [api.get("/api/v1/search", params=p).json() for p in SEARCHES]
    monkeypatch.setattr(search_api, "SEARCH_INLINE", inline)
    assert [api.get("/api/v1/search", params=p).json() for p in SEARCHES] == expected
    posted = api.post("/api/v1/search", json={"q": "food pantry", "near": "20001",
                                               "radius_mi": 10})
    assert posted.json() == expected[0]
    for result in expected[1]["results"]:
        for note in result["reasons"] + result["cautions"]:
            assert set(note) == {"code", "params", "text"} and note["text"]
    unknown = api.get("/api/v1/search", params={"q": "food", "near": "nowhere at all"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "near"


def _on_a_loop() -> bool:
    """Whether the calling thread is running an event loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize(("engine", "online", "on_the_loop"), [
    ("embedded", False, True), ("embedded", True, False), ("another", False, False)],
    ids=["embedded engine, offline geocoder", "online geocoder", "another engine"])
def test_only_a_search_that_waits_on_nothing_runs_on_the_event_loop(
        api: TestClient, monkeypatch: pytest.MonkeyPatch, engine: str, online: bool,
        on_the_loop: bool) -> None:
    """An online geocoder and Elasticsearch wait on the network, so a search that may ask
    them runs in a thread, and the worker's other requests are not held up meanwhile."""
    from service.search import api as search_api

    monkeypatch.setattr(search_api, "SEARCH_INLINE", True)
    geocoder, backend = api.app.state.geocoder, api.app.state.search
    seen: list[bool] = []
    asks_online = object() if online else None

    class Geocoder:
        online = asks_online

        def geocode(self, text: str):  # noqa: ANN202
            return geocoder.geocode(text)

    class Engine:  # any engine but the embedded one
        def search(self, *args: object, **kwargs: object):  # noqa: ANN202
            seen.append(_on_a_loop())
            return backend.search(*args, **kwargs)

    searched = SqliteSearchBackend.search

    def watched(self: SqliteSearchBackend, *args: object, **kwargs: object):  # noqa: ANN202
        seen.append(_on_a_loop())
        return searched(self, *args, **kwargs)

    monkeypatch.setattr(SqliteSearchBackend, "search", watched)
    monkeypatch.setattr(api.app.state, "geocoder", Geocoder())
    if engine == "another":
        monkeypatch.setattr(api.app.state, "search", Engine())
    response = api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"})
    assert response.status_code == 200 and response.json()["results"]
    assert seen[0] is on_the_loop


def test_every_hour_of_the_week_reads_back_as_it_was_stored() -> None:
    """The 168 hour slots are stored as three integers; each slot, the first and last of each
    part included, reads back set or not as the listing's hours say."""
    import random
    import sqlite3

    from service.search.sqlite import _hour_at, _hour_set, _slot_parts

    rng = random.Random(168)
    weeks = ["1" * 168, "0" * 168, "10" * 84, "".join(rng.choice("01") for _ in range(168))]
    conn = sqlite3.connect(":memory:")
    for week in weeks:
        parts = _slot_parts("h", week)
        row = ", ".join(f"{v} AS {k}" for k, v in parts.items())
        for slot in range(168):
            computed = conn.execute(f"SELECT {_hour_set('d.h', str(slot))}, "
                                    f"{_hour_at('d.h', slot)} FROM (SELECT {row}) d").fetchone()
            assert computed == (int(week[slot]), int(week[slot])), (week, slot)
        assert conn.execute(f"SELECT {_hour_set('d.h', '-1')} FROM (SELECT {row}) d"
                            ).fetchone() == (0,)
