"""Users, agencies, sign-in and bearer tokens. Functions flush; the caller owns the commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from service.accounts import security
from service.accounts.tables import (
    AGENCY_ROLES,
    ROLES,
    agency,
    api_token,
    app_user,
    user_organization,
)
from service.audit import service as audit
from service.audit.service import Actor
from service.directory.tables import location, organization
from service.errors import BadRequest, Conflict

TOKEN_TOUCH_INTERVAL = timedelta(minutes=5)  # how stale `api_token.last_used_at` may get


@dataclass(frozen=True, kw_only=True)
class Principal(Actor):
    """A signed-in user, as every route and service sees them."""

    user_id: int
    role: str
    username: str
    agency_id: int | None = None
    organization_ids: tuple[str, ...] = ()
    token_id: int | None = None


@dataclass(frozen=True)
class LoginResult:
    """A token (shown once) and who it is for, or a refusal (token None)."""

    token: str | None
    user: dict[str, Any] | None = None
    expires_at: datetime | None = None


def normalize_username(username: str) -> str:
    """Usernames compare case-insensitively and without surrounding spaces."""
    return username.strip().casefold()


def get_or_create_agency(session: Session, *, name: str) -> tuple[int, bool]:
    """The agency's id, creating it if new; and whether it was created."""
    name = " ".join(name.split())
    if not name:
        raise BadRequest("the agency needs a name", field="agency")
    found = session.execute(select(agency.c.id).where(agency.c.name == name)).scalar()
    if found is not None:
        return found, False
    new_id = session.execute(insert(agency).values(name=name, created_at=datetime.now(UTC))
                             .returning(agency.c.id)).scalar_one()
    return new_id, True


def create_user(session: Session, *, actor: Actor, username: str, password: str, role: str,
                agency_name: str | None = None, organization_ids: Sequence[str] = (),
                location_ids: Sequence[str] = ()) -> dict[str, Any]:
    """A new user: checks the role's links and the password policy; audited."""
    username = normalize_username(username)
    if not username or len(username) > 150 or any(ch.isspace() for ch in username):
        raise BadRequest("the username must be 1 to 150 characters without spaces",
                         field="username")
    if role not in ROLES:
        raise BadRequest(f"the role must be one of {', '.join(ROLES)}", field="role")
    security.check_password_policy(password, username=username)
    if role in AGENCY_ROLES and not agency_name:
        raise BadRequest(f"a {role} belongs to an agency: give its name", field="agency")
    if role not in AGENCY_ROLES and agency_name:
        raise BadRequest(f"a {role} does not belong to an agency", field="agency")
    if role == "partner" and not organization_ids:
        raise BadRequest("a partner speaks for at least one organization", field="organization")
    if role != "partner" and (organization_ids or location_ids):
        raise BadRequest("only partners are linked to organizations", field="organization")
    if session.execute(select(app_user.c.id).where(app_user.c.username == username)).first():
        raise Conflict("that username is taken", field="username")

    orgs = list(dict.fromkeys(organization_ids))
    if orgs:
        known = set(session.execute(select(organization.c.id)
                                    .where(organization.c.id.in_(orgs))).scalars())
        missing = [o for o in orgs if o not in known]
        if missing:
            raise BadRequest(f"no organization with id {missing[0]}", field="organization")
    sites: dict[str, list[str]] = {}
    if location_ids:
        rows = session.execute(select(location.c.id, location.c.organization_id)
                               .where(location.c.id.in_(list(location_ids)))).all()
        found = {r.id: r.organization_id for r in rows}
        for loc in location_ids:
            if found.get(loc) not in orgs:
                raise BadRequest(f"no location {loc} in the given organizations",
                                 field="location")
            sites.setdefault(found[loc], []).append(loc)

    agency_id = get_or_create_agency(session, name=agency_name)[0] if agency_name else None
    now = datetime.now(UTC)
    user_id = session.execute(insert(app_user).values(
        username=username, password_hash=security.hash_password(password), role=role,
        agency_id=agency_id, is_active=True, failed_logins=0, created_at=now,
    ).returning(app_user.c.id)).scalar_one()
    for org in orgs:
        session.execute(insert(user_organization).values(
            user_id=user_id, organization_id=org, location_ids=sites.get(org)))
    created = {"id": user_id, "username": username, "role": role, "agency_id": agency_id,
               "organization_ids": orgs, "is_active": True}
    audit.record(session, actor=actor, action="user.create", entity_type="app_user",
                 entity_id=user_id, changes=audit.diff(
                     None, created, fields=("username", "role", "agency_id",
                                            "organization_ids")))
    return created


def login(session: Session, *, username: str, password: str, token_name: str,
          client_ip: str | None, now: datetime | None = None) -> LoginResult:
    """A new token for good credentials; otherwise a refusal that says nothing about why.

    Failures are counted (and audited) in the caller's transaction, so the caller must commit
    a refusal too. `MAX_FAILED_LOGINS` consecutive failures lock the account for `LOCKOUT`.
    """
    now = now or datetime.now(UTC)
    user = session.execute(select(app_user).where(
        app_user.c.username == normalize_username(username))).mappings().first()
    # Always verify, so an unknown user costs the same time as a known one.
    matches = security.verify_password(user["password_hash"] if user else None, password)
    anonymous = Actor(client_ip=client_ip)
    if user is None:
        audit.record(session, actor=anonymous, action="auth.login_failed",
                     entity_type="app_user")
        return LoginResult(None)
    locked = user["locked_until"] is not None and user["locked_until"] > now
    if not user["is_active"] or locked:
        audit.record(session, actor=anonymous, action="auth.login_refused",
                     entity_type="app_user", entity_id=user["id"],
                     changes={"reason": {"old": None,
                                         "new": "locked" if locked else "inactive"}})
        return LoginResult(None)
    if not matches:
        failures = session.execute(
            update(app_user).where(app_user.c.id == user["id"])
            .values(failed_logins=app_user.c.failed_logins + 1)
            .returning(app_user.c.failed_logins)).scalar_one()
        audit.record(session, actor=anonymous, action="auth.login_failed",
                     entity_type="app_user", entity_id=user["id"])
        if failures >= security.MAX_FAILED_LOGINS:
            until = now + security.LOCKOUT
            session.execute(update(app_user).where(app_user.c.id == user["id"])
                            .values(locked_until=until, failed_logins=0))
            audit.record(session, actor=anonymous, action="auth.locked",
                         entity_type="app_user", entity_id=user["id"],
                         changes={"locked_until": {"old": None, "new": until.isoformat()}})
        return LoginResult(None)

    values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
    if security.needs_rehash(user["password_hash"]):
        values["password_hash"] = security.hash_password(password)
    session.execute(update(app_user).where(app_user.c.id == user["id"]).values(**values))
    token = security.new_token()
    expires_at = now + security.TOKEN_LIFETIME
    token_id = session.execute(insert(api_token).values(
        user_id=user["id"], token_hash=security.token_hash(token), name=token_name,
        created_at=now, expires_at=expires_at,
    ).returning(api_token.c.id)).scalar_one()
    audit.record(session, actor=Actor(user_id=user["id"], role=user["role"],
                                      client_ip=client_ip),
                 action="auth.login", entity_type="api_token", entity_id=token_id)
    return LoginResult(token, user=public_user(session, user_id=user["id"]),
                       expires_at=expires_at)


def public_user(session: Session, *, user_id: int) -> dict[str, Any]:
    """A user as the API shows them (never the hash)."""
    row = session.execute(select(app_user.c.id, app_user.c.username, app_user.c.role,
                                 app_user.c.agency_id, app_user.c.is_active)
                          .where(app_user.c.id == user_id)).mappings().one()
    orgs = session.execute(select(user_organization.c.organization_id)
                           .where(user_organization.c.user_id == user_id)
                           .order_by(user_organization.c.organization_id)).scalars().all()
    return {**row, "organization_ids": list(orgs)}


def principal_for_token(session: Session, *, token: str, client_ip: str | None,
                        now: datetime | None = None) -> tuple[Principal, bool] | None:
    """Who a bearer token speaks for, and whether its last use should be written down;
    None for an unknown, expired or revoked token or a deactivated user."""
    now = now or datetime.now(UTC)
    row = session.execute(
        select(api_token.c.id.label("token_id"), api_token.c.last_used_at, app_user.c.id,
               app_user.c.username, app_user.c.role, app_user.c.agency_id)
        .join(app_user, app_user.c.id == api_token.c.user_id)
        .where(api_token.c.token_hash == security.token_hash(token))
        .where(api_token.c.revoked_at.is_(None))
        .where(api_token.c.expires_at > now)
        .where(app_user.c.is_active)).mappings().first()
    if row is None:
        return None
    orgs: tuple[str, ...] = ()
    if row["role"] == "partner":
        orgs = tuple(session.execute(select(user_organization.c.organization_id).where(
            user_organization.c.user_id == row["id"])).scalars())
    principal = Principal(user_id=row["id"], role=row["role"], username=row["username"],
                          agency_id=row["agency_id"], organization_ids=orgs,
                          token_id=row["token_id"], client_ip=client_ip)
    stale = row["last_used_at"] is None or row["last_used_at"] < now - TOKEN_TOUCH_INTERVAL
    return principal, stale


def touch_token(session: Session, *, token_id: int, now: datetime | None = None) -> None:
    """Write down that a token was used just now."""
    session.execute(update(api_token).where(api_token.c.id == token_id)
                    .values(last_used_at=now or datetime.now(UTC)))


def revoke_token(session: Session, *, actor: Principal) -> None:
    """Sign out: the token the actor used stops working now; audited."""
    session.execute(update(api_token).where(api_token.c.id == actor.token_id)
                    .where(api_token.c.revoked_at.is_(None))
                    .values(revoked_at=datetime.now(UTC)))
    audit.record(session, actor=actor, action="auth.logout", entity_type="api_token",
                 entity_id=actor.token_id)
