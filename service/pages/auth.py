"""Signing in and out of the web app.

The sign-in form posts username and password (with its CSRF token); good credentials start a
web session (see `service.pages.session`) and go on to the page asked for, or the role's home.
Failures get one message whatever went wrong, counted against the same per-address limit and
account lockout as the API's `POST /api/v1/auth/token`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from service.accounts import security
from service.accounts import service as accounts
from service.accounts.api import _limiter
from service.deps import CurrentUser, SessionDep, client_ip
from service.pages.session import (
    SESSION_TOKEN_NAME,
    end_session,
    flash,
    safe_next,
    start_session,
)
from service.web import templates

router = APIRouter(include_in_schema=False)

# Where each role lands after signing in.
ROLE_HOME = {"case_manager": "/dashboard", "supervisor": "/dashboard", "partner": "/partner",
             "admin": "/admin"}


def _form(request: Request, *, username: str = "", next_url: str = "", error: str = "",
          status: int = 200) -> HTMLResponse:
    return templates.TemplateResponse(request, "login.html", {
        "username": username, "next": next_url, "error": error}, status_code=status)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "") -> HTMLResponse:  # noqa: A002
    """The sign-in form."""
    return _form(request, next_url=safe_next(next, ""))


@router.post("/login", response_class=HTMLResponse)
def login_submit(request: Request, session: SessionDep,
                 username: Annotated[str, Form(max_length=150)] = "",
                 password: Annotated[str, Form(max_length=1000)] = "",
                 next: Annotated[str, Form(max_length=2000)] = "") -> Response:  # noqa: A002
    """Check the credentials; start a session and go on, or show the form again."""
    target = safe_next(next, "")
    if not username.strip() or not password:
        return _form(request, username=username, next_url=target, status=422,
                     error="Enter your username and password.")
    ip = client_ip(request)
    if not _limiter(request).allow(ip or "unknown"):
        return _form(request, username=username, next_url=target, status=429,
                     error="Too many sign-in attempts from this address. Wait a minute and "
                           "try again.")
    result = accounts.login(session, username=username, password=password,
                            token_name=SESSION_TOKEN_NAME, client_ip=ip)
    if result.token is None:
        # The failure count and its audit event are committed with the session.
        return _form(request, username=username, next_url=target, status=401,
                     error=security.LOGIN_REFUSED)
    session.commit()  # the token must exist before start_session shortens it
    response = RedirectResponse(target or ROLE_HOME[result.user["role"]], status_code=303)
    start_session(response, request, token=result.token)
    return response


@router.post("/logout")
def logout(request: Request, user: CurrentUser, session: SessionDep) -> Response:
    """End this browser's session: the token stops working and the cookie is dropped."""
    accounts.revoke_token(session, actor=user)
    response = RedirectResponse("/login", status_code=303)
    end_session(response, request)
    flash(response, request, "You are signed out.")
    return response
