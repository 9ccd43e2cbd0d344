"""A browser-like client for the pages: HTTPS (so Secure cookies travel), HTML accepted, and
signing in through the real form with its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from tests.service.accounts.helpers import PASSWORD

HTML = {"accept": "text/html"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def web_client(settings: Settings) -> Iterator[TestClient]:
    """A client that keeps cookies like a browser on https://testserver."""
    with TestClient(create_app(settings), base_url="https://testserver", headers=HTML,
                    follow_redirects=False) as http:
        yield http


def csrf_from(http: TestClient, path: str) -> str:
    """The CSRF token a page's forms carry."""
    page = http.get(path)
    assert page.status_code == 200, page.text
    found = _CSRF.search(page.text)
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def web_sign_in(http: TestClient, username: str, password: str = PASSWORD,
                next_url: str = "") -> str:
    """Sign in through the form; the page it sends the browser to."""
    response = http.post("/login", data={"username": username, "password": password,
                                         "next": next_url,
                                         "csrf_token": csrf_from(http, "/login")})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def form_post(http: TestClient, page: str, action: str, data: dict[str, str]):  # noqa: ANN201
    """Post a form the way a browser does from `page`: with that page's CSRF token."""
    return http.post(action, data={**data, "csrf_token": csrf_from(http, page)})
