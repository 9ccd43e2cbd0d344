"""Sign-in: username and password for a bearer token; who am I; sign out."""

from __future__ import annotations

import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from service.accounts import security
from service.accounts import service as accounts
from service.accounts.schemas import TokenRequest, TokenResponse, UserPublic
from service.deps import CurrentUser, SessionDep, client_ip
from service.errors import AppError, error_body

router = APIRouter(prefix="/api/v1/auth", tags=["accounts"])
_limiter_lock = threading.Lock()


class TooManyAttempts(AppError):
    status, code = 429, "too_many_requests"


def _limiter(request: Request) -> security.AttemptLimiter:
    state = request.app.state
    with _limiter_lock:
        if getattr(state, "login_limiter", None) is None:
            state.login_limiter = security.AttemptLimiter()
    return state.login_limiter


@router.post("/token", response_model=TokenResponse, summary="Sign in for a bearer token",
             responses={401: {"description": "Credentials not accepted (one answer for every "
                                             "reason)"},
                        429: {"description": "Too many attempts from this address"}})
def create_token(body: TokenRequest, request: Request, session: SessionDep):  # noqa: ANN201
    """A bearer token for `Authorization: Bearer ...`, valid 12 hours. Five failures in a row
    lock the account for 15 minutes; the answer never says which part was wrong."""
    ip = client_ip(request)
    if not _limiter(request).allow(ip or "unknown"):
        raise TooManyAttempts("too many sign-in attempts from this address: wait a minute",
                              field="username")
    result = accounts.login(session, username=body.username, password=body.password,
                            token_name=body.name, client_ip=ip)
    if result.token is None:
        # Returned, not raised: the failure count and its audit event must be committed.
        return JSONResponse(error_body(401, "unauthorized", security.LOGIN_REFUSED, "password"),
                            status_code=401)
    return TokenResponse(access_token=result.token, expires_at=result.expires_at,
                         user=UserPublic(**result.user))


@router.get("/me", response_model=UserPublic, summary="Who the token belongs to")
def me(user: CurrentUser, session: SessionDep) -> UserPublic:
    """The signed-in user."""
    return UserPublic(**accounts.public_user(session, user_id=user.user_id))


@router.post("/logout", status_code=204, summary="Revoke this token")
def logout(user: CurrentUser, session: SessionDep) -> None:
    """The token used for this request stops working."""
    accounts.revoke_token(session, actor=user)
