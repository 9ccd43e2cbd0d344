"""Users, agencies, sign-in and bearer tokens. Functions flush; the caller owns the commit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
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
from service.clients.tables import client
from service.directory.tables import location, organization
from service.errors import BadRequest, Conflict, Forbidden, NotFound

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
                location_ids: Sequence[str] = (), email: str | None = None) -> dict[str, Any]:
    """A new user: checks the role's links and the password policy; audited (the email
    address redacted)."""
    username = normalize_username(username)
    email = email.strip() if email and email.strip() else None
    if email is not None and not _looks_like_email(email):
        raise BadRequest("the email address must look like name@example.org", field="email")
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
        agency_id=agency_id, email=email, is_active=True, failed_logins=0, created_at=now,
    ).returning(app_user.c.id)).scalar_one()
    for org in orgs:
        session.execute(insert(user_organization).values(
            user_id=user_id, organization_id=org, location_ids=sites.get(org)))
    created = {"id": user_id, "username": username, "role": role, "agency_id": agency_id,
               "organization_ids": orgs, "is_active": True}
    audit.record(session, actor=actor, action="user.create", entity_type="app_user",
                 entity_id=user_id, changes=audit.diff(
                     None, {**created, "email": email},
                     fields=("username", "role", "agency_id", "organization_ids", "email"),
                     personal=("email",)))
    return created


def _looks_like_email(address: str) -> bool:
    """One @ between a local part and a dotted domain, no spaces, at most 320 characters."""
    local, at, domain = address.rpartition("@")
    return (bool(at) and bool(local) and "." in domain.strip(".") and len(address) <= 320
            and not any(ch.isspace() or ch in "<>,;" for ch in address))


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


# --- user management (admins; supervisors read their agency's users) -----------------------

USER_FIELDS = ("username", "role", "agency_id", "organization_ids", "is_active", "email",
               "locked_until")


def _links(session: Session, *, user_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Each user's organization links (with the organization's name), by organization id."""
    links: dict[int, list[dict[str, Any]]] = {i: [] for i in user_ids}
    if not user_ids:
        return links
    rows = session.execute(
        select(user_organization.c.user_id, user_organization.c.organization_id,
               user_organization.c.location_ids, organization.c.name.label("organization_name"))
        .join(organization, organization.c.id == user_organization.c.organization_id)
        .where(user_organization.c.user_id.in_(list(user_ids)))
        .order_by(user_organization.c.organization_id)).mappings().all()
    for row in rows:
        links[row["user_id"]].append({"organization_id": row["organization_id"],
                                      "organization_name": row["organization_name"],
                                      "location_ids": row["location_ids"]})
    return links


def _user_query():  # noqa: ANN202
    return (select(app_user.c.id, app_user.c.username, app_user.c.role, app_user.c.agency_id,
                   agency.c.name.label("agency_name"), app_user.c.email, app_user.c.is_active,
                   app_user.c.locked_until, app_user.c.created_at)
            .outerjoin(agency, agency.c.id == app_user.c.agency_id))


def _detail(row: Any, links: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    user = dict(row)
    user["is_locked"] = user["locked_until"] is not None and user["locked_until"] > now
    return {**user, "organizations": links,
            "organization_ids": [link["organization_id"] for link in links]}


def _require_admin(actor: Principal) -> None:
    if actor.role != "admin":
        raise Forbidden("only admins manage users", field="role")


def _scoped_user(session: Session, *, actor: Principal, user_id: int) -> dict[str, Any]:
    """A user as the management API shows them; NotFound unless the actor may see them
    (admins: everyone; a supervisor: their agency's users)."""
    query = _user_query().where(app_user.c.id == user_id)
    if actor.role != "admin":
        query = query.where(app_user.c.agency_id == actor.agency_id)
    row = session.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no user {user_id}", field="user_id")
    return _detail(row, _links(session, user_ids=[user_id])[user_id], datetime.now(UTC))


def list_users(session: Session, *, actor: Principal, role: str | None = None,
               agency_id: int | None = None, is_active: bool | None = None, page: int = 1,
               per_page: int = 50) -> tuple[int, list[dict[str, Any]]]:
    """A page of users by username, filtered; a supervisor sees only their agency's."""
    if actor.role != "admin":
        if actor.role != "supervisor" or actor.agency_id is None:
            raise Forbidden("only admins and supervisors list users", field="role")
        if agency_id is not None and agency_id != actor.agency_id:
            raise NotFound(f"no agency {agency_id}", field="agency_id")
        agency_id = actor.agency_id
    conditions = []
    if role is not None:
        conditions.append(app_user.c.role == role)
    if agency_id is not None:
        conditions.append(app_user.c.agency_id == agency_id)
    if is_active is not None:
        conditions.append(app_user.c.is_active == is_active)
    total = session.execute(select(func.count()).select_from(app_user).where(*conditions)
                            ).scalar_one()
    rows = session.execute(_user_query().where(*conditions).order_by(app_user.c.username)
                           .limit(per_page).offset((page - 1) * per_page)).mappings().all()
    links = _links(session, user_ids=[r["id"] for r in rows])
    now = datetime.now(UTC)
    return total, [_detail(r, links[r["id"]], now) for r in rows]


def get_user(session: Session, *, actor: Principal, user_id: int) -> dict[str, Any]:
    """One user (admins: anyone; a supervisor: their agency's)."""
    return _scoped_user(session, actor=actor, user_id=user_id)


def _revoke_all_tokens(session: Session, *, user_id: int, now: datetime) -> int:
    """Every live token (API and web session) of the user stops working; how many."""
    result = session.execute(update(api_token).where(api_token.c.user_id == user_id)
                             .where(api_token.c.revoked_at.is_(None)).values(revoked_at=now))
    return result.rowcount or 0


def _check_organizations(session: Session, *, organization_ids: Sequence[str],
                         field: str) -> list[str]:
    orgs = list(dict.fromkeys(organization_ids))
    known = set(session.execute(select(organization.c.id)
                                .where(organization.c.id.in_(orgs))).scalars()) if orgs else set()
    missing = [o for o in orgs if o not in known]
    if missing:
        raise BadRequest(f"no organization with id {missing[0]}", field=field)
    return orgs


def _caseload_size(session: Session, *, user_id: int) -> int:
    return session.execute(select(func.count()).select_from(client)
                           .where(client.c.case_manager_id == user_id)).scalar_one()


def update_user(session: Session, *, actor: Principal, user_id: int,
                is_active: bool | None = None, role: str | None = None,
                agency_name: str | None = None, organization_ids: Sequence[str] | None = None,
                password: str | None = None, unlock: bool = False) -> dict[str, Any]:
    """Activate or deactivate, change the role (with its agency or organizations), reset the
    password, lift a lockout. Deactivating or a new password ends every session of the user.
    Audited with the diff (never the password)."""
    _require_admin(actor)
    before = _scoped_user(session, actor=actor, user_id=user_id)
    if user_id == actor.user_id and (is_active is False or (role and role != before["role"])):
        raise BadRequest("you cannot deactivate yourself or change your own role: ask another "
                         "admin", field="is_active" if is_active is False else "role")
    new_role = role or before["role"]
    if new_role not in ROLES:
        raise BadRequest(f"the role must be one of {', '.join(ROLES)}", field="role")
    values: dict[str, Any] = {}
    if new_role in AGENCY_ROLES:
        agency_id = (get_or_create_agency(session, name=agency_name)[0] if agency_name
                     else before["agency_id"])
        if agency_id is None:
            raise BadRequest(f"a {new_role} belongs to an agency: give its name",
                             field="agency")
    else:
        if agency_name:
            raise BadRequest(f"a {new_role} does not belong to an agency", field="agency")
        agency_id = None
    links = before["organization_ids"]
    if organization_ids is not None:
        if new_role != "partner":
            raise BadRequest("only partners are linked to organizations",
                             field="organization_ids")
        links = _check_organizations(session, organization_ids=organization_ids,
                                     field="organization_ids")
    elif new_role != "partner":
        links = []
    if new_role == "partner" and not links:
        raise BadRequest("a partner speaks for at least one organization: give "
                         "organization_ids", field="organization_ids")
    if new_role not in AGENCY_ROLES or agency_id != before["agency_id"]:
        held = _caseload_size(session, user_id=user_id)
        if held:
            raise Conflict(f"this user holds {held} clients of their agency: a supervisor "
                           "must reassign them first", field="role" if role else "agency")
    if new_role != before["role"]:
        values["role"] = new_role
    if agency_id != before["agency_id"]:
        values["agency_id"] = agency_id
    if is_active is not None and is_active != before["is_active"]:
        values["is_active"] = is_active
    if unlock:
        values.update(failed_logins=0, locked_until=None)
    if password is not None:
        security.check_password_policy(password, username=before["username"])
        values.update(password_hash=security.hash_password(password), failed_logins=0,
                      locked_until=None)

    now = datetime.now(UTC)
    if values:
        session.execute(update(app_user).where(app_user.c.id == user_id).values(**values))
    removed = [o for o in before["organization_ids"] if o not in links]
    if removed:
        session.execute(delete(user_organization).where(user_organization.c.user_id == user_id)
                        .where(user_organization.c.organization_id.in_(removed)))
    for org in links:
        if org not in before["organization_ids"]:  # a new link: every site of it
            session.execute(insert(user_organization).values(
                user_id=user_id, organization_id=org, location_ids=None))
    revoked = 0
    if values.get("is_active") is False or password is not None:
        revoked = _revoke_all_tokens(session, user_id=user_id, now=now)
    after = _scoped_user(session, actor=actor, user_id=user_id)
    changes = audit.diff(before, after, fields=USER_FIELDS, personal=("email",))
    if password is not None:
        changes["password"] = {"old": audit.REDACTED, "new": audit.REDACTED}
    if revoked:
        changes["tokens_revoked"] = {"old": None, "new": revoked}
    if changes:
        audit.record(session, actor=actor, action="user.update", entity_type="app_user",
                     entity_id=user_id, changes=changes)
    return after


def link_organization(session: Session, *, actor: Principal, user_id: int,
                      organization_id: str, location_ids: Sequence[str] | None = None
                      ) -> dict[str, Any]:
    """A partner speaks for an organization (all its sites, or only `location_ids`); linking
    again replaces the sites. Audited."""
    _require_admin(actor)
    user = _scoped_user(session, actor=actor, user_id=user_id)
    if user["role"] != "partner":
        raise BadRequest("only partners are linked to organizations", field="user_id")
    _check_organizations(session, organization_ids=[organization_id], field="organization_id")
    sites = list(dict.fromkeys(location_ids)) if location_ids is not None else None
    if sites:
        found = set(session.execute(select(location.c.id)
                                    .where(location.c.id.in_(sites))
                                    .where(location.c.organization_id == organization_id)
                                    ).scalars())
        missing = [s for s in sites if s not in found]
        if missing:
            raise BadRequest(f"no location {missing[0]} in organization {organization_id}",
                             field="location_ids")
    existing = next((link for link in user["organizations"]
                     if link["organization_id"] == organization_id), None)
    if existing is None:
        session.execute(insert(user_organization).values(
            user_id=user_id, organization_id=organization_id, location_ids=sites))
    elif existing["location_ids"] != sites:
        session.execute(update(user_organization)
                        .where(user_organization.c.user_id == user_id)
                        .where(user_organization.c.organization_id == organization_id)
                        .values(location_ids=sites))
    else:
        return user
    audit.record(session, actor=actor, action="user.link_organization", entity_type="app_user",
                 entity_id=user_id, changes={
                     "organization_id": {"old": None, "new": organization_id},
                     "location_ids": {"old": existing and existing["location_ids"],
                                      "new": sites}})
    return _scoped_user(session, actor=actor, user_id=user_id)


def unlink_organization(session: Session, *, actor: Principal, user_id: int,
                        organization_id: str) -> dict[str, Any]:
    """The partner no longer speaks for the organization (never their last one: deactivate
    the user instead). Audited."""
    _require_admin(actor)
    user = _scoped_user(session, actor=actor, user_id=user_id)
    if organization_id not in user["organization_ids"]:
        raise NotFound(f"user {user_id} is not linked to organization {organization_id}",
                       field="organization_id")
    if len(user["organization_ids"]) == 1:
        raise Conflict("a partner speaks for at least one organization: link another first, "
                       "or deactivate the user", field="organization_id")
    session.execute(delete(user_organization).where(user_organization.c.user_id == user_id)
                    .where(user_organization.c.organization_id == organization_id))
    audit.record(session, actor=actor, action="user.unlink_organization",
                 entity_type="app_user", entity_id=user_id,
                 changes={"organization_id": {"old": organization_id, "new": None}})
    return _scoped_user(session, actor=actor, user_id=user_id)


def list_agencies(session: Session) -> list[dict[str, Any]]:
    """Every agency by name, with how many active users it has."""
    active = (select(app_user.c.agency_id, func.count().label("active_users"))
              .where(app_user.c.is_active).group_by(app_user.c.agency_id).subquery())
    rows = session.execute(
        select(agency.c.id, agency.c.name, agency.c.created_at,
               func.coalesce(active.c.active_users, 0).label("active_users"))
        .outerjoin(active, active.c.agency_id == agency.c.id)
        .order_by(agency.c.name)).mappings().all()
    return [dict(r) for r in rows]
