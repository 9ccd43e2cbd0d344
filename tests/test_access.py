"""Every route declares who may call it (service/access.py), and the rules hold."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service import access
from service.app import create_app
from service.config import Settings
from service.db import Database
from tests.service.accounts.helpers import user_headers


@pytest.fixture(scope="module")
def app():  # noqa: ANN201
    return create_app(Settings(database_url="sqlite:///unused.db", environment="test"))


def test_every_route_declares_a_rule(app) -> None:  # noqa: ANN001
    entries = access.app_routes(app)
    assert len(entries) > 20
    undeclared = [e.key for e in entries if access.rule_for(e.key) is None]
    assert undeclared == [], f"declare these in service/access.py RULES: {undeclared}"
    # Only FastAPI routes run `enforce`, so anything else (docs, mounts) must be public.
    unguarded = [e.key for e in entries if not e.is_api_route
                 and not access.rule_for(e.key).is_public]
    assert unguarded == []
    stale = set(access.RULES) - {e.key for e in entries}
    assert stale == set(), f"rules for routes that no longer exist: {stale}"


def test_the_existing_routes_are_public(app) -> None:  # noqa: ANN001
    for key in ("GET /health", "GET /api/v1/services", "GET /api/v1/services/{service_id}",
                "GET /api/v1/search", "POST /api/v1/search", "GET /api/v1/suggest",
                "GET /api/v1/categories", "GET /", "GET /docs", "GET /openapi.json",
                "POST /api/v1/auth/token"):
        assert access.rule_for(key) == access.PUBLIC, key


def test_client_data_is_never_public_nor_for_partners() -> None:
    for key, rule in access.RULES.items():
        if "/clients" in key or "/audit" in key:
            assert not rule.is_public and access.PARTNER not in rule.roles, key


def test_rules_are_well_formed() -> None:
    with pytest.raises(ValueError):
        access.Requires(frozenset({"admin"}), "public")
    with pytest.raises(ValueError):
        access.Requires(frozenset(), "agency")
    with pytest.raises(ValueError):
        access.requires("janitor", scope="all")


def test_a_route_without_a_rule_is_refused(settings: Settings) -> None:
    app = create_app(settings)

    @app.get("/api/v1/forgotten")
    def forgotten() -> dict:
        return {"secret": True}

    with TestClient(app) as http:
        response = http.get("/api/v1/forgotten")
    assert response.status_code == 403 and "service/access.py" in response.text


def test_public_routes_need_no_token_and_ignore_bad_ones(client) -> None:  # noqa: ANN001
    for headers in ({}, {"Authorization": "Bearer sp_not-a-token"}):
        assert client.get("/health", headers=headers).status_code == 200
        assert client.get("/api/v1/services", headers=headers).status_code == 200
        assert client.get("/openapi.json", headers=headers).status_code == 200


def test_roles_are_checked(db: Database, client) -> None:  # noqa: ANN001
    staff = user_headers(db, client, "casey", role="case_manager")
    admin = user_headers(db, client, "ada", role="admin")
    assert client.get("/api/v1/audit").status_code == 401
    refused = client.get("/api/v1/audit", headers=staff)
    assert refused.status_code == 403 and refused.json()["error"]["field"] == "role"
    assert client.get("/api/v1/audit", headers=admin).status_code == 200
    for headers in (staff, admin):
        assert client.get("/api/v1/auth/me", headers=headers).status_code == 200
