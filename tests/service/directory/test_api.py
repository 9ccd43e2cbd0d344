"""The directory API over real HTTP through the app, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from indexer.pipeline import load
from service.db import Database
from service.directory.tables import metadata
from tests.factories import directory_package


@pytest.fixture
def loaded(db: Database, tmp_path: Path) -> Database:
    load(db, directory_package(12).write(tmp_path / "pkg"), source="city")
    return db


def test_health(client) -> None:  # noqa: ANN001
    assert client.get("/health").json() == {"status": "ok"}


def test_list_filter_and_page_services(loaded: Database, client) -> None:  # noqa: ANN001
    body = client.get("/api/v1/services", params={"per_page": 5}).json()
    assert body["total"] == 12 and len(body["items"]) == 5
    assert body["items"][0]["name"] == "Food Pantry 0"
    assert body["items"][0]["source"] == "city" and body["items"][0]["source_id"] == "svc0"
    assert body["items"][0]["organization_name"] == "Organization 0"
    pages = [client.get("/api/v1/services", params={"per_page": 5, "page": p}).json()
             for p in (1, 2, 3)]
    ids = [i["id"] for page in pages for i in page["items"]]
    assert len(ids) == len(set(ids)) == 12
    named = client.get("/api/v1/services", params={"name": "pantry 1"}).json()
    assert sorted(i["source_id"] for i in named["items"]) == ["svc1", "svc10", "svc11"]
    by_source_id = client.get("/api/v1/services", params={"source": "city",
                                                          "source_id": "svc3"}).json()
    assert [i["name"] for i in by_source_id["items"]] == ["Food Pantry 3"]
    assert client.get("/api/v1/services", params={"source": "other"}).json()["total"] == 0


def test_read_a_full_listing(loaded: Database, client) -> None:  # noqa: ANN001
    first = client.get("/api/v1/services", params={"source_id": "svc1"}).json()["items"][0]
    body = client.get(f"/api/v1/services/{first['id']}").json()
    service = body["service"]
    assert body["source"] == "city" and body["source_id"] == "svc1"
    assert service["organization"]["name"] == "Organization 1"
    assert service["phones"][0]["number"] == "202-555-0100"
    assert service["schedules"][0]["byday"] == "MO,WE,FR"
    assert service["x_eligibility"]["min_age"] == 18
    site = service["service_at_locations"][0]["location"]
    assert site["addresses"][0]["address_1"] == "101 Main St NW"
    assert site["x_geocode_precision"] == "exact"


@pytest.mark.parametrize(("path", "status", "field"), [
    ("/api/v1/services/not-a-service", 404, "id"),
    ("/api/v1/services?per_page=500", 422, "per_page"),
    ("/api/v1/services?page=0", 422, "page"),
])
def test_errors_name_the_field(client, path: str, status: int, field: str) -> None:  # noqa: ANN001
    response = client.get(path)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["field"] == field and error["status"] == status and error["message"]


def test_html_pages_have_friendly_errors(client) -> None:  # noqa: ANN001
    response = client.get("/no-such-page", headers={"accept": "text/html"})
    assert response.status_code == 404
    assert "We couldn't find that page" in response.text


def test_demo_notice_is_said_plainly(db: Database, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.config import Settings

    settings = Settings(database_url=str(db.url), environment="test", demo_notice=True,
                        geocode_cache_path=tmp_path / "g.sqlite")
    with TestClient(create_app(settings)) as client:
        page = " ".join(client.get("/").text.split())
        assert "Do not use them for real referrals" in page
        assert "Do not use them for real referrals" in client.get("/api/v1/services").json()[
            "notice"]


def test_migrations_match_the_tables(db: Database) -> None:
    """`alembic check` in a test: the migrated schema equals the declared tables."""
    db.migrate()
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={
            "include_name": lambda name, type_, parents: not (
                type_ == "table" and name and ("search_" in name or name.startswith("sqlite_")))})
        assert compare_metadata(context, metadata) == []
