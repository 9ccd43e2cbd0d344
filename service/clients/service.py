"""Clients of an agency and their consents. Functions flush; the caller owns the commit.

Scope (see `service.access`): staff see their own agency's clients only, and a client of
another agency is "not found" (404), never "forbidden", so its existence does not leak. Admins
read any agency's clients for oversight; every read is audited. Personal values (name, date of
birth, a consent's purpose) never go to the logs or into the audit log.

Caseloads: each client is on one staff member's caseload (`case_manager_id`, the creator at
first). A case manager lists their own (`mine`); a supervisor sees the agency's caseloads with
their open referrals and overdue follow-ups, and moves clients between the agency's staff.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import AGENCY_ROLES, agency, app_user
from service.audit import service as audit
from service.clients.schemas import ClientCreate, ConsentCreate
from service.clients.tables import client, consent
from service.directory.tables import organization
from service.errors import AppError, BadRequest, Forbidden, InvalidTransition, NotFound
from service.referrals.tables import referral

CLIENT_FIELDS = ("agency_id", "case_manager_id", "name", "date_of_birth", "preferred_language",
                 "contact_preference", "no_voicemail", "do_not_text")
CLIENT_PERSONAL = {"name", "date_of_birth"}
CONSENT_FIELDS = ("client_id", "shares", "shared_with_organization_id", "shared_with_name",
                  "purpose", "is_part2", "given_at", "expires_at", "revoked_at")
CONSENT_PERSONAL = {"purpose"}  # free text: may name the client or their circumstances
CLOCK_SKEW = timedelta(minutes=5)

# 42 CFR 2.32(a)(1), as revised in 2024 (89 FR 12472). Have counsel confirm before relying on it.
PART2_NOTICE = (
    "This record which has been disclosed to you is protected by Federal confidentiality rules "
    "(42 CFR part 2). These rules prohibit you from using or disclosing this record, or "
    "testimony that describes the information contained in this record, in any civil, "
    "criminal, administrative, or legislative proceedings by any Federal, State, or local "
    "authority, against the patient, unless authorized by the consent of the patient, except "
    "as provided at 42 CFR 2.12(c)(5) or as authorized by a court in accordance with 42 CFR "
    "2.64 or 2.65. In addition, the Federal rules prohibit you from making any other use or "
    "disclosure of this record unless at least one of the following applies: (A) Further use "
    "or disclosure is expressly permitted by the written consent of the individual whose "
    "information is being disclosed in this record or as otherwise permitted by 42 CFR part "
    "2. (B) You are a covered entity or business associate and have received the record for "
    "treatment, payment, or health care operations, or (C) You have received the record from "
    "a covered entity or business associate as permitted by 45 CFR part 164, subparts A and "
    "E. A general authorization for the release of medical or other information is NOT "
    "sufficient to meet the required elements of written consent to further use or redisclose "
    "the record (see 42 CFR 2.31)."
)


class Unprocessable(AppError):
    """A well-formed request naming something it may not (e.g. another agency's staff)."""

    status, code = 422, "invalid"


def _staff_agency(actor: Principal) -> int:
    """The agency a staff member works in (admins have none and may not write)."""
    if actor.agency_id is None:
        raise Forbidden("only an agency's staff may change its clients", field="role")
    return actor.agency_id


def _visible(session: Session, *, actor: Principal, client_id: int) -> dict[str, Any]:
    """The client row if the actor may see it; NotFound otherwise (also for other agencies)."""
    query = select(client).where(client.c.id == client_id)
    if actor.role != "admin":
        query = query.where(client.c.agency_id == actor.agency_id)
    row = session.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no client {client_id}", field="client_id")
    return dict(row)


def consent_status(row: dict[str, Any], *, now: datetime | None = None) -> str:
    """active, expired or revoked."""
    now = now or datetime.now(UTC)
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "expired"
    return "active"


def _consent_out(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "status": consent_status(row),
            "redisclosure_notice": PART2_NOTICE if row["is_part2"] else None}


def _duplicates(session: Session, *, agency_id: int, name: str,
                date_of_birth: date | None) -> list[int]:
    """Clients of the agency with the same name (any case and spacing) and date of birth."""
    if date_of_birth is None:
        return []
    rows = session.execute(select(client.c.id, client.c.name)
                           .where(client.c.agency_id == agency_id)
                           .where(client.c.date_of_birth == date_of_birth)
                           .order_by(client.c.id)).all()
    key = " ".join(name.split()).casefold()
    return [r.id for r in rows if " ".join(r.name.split()).casefold() == key]


def create_client(session: Session, *, actor: Principal,
                  data: ClientCreate) -> tuple[dict[str, Any], list[int]]:
    """A new client of the actor's agency, and the ids of possible duplicates (a warning,
    not an error: two people can share a name and a birthday)."""
    agency_id = _staff_agency(actor)
    today = datetime.now(UTC).date()
    if data.date_of_birth is not None and not date(1900, 1, 1) <= data.date_of_birth <= today:
        raise BadRequest("the date of birth must be between 1900 and today",
                         field="date_of_birth")
    if data.contact_preference == "text" and data.do_not_text:
        raise BadRequest("texting is the preferred contact but do_not_text is set",
                         field="do_not_text")
    duplicates = _duplicates(session, agency_id=agency_id, name=data.name,
                             date_of_birth=data.date_of_birth)
    now = datetime.now(UTC)
    values = {**data.model_dump(), "agency_id": agency_id, "created_by": actor.user_id,
              "case_manager_id": actor.user_id, "created_at": now, "updated_at": now}
    client_id = session.execute(insert(client).values(**values).returning(client.c.id)
                                ).scalar_one()
    changes = audit.diff(None, values, fields=CLIENT_FIELDS, personal=CLIENT_PERSONAL)
    if duplicates:
        changes["possible_duplicate_of"] = {"old": None, "new": duplicates}
    audit.record(session, actor=actor, action="client.create", entity_type="client",
                 entity_id=client_id, changes=changes)
    return _visible(session, actor=actor, client_id=client_id), duplicates


def get_client(session: Session, *, actor: Principal, client_id: int) -> dict[str, Any]:
    """One client with their consents; the read is audited."""
    row = _visible(session, actor=actor, client_id=client_id)
    consents = session.execute(select(consent).where(consent.c.client_id == client_id)
                               .order_by(consent.c.id)).mappings().all()
    audit.record(session, actor=actor, action="client.read", entity_type="client",
                 entity_id=client_id)
    return {**row, "consents": [_consent_out(dict(c)) for c in consents]}


def list_clients(session: Session, *, actor: Principal, agency_id: int | None = None,
                 mine: bool = False, page: int = 1,
                 per_page: int = 25) -> tuple[int, list[dict[str, Any]]]:
    """A page of one agency's clients (the actor's own; an admin names one), or with `mine`
    only the actor's caseload; audited with the ids shown."""
    if mine and actor.role == "admin":
        raise BadRequest("admins carry no caseload: leave out mine", field="mine")
    if actor.role == "admin":
        if agency_id is None:
            raise BadRequest("an admin reads one agency's clients at a time: give agency_id",
                             field="agency_id")
        if session.execute(select(agency.c.id).where(agency.c.id == agency_id)).first() is None:
            raise NotFound(f"no agency {agency_id}", field="agency_id")
    elif agency_id is not None and agency_id != actor.agency_id:
        raise NotFound(f"no agency {agency_id}", field="agency_id")
    else:
        agency_id = actor.agency_id
    where = client.c.agency_id == agency_id
    if mine:
        where = and_(where, client.c.case_manager_id == actor.user_id)
    total = session.execute(select(func.count()).select_from(client).where(where)).scalar_one()
    rows = session.execute(select(client).where(where).order_by(client.c.id)
                           .limit(per_page).offset((page - 1) * per_page)).mappings().all()
    audit.record(session, actor=actor, action="client.list", entity_type="agency",
                 entity_id=agency_id,
                 changes={"client_ids": {"old": None, "new": [r["id"] for r in rows]}})
    return total, [dict(r) for r in rows]


def add_consent(session: Session, *, actor: Principal, client_id: int,
                data: ConsentCreate) -> dict[str, Any]:
    """Record a consent the client gave; audited (the purpose redacted)."""
    _staff_agency(actor)
    _visible(session, actor=actor, client_id=client_id)
    now = datetime.now(UTC)
    given_at = data.given_at or now
    if given_at > now + CLOCK_SKEW:
        raise BadRequest("a consent cannot be given in the future", field="given_at")
    if data.expires_at is not None and data.expires_at <= given_at:
        raise BadRequest("a consent must expire after it was given", field="expires_at")
    name = data.shared_with_name and " ".join(data.shared_with_name.split())
    if data.shared_with_organization_id is not None:
        org_name = session.execute(select(organization.c.name).where(
            organization.c.id == data.shared_with_organization_id)).first()
        if org_name is None:
            raise BadRequest(f"no organization {data.shared_with_organization_id}",
                             field="shared_with_organization_id")
        name = name or org_name[0]
    if not name:
        raise BadRequest("say whom the information may be shared with: an organization id "
                         "or a name", field="shared_with_name")
    values = {"client_id": client_id, "shares": sorted(set(data.shares)),
              "shared_with_organization_id": data.shared_with_organization_id,
              "shared_with_name": name, "purpose": data.purpose.strip(),
              "is_part2": data.is_part2, "given_at": given_at, "expires_at": data.expires_at,
              "revoked_at": None, "recorded_by": actor.user_id, "created_at": now}
    consent_id = session.execute(insert(consent).values(**values).returning(consent.c.id)
                                 ).scalar_one()
    audit.record(session, actor=actor, action="consent.create", entity_type="consent",
                 entity_id=consent_id,
                 changes=audit.diff(None, values, fields=CONSENT_FIELDS,
                                    personal=CONSENT_PERSONAL))
    return _consent_out(_consent(session, client_id=client_id, consent_id=consent_id))


def _consent(session: Session, *, client_id: int, consent_id: int) -> dict[str, Any]:
    row = session.execute(select(consent).where(consent.c.id == consent_id)
                          .where(consent.c.client_id == client_id)).mappings().first()
    if row is None:
        raise NotFound(f"no consent {consent_id} for client {client_id}", field="consent_id")
    return dict(row)


def revoke_consent(session: Session, *, actor: Principal, client_id: int,
                   consent_id: int) -> dict[str, Any]:
    """The client withdrew a consent: it stops covering anything from now; audited."""
    _staff_agency(actor)
    _visible(session, actor=actor, client_id=client_id)
    before = _consent(session, client_id=client_id, consent_id=consent_id)
    if before["revoked_at"] is not None:
        raise InvalidTransition("this consent was already revoked", field="consent_id")
    now = datetime.now(UTC)
    session.execute(update(consent).where(consent.c.id == consent_id).values(revoked_at=now))
    after = _consent(session, client_id=client_id, consent_id=consent_id)
    audit.record(session, actor=actor, action="consent.revoke", entity_type="consent",
                 entity_id=consent_id,
                 changes=audit.diff(before, after, fields=CONSENT_FIELDS,
                                    personal=CONSENT_PERSONAL))
    return _consent_out(after)


# --- caseloads ------------------------------------------------------------------------------


def _supervisor_agency(actor: Principal) -> int:
    if actor.role != "supervisor" or actor.agency_id is None:
        raise Forbidden("only a supervisor manages the agency's caseloads", field="role")
    return actor.agency_id


def caseloads(session: Session, *, actor: Principal,
              now: datetime | None = None) -> list[dict[str, Any]]:
    """The supervisor's agency, one row per caseload: every case manager (and anyone else
    holding the agency's clients, and the unassigned clients, user None), with how many
    clients, how many of them have an open referral, the open referrals and the overdue
    follow-ups (as on the work queue). Counts only, no client; the read is audited."""
    # Imported here: the referrals service imports this module.
    from service.referrals.service import NO_FOLLOW_UP, OPEN

    agency_id = _supervisor_agency(actor)
    now = now or datetime.now(UTC)
    is_open = referral.c.status.in_(OPEN)
    is_overdue = and_(referral.c.follow_up_due_at.is_not(None),
                      referral.c.follow_up_due_at <= now,
                      referral.c.status.not_in(sorted(NO_FOLLOW_UP | {"cancelled"})))
    counts = {r.case_manager_id: r for r in session.execute(
        select(client.c.case_manager_id,
               func.count(client.c.id.distinct()).label("clients"),
               func.count(case((is_open, client.c.id)).distinct())
               .label("clients_with_open_referrals"),
               func.count(case((is_open, referral.c.id))).label("open_referrals"),
               func.count(case((is_overdue, referral.c.id))).label("overdue_follow_ups"))
        .select_from(client.outerjoin(referral, and_(referral.c.client_id == client.c.id,
                                                     referral.c.agency_id == agency_id)))
        .where(client.c.agency_id == agency_id)
        .group_by(client.c.case_manager_id)).all()}
    holders = [k for k in counts if k is not None]
    staff = session.execute(
        select(app_user.c.id, app_user.c.username, app_user.c.role, app_user.c.is_active)
        .where(or_(and_(app_user.c.agency_id == agency_id, app_user.c.role == "case_manager"),
                   app_user.c.id.in_(holders)))
        .order_by(app_user.c.username)).all()
    empty = {"clients": 0, "clients_with_open_referrals": 0, "open_referrals": 0,
             "overdue_follow_ups": 0}
    rows = []
    for user in staff:
        found = counts.get(user.id)
        rows.append({"user_id": user.id, "username": user.username, "role": user.role,
                     "is_active": user.is_active,
                     **({k: getattr(found, k) for k in empty} if found else empty)})
    if None in counts:
        rows.append({"user_id": None, "username": None, "role": None, "is_active": None,
                     **{k: getattr(counts[None], k) for k in empty}})
    audit.record(session, actor=actor, action="caseload.read", entity_type="agency",
                 entity_id=agency_id)
    return rows


def reassign_client(session: Session, *, actor: Principal, client_id: int,
                    case_manager_id: int) -> dict[str, Any]:
    """Move a client of the supervisor's agency onto an active staff member's caseload (a
    case manager or supervisor of the same agency); audited with the change."""
    agency_id = _supervisor_agency(actor)
    before = _visible(session, actor=actor, client_id=client_id)
    target = session.execute(select(app_user.c.role, app_user.c.agency_id, app_user.c.is_active)
                             .where(app_user.c.id == case_manager_id)).first()
    if (target is None or target.agency_id != agency_id or target.role not in AGENCY_ROLES
            or not target.is_active):
        raise Unprocessable(f"user {case_manager_id} is not an active case manager or "
                            "supervisor of your agency", field="case_manager_id")
    if before["case_manager_id"] == case_manager_id:
        return before
    session.execute(update(client).where(client.c.id == client_id)
                    .values(case_manager_id=case_manager_id, updated_at=datetime.now(UTC)))
    after = _visible(session, actor=actor, client_id=client_id)
    audit.record(session, actor=actor, action="client.reassign", entity_type="client",
                 entity_id=client_id,
                 changes=audit.diff(before, after, fields=("case_manager_id",)))
    return after
