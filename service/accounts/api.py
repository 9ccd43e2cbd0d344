"""Sign-in: username and password for a bearer token; who am I; sign out. User management:
admins add, change and deactivate users and link partners to organizations."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from service.accounts import security
from service.accounts import service as accounts
from service.accounts.schemas import (
    AgencyPublic,
    OrganizationLinkCreate,
    Role,
    TokenRequest,
    TokenResponse,
    UserCreate,
    UserDetail,
    UserPage,
    UserPublic,
    UserUpdate,
)
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


# --- user management: admins; a supervisor reads their agency's users --------------------

users_router = APIRouter(prefix="/api/v1", tags=["users"])
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@users_router.get("/users", response_model=UserPage, summary="List users")
def list_users(
    user: CurrentUser,
    session: SessionDep,
    role: Annotated[Role | None, Query(description="Only this role.")] = None,
    agency_id: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only this "
                                           "agency's staff (supervisors: their own).")] = None,
    is_active: Annotated[bool | None, Query(description="Only active (or deactivated) "
                                                        "users.")] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=200)] = 50,
) -> UserPage:
    """Admins: every user; supervisors: their agency's staff (read only)."""
    total, rows = accounts.list_users(session, actor=user, role=role, agency_id=agency_id,
                                      is_active=is_active, page=page, per_page=per_page)
    return UserPage(total=total, page=page, per_page=per_page,
                    items=[UserDetail(**r) for r in rows])


@users_router.post("/users", response_model=UserDetail, status_code=201, summary="Add a user")
def create_user(body: UserCreate, user: CurrentUser, session: SessionDep) -> UserDetail:
    """A new account; the password must follow the policy (the answer names the field
    otherwise). Audited, without the password."""
    created = accounts.create_user(
        session, actor=user, username=body.username, password=body.password, role=body.role,
        agency_name=body.agency, organization_ids=body.organization_ids,
        location_ids=body.location_ids, email=body.email)
    return UserDetail(**accounts.get_user(session, actor=user, user_id=created["id"]))


@users_router.get("/users/{user_id}", response_model=UserDetail, summary="Read a user")
def get_user(user_id: UserId, user: CurrentUser, session: SessionDep) -> UserDetail:
    """Admins: any user; supervisors: their agency's."""
    return UserDetail(**accounts.get_user(session, actor=user, user_id=user_id))


@users_router.patch("/users/{user_id}", response_model=UserDetail, summary="Change a user")
def update_user(user_id: UserId, body: UserUpdate, user: CurrentUser,
                session: SessionDep) -> UserDetail:
    """Activate or deactivate, change the role, reset the password, lift a lockout.
    Deactivating and a new password end every session of the user. Audited (never the
    password)."""
    return UserDetail(**accounts.update_user(
        session, actor=user, user_id=user_id, is_active=body.is_active, role=body.role,
        agency_name=body.agency, organization_ids=body.organization_ids,
        password=body.password, unlock=body.unlock))


@users_router.post("/users/{user_id}/organizations", response_model=UserDetail,
                   summary="Link a partner to an organization")
def link_organization(user_id: UserId, body: OrganizationLinkCreate, user: CurrentUser,
                      session: SessionDep) -> UserDetail:
    """The partner answers the organization's referrals (only `location_ids`' when given);
    linking again replaces the sites."""
    return UserDetail(**accounts.link_organization(
        session, actor=user, user_id=user_id, organization_id=body.organization_id,
        location_ids=body.location_ids))


@users_router.delete("/users/{user_id}/organizations/{organization_id}",
                     response_model=UserDetail, summary="Unlink a partner from an organization")
def unlink_organization(user_id: UserId,
                        organization_id: Annotated[str, Path(min_length=1, max_length=36)],
                        user: CurrentUser, session: SessionDep) -> UserDetail:
    """The partner no longer sees the organization's referrals (never their last one)."""
    return UserDetail(**accounts.unlink_organization(
        session, actor=user, user_id=user_id, organization_id=organization_id))


@users_router.get("/agencies", response_model=list[AgencyPublic], summary="List agencies")
def list_agencies(user: CurrentUser, session: SessionDep) -> list[AgencyPublic]:
    """Every agency, by name, with its number of active users."""
    return [AgencyPublic(**r) for r in accounts.list_agencies(session)]
