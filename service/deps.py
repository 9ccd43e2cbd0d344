"""Named dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.accounts import service as accounts
from service.accounts.service import Principal
from service.config import Settings
from service.db import Database
from service.errors import Unauthorized

# The dependencies that only read app state are `async`: FastAPI runs a sync dependency in the
# threadpool, which would cost every request a thread hop (and a GIL hand-over) apiece.


async def get_db(request: Request) -> Database:
    """The app's database (built in the lifespan)."""
    return request.app.state.db


async def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request: committed when the handler returns, rolled back if it raises."""
    db: Database = request.app.state.db
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    with db.session(write=write) as session:
        yield session


def get_write_session(request: Request) -> Iterator[Session]:
    """A session that takes the write lock at once, for GET routes that write (an audited
    read)."""
    db: Database = request.app.state.db
    with db.session(write=True) as session:
        yield session


def client_ip(request: Request) -> str | None:
    """The address the request came from (as the server saw it; no proxy headers trusted)."""
    return request.client.host if request.client else None


def authenticate(request: Request) -> Principal | None:
    """The user behind the request's bearer token (or, without one, the web session cookie),
    or None (no, unknown, expired or revoked token). Looked up in its own short transaction;
    `last_used_at` is written at most every few minutes, in its own write transaction."""
    if hasattr(request.state, "principal"):
        return request.state.principal
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        db: Database = request.app.state.db
        with db.session() as session:
            found = accounts.principal_for_token(session, token=token.strip(),
                                                 client_ip=client_ip(request))
        if found is not None:
            principal, stale = found
            if stale:
                with db.session(write=True) as session:
                    accounts.touch_token(session, token_id=principal.token_id)
    if principal is None and scheme.lower() != "bearer":
        from service.pages.session import principal_from_cookie  # the web app's signed cookie
        principal = principal_from_cookie(request, client_ip=client_ip(request))
    request.state.principal = principal
    return principal


_bearer = HTTPBearer(auto_error=False, description="A token from POST /api/v1/auth/token.")


def get_current_user(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The signed-in user, or 401."""
    principal = authenticate(request)
    if principal is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <token> (a valid, "
                           "unexpired token)", field="authorization")
    return principal


DbDep = Annotated[Database, Depends(get_db)]
# scope="function": the transaction commits when the route returns and BEFORE the answer is
# sent, so an acknowledged write is durable and the client's next request sees it (FastAPI's
# default, "request", would commit after the response has gone out).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
WriteSessionDep = Annotated[Session, Depends(get_write_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
CurrentUser = Annotated[Principal, Depends(get_current_user)]
