"""Signing in and out of the web app: signed session cookies, CSRF on every form, session
expiry, no open redirect after sign-in, flash messages."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from service.accounts.tables import api_token, app_user
from service.config import Settings
from service.db import Database
from service.pages.session import SESSION_COOKIE, safe_next
from tests.service.accounts.helpers import PASSWORD, an_organization, create_user
from tests.service.pages.helpers import csrf_from, web_client, web_sign_in


@pytest.fixture
def web(db: Database, settings: Settings, tmp_path: Path) -> Iterator[TestClient]:
    create_user(db, username="casey", role="case_manager")
    create_user(db, username="pat", role="partner", organizations=(an_organization(db, tmp_path),))
    with web_client(settings) as http:
        yield http


def _set_cookie(response, name: str) -> str:  # noqa: ANN001
    return next(v for v in response.headers.get_list("set-cookie") if v.startswith(name + "="))


def _cookie(value: str) -> dict[str, str]:
    return {"cookie": f"{SESSION_COOKIE}={value}"}


def test_signing_in_sets_a_safe_cookie_and_lands_on_the_roles_home(web: TestClient) -> None:
    token = csrf_from(web, "/login")
    response = web.post("/login", data={"username": "casey", "password": PASSWORD,
                                        "csrf_token": token})
    assert response.status_code == 303 and response.headers["location"] == "/dashboard"
    cookie = _set_cookie(response, SESSION_COOKIE).lower()
    assert "httponly" in cookie and "secure" in cookie and "samesite=lax" in cookie
    assert PASSWORD.lower() not in cookie
    home = web.get("/")
    assert "Signed in as <strong>casey</strong>" in home.text
    assert web.get("/api/v1/auth/me").json()["username"] == "casey"  # the cookie works for the API


def test_a_partner_lands_on_the_partner_portal(web: TestClient) -> None:
    assert web_sign_in(web, "pat") == "/partner"


def test_sign_in_needs_the_forms_csrf_token(web: TestClient) -> None:
    web.get("/login")
    refused = web.post("/login", data={"username": "casey", "password": PASSWORD})
    assert refused.status_code == 403 and "expired or came from another site" in refused.text
    forged = web.post("/login", data={"username": "casey", "password": PASSWORD,
                                      "csrf_token": "x" * 43})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in web.cookies


def test_a_wrong_password_says_nothing_about_why(web: TestClient) -> None:
    for username in ("casey", "nobody"):
        response = web.post("/login", data={"username": username, "password": "wrong password",
                                            "csrf_token": csrf_from(web, "/login")})
        assert response.status_code == 401
        assert "Those credentials were not accepted" in response.text
        assert f'value="{username}"' in response.text  # the username is kept in the form
    assert SESSION_COOKIE not in web.cookies


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/",
                                    "/\\evil.example", "javascript:alert(1)",
                                    "/%0d%0aSet-Cookie:x=1", "http:/evil.example"])
def test_no_open_redirect_after_sign_in(web: TestClient, target: str) -> None:
    assert web_sign_in(web, "casey", next_url=target) in ("/dashboard", target) and not \
        web_sign_in(web, "casey", next_url=target).startswith(("//", "http", "javascript",
                                                                "/\\"))


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/services/abc?q=food&near=20001", "/") == "/services/abc?q=food&near=20001"
    assert safe_next("//evil.example", "/home") == "/home"
    assert safe_next("/x:y", "/home") == "/home"


def test_a_page_asks_to_sign_in_and_comes_back(web: TestClient) -> None:
    response = web.post("/logout", data={"csrf_token": csrf_from(web, "/login")})
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Flogout"


def test_api_writes_on_the_cookie_need_the_csrf_header(web: TestClient) -> None:
    web_sign_in(web, "casey")
    assert web.post("/api/v1/auth/logout").status_code == 403
    token = csrf_from(web, "/")
    assert web.post("/api/v1/auth/logout", headers={"x-csrf-token": token}).status_code == 204
    assert web.get("/api/v1/auth/me").status_code == 401


def test_signing_out_ends_the_session_and_says_so(web: TestClient) -> None:
    web_sign_in(web, "casey")
    stolen = web.cookies[SESSION_COOKIE]
    response = web.post("/logout", data={"csrf_token": csrf_from(web, "/")})
    assert response.status_code == 303 and response.headers["location"] == "/login"
    shown = web.get("/login")
    assert "You are signed out." in shown.text
    assert "You are signed out." not in web.get("/login").text  # shown once
    web.cookies.clear()
    assert web.get("/api/v1/auth/me", headers=_cookie(stolen)).status_code == 401


def test_a_tampered_cookie_is_no_session(web: TestClient) -> None:
    web_sign_in(web, "casey")
    value = web.cookies[SESSION_COOKIE]
    web.cookies.clear()
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert web.get("/api/v1/auth/me", headers=_cookie(value)).status_code == 200
    assert web.get("/api/v1/auth/me", headers=_cookie(tampered)).status_code == 401
    raw_token_only = value.rpartition(".")[0]
    assert web.get("/api/v1/auth/me", headers=_cookie(raw_token_only)).status_code == 401


def test_an_idle_session_expires(db: Database, web: TestClient, settings: Settings) -> None:
    web_sign_in(web, "casey")
    assert web.get("/api/v1/auth/me").status_code == 200
    idle = datetime.now(UTC) - timedelta(minutes=settings.session_idle_minutes + 1)
    with db.session(write=True) as session:
        session.execute(update(api_token).values(last_used_at=idle, created_at=idle))
    assert web.get("/api/v1/auth/me").status_code == 401


def test_a_session_lasts_at_most_the_configured_hours(db: Database, web: TestClient,
                                                     settings: Settings) -> None:
    web_sign_in(web, "casey")
    with db.session() as session:
        token = session.execute(api_token.select()).mappings().one()
    lifetime = token["expires_at"] - token["created_at"]
    assert lifetime <= timedelta(hours=settings.session_max_hours, minutes=1)


def test_a_deactivated_user_loses_the_session(db: Database, web: TestClient) -> None:
    web_sign_in(web, "casey")
    with db.session(write=True) as session:
        session.execute(update(app_user).values(is_active=False))
    assert web.get("/api/v1/auth/me").status_code == 401
