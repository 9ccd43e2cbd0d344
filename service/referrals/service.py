"""Referrals: make, send, answer, follow up. Functions flush; the caller owns the commit.

Scope (see `service.access`): agency staff see their own agency's referrals; a partner sees the
referrals sent to their organizations (only their sites when their link names sites), never a
draft nor a logged referral; admins read everything. Anything else is "not found" (404), so a
referral's existence does not leak. Every change bumps `version` with a conditional UPDATE
(`WHERE version = expected`), appends exactly one referral_event (seq = the new version) and one
audit event, all in the caller's transaction: a stale version is refused (409), never lost.
Sending and a partner's answers also queue notifications in that transaction
(`service.notifications.service`). Reads of a referral show client data, so they are audited
too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, insert, or_, select, update
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import AGENCY_ROLES, user_organization
from service.audit import service as audit
from service.clients.service import PART2_NOTICE, consent_status
from service.clients.tables import client, consent
from service.config import Settings
from service.directory.categories import category_tree
from service.directory.tables import organization, service_at_location
from service.directory.tables import service as service_table
from service.errors import BadRequest, Conflict, Forbidden, InvalidTransition, NotFound
from service.notifications import service as notifications
from service.referrals.schemas import FollowUpIn, ReferralCreate, TransitionIn
from service.referrals.tables import referral, referral_event

AGENCY, PARTNER = "agency", "partner"  # which side of a referral makes a move
OPEN = ("draft", "requested", "accepted", "in-progress", "on-hold")

# The one table of moves (FHIR SDOH Task states): (from, to) -> the side that may make it.
# For a logged referral (a provider not on Signpost) the agency records the partner's moves.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("draft", "requested"): AGENCY,
    **{(s, "cancelled"): AGENCY for s in OPEN},
    **{(s, "entered-in-error"): AGENCY
       for s in (*OPEN, "rejected", "failed", "completed", "cancelled")},
    ("requested", "accepted"): PARTNER,
    ("requested", "rejected"): PARTNER,
    ("accepted", "in-progress"): PARTNER,
    ("accepted", "on-hold"): PARTNER,
    ("accepted", "rejected"): PARTNER,
    ("in-progress", "on-hold"): PARTNER,
    ("in-progress", "completed"): PARTNER,
    ("in-progress", "failed"): PARTNER,
    ("on-hold", "in-progress"): PARTNER,
    ("on-hold", "failed"): PARTNER,
}
REASON_REQUIRED = frozenset({"rejected", "on-hold", "failed", "cancelled"})
# Once the partner has taken the referral on, they may see more (as far as consent goes).
TAKEN_ON = frozenset({"accepted", "in-progress", "on-hold", "completed", "failed"})
NO_FOLLOW_UP = frozenset({"draft", "entered-in-error"})

REFERRAL_FIELDS = ("client_id", "agency_id", "service_id", "service_at_location_id",
                   "organization_id", "location_id", "need_category_id", "note", "urgency",
                   "status", "version", "is_logged")
PERSONAL = {"note", "reason_text", "reason"}


@dataclass(frozen=True)
class FollowUpPolicy:
    """Days until the case manager checks back, by urgency; days until a referral with no
    partner answer counts as idle."""

    days: Mapping[str, int] = field(
        default_factory=lambda: {"urgent": 2, "soon": 7, "routine": 14})
    idle_days: int = 3

    @classmethod
    def from_settings(cls, settings: Settings) -> FollowUpPolicy:
        return cls(days={"urgent": settings.referral_follow_up_days_urgent,
                         "soon": settings.referral_follow_up_days_soon,
                         "routine": settings.referral_follow_up_days_routine},
                   idle_days=settings.referral_idle_days)

    def due(self, urgency: str, now: datetime) -> datetime:
        return now + timedelta(days=self.days[urgency])


DEFAULT_POLICY = FollowUpPolicy()


# --- who sees what ------------------------------------------------------------------------


def _is_staff(actor: Principal) -> bool:
    return actor.role in AGENCY_ROLES and actor.agency_id is not None


def _partner_links(session: Session, *, user_id: int) -> list[tuple[str, list[str] | None]]:
    rows = session.execute(select(user_organization.c.organization_id,
                                  user_organization.c.location_ids)
                           .where(user_organization.c.user_id == user_id)).all()
    return [(r.organization_id, list(r.location_ids) if r.location_ids else None)
            for r in rows]


def scope(session: Session, *, actor: Principal) -> ColumnElement[bool] | None:
    """The referral rows the actor may see (None: all of them); reports use it too."""
    if actor.role == "admin":
        return None
    if _is_staff(actor):
        return referral.c.agency_id == actor.agency_id
    if actor.role == "partner":
        links = []
        for org, sites in _partner_links(session, user_id=actor.user_id):
            clause = referral.c.organization_id == org
            if sites is not None:
                clause = and_(clause, referral.c.location_id.in_(sites))
            links.append(clause)
        if not links:
            return false()
        return and_(or_(*links), referral.c.is_logged.is_(False), referral.c.status != "draft")
    return false()


def _visible(session: Session, *, actor: Principal, referral_id: int) -> dict[str, Any]:
    query = select(referral).where(referral.c.id == referral_id)
    allowed = scope(session, actor=actor)
    if allowed is not None:
        query = query.where(allowed)
    row = session.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"no referral {referral_id}", field="referral_id")
    return dict(row)


def _same_name(a: str | None, b: str | None) -> bool:
    return bool(a and b) and " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def covering_consents(session: Session, *, client_id: int, organization_id: str,
                      now: datetime | None = None) -> list[dict[str, Any]]:
    """The client's consents active now that name the organization (by id, or by name when
    the consent names no organization id)."""
    now = now or datetime.now(UTC)
    org_name = session.execute(select(organization.c.name)
                               .where(organization.c.id == organization_id)).scalar()
    rows = session.execute(select(consent).where(consent.c.client_id == client_id)
                           .order_by(consent.c.id)).mappings().all()
    found = []
    for row in rows:
        if consent_status(dict(row), now=now) != "active" or row["given_at"] > now:
            continue
        by_id = row["shared_with_organization_id"] == organization_id
        by_name = (row["shared_with_organization_id"] is None
                   and _same_name(row["shared_with_name"], org_name))
        if by_id or by_name:
            found.append(dict(row))
    return found


def _need(category_id: str) -> dict[str, str]:
    category = category_tree().get(category_id)
    return {"id": category_id, "name": category.name if category else category_id}


def _summary(row: Mapping[str, Any], *, actor: Principal) -> dict[str, Any]:
    out = {k: row[k] for k in ("id", "status", "version", "urgency", "service_id",
                               "service_at_location_id", "organization_id", "location_id",
                               "agency_id", "client_id", "is_logged", "sent_at",
                               "follow_up_due_at", "follow_up_outcome", "created_at",
                               "updated_at")}
    out["need"] = _need(row["need_category_id"])
    if actor.role == "partner":
        out["client_id"] = None  # the agency's internal id says nothing a partner needs
    return out


def _client_view(person: Mapping[str, Any], *, full: bool, shares: set[str],
                 taken_on: bool) -> dict[str, Any]:
    if full:
        return {"name": person["name"], "name_is_partial": False,
                "contact_preference": person["contact_preference"],
                "date_of_birth": person["date_of_birth"],
                "preferred_language": person["preferred_language"],
                "no_voicemail": person["no_voicemail"], "do_not_text": person["do_not_text"]}
    words = person["name"].split()
    view: dict[str, Any] = {"name": words[0] if words else "", "name_is_partial": True,
                            "contact_preference": person["contact_preference"]}
    if taken_on:
        if "identity" in shares:
            view.update(name=person["name"], name_is_partial=False)
        if "demographics" in shares:
            view.update(date_of_birth=person["date_of_birth"],
                        preferred_language=person["preferred_language"])
        if "contact" in shares:
            view.update(no_voicemail=person["no_voicemail"], do_not_text=person["do_not_text"])
    return view


def _events(session: Session, *, referral_id: int,
            for_partner: bool = False) -> list[dict[str, Any]]:
    """The referral's history. A partner sees the agency's follow-ups only as their outcome:
    what the client told their case manager (the free text, how they were reached) stays with
    the agency."""
    rows = session.execute(select(referral_event).where(
        referral_event.c.referral_id == referral_id).order_by(referral_event.c.seq)
    ).mappings().all()
    events = [dict(r) for r in rows]
    if for_partner:
        for event in events:
            if event["kind"] == "follow_up":
                event["reason_text"] = None
                event["detail"] = {"outcome": (event["detail"] or {}).get("outcome")}
    return events


def _detail(session: Session, *, actor: Principal, row: Mapping[str, Any]) -> dict[str, Any]:
    person = session.execute(select(client).where(client.c.id == row["client_id"])
                             ).mappings().one()
    consents = covering_consents(session, client_id=row["client_id"],
                                 organization_id=row["organization_id"])
    shares = {s for c in consents for s in c["shares"]}
    is_partner = actor.role == "partner"
    show_note = not is_partner or "notes" in shares
    return {**_summary(row, actor=actor),
            "client": _client_view(person, full=not is_partner, shares=shares,
                                   taken_on=row["status"] in TAKEN_ON),
            "note": row["note"] if show_note else None,
            "redisclosure_notice": PART2_NOTICE if any(c["is_part2"] for c in consents)
            else None,
            "events": _events(session, referral_id=row["id"], for_partner=is_partner)}


# --- reading --------------------------------------------------------------------------------


def get_referral(session: Session, *, actor: Principal, referral_id: int,
                 action: str = "referral.read") -> dict[str, Any]:
    """One referral with what the actor may see of the client, and its events; audited (as
    `action`: an export says so)."""
    row = _visible(session, actor=actor, referral_id=referral_id)
    audit.record(session, actor=actor, action=action, entity_type="referral",
                 entity_id=referral_id)
    return _detail(session, actor=actor, row=row)


def list_referrals(session: Session, *, actor: Principal, status: str | None = None,
                   page: int = 1, per_page: int = 25) -> tuple[int, list[dict[str, Any]]]:
    """A page of the referrals the actor may see (newest first); audited with the ids shown."""
    query = select(referral)
    count = select(func.count()).select_from(referral)
    allowed = scope(session, actor=actor)
    for clause in (allowed, None if status is None else referral.c.status == status):
        if clause is not None:
            query, count = query.where(clause), count.where(clause)
    total = session.execute(count).scalar_one()
    rows = session.execute(query.order_by(referral.c.id.desc()).limit(per_page)
                           .offset((page - 1) * per_page)).mappings().all()
    audit.record(session, actor=actor, action="referral.list", entity_type="referral",
                 changes={"referral_ids": {"old": None, "new": [r["id"] for r in rows]}})
    return total, [_summary(r, actor=actor) for r in rows]


def work_queue(session: Session, *, actor: Principal, policy: FollowUpPolicy = DEFAULT_POLICY,
               now: datetime | None = None) -> list[dict[str, Any]]:
    """The actor's agency's referrals that need a look: follow-ups due, and referrals sent
    `policy.idle_days` ago with no answer yet. Most overdue first; audited."""
    if not _is_staff(actor):
        raise Forbidden("the work queue is an agency's", field="role")
    now = now or datetime.now(UTC)
    idle_before = now - timedelta(days=policy.idle_days)
    overdue = and_(referral.c.follow_up_due_at.is_not(None),
                   referral.c.follow_up_due_at <= now,
                   referral.c.status.not_in(sorted(NO_FOLLOW_UP | {"cancelled"})))
    idle = and_(referral.c.status == "requested", referral.c.sent_at <= idle_before)
    rows = session.execute(select(referral).where(referral.c.agency_id == actor.agency_id)
                           .where(or_(overdue, idle))
                           .order_by(func.coalesce(referral.c.follow_up_due_at,
                                                   referral.c.sent_at), referral.c.id)
                           ).mappings().all()
    items = []
    for row in rows:
        reasons = []
        due = row["follow_up_due_at"]
        if due is not None and due <= now and row["status"] not in NO_FOLLOW_UP | {"cancelled"}:
            reasons.append("follow_up_overdue")
        if row["status"] == "requested" and row["sent_at"] and row["sent_at"] <= idle_before:
            reasons.append("no_partner_response")
        items.append({**_summary(row, actor=actor), "reasons": reasons})
    audit.record(session, actor=actor, action="referral.work_queue", entity_type="agency",
                 entity_id=actor.agency_id,
                 changes={"referral_ids": {"old": None, "new": [i["id"] for i in items]}})
    return items


# --- changing -------------------------------------------------------------------------------


def _target(session: Session, *, service_id: str | None,
            service_at_location_id: str | None) -> dict[str, Any]:
    """The service, site and organization a referral goes to."""
    location_id = None
    if service_at_location_id is not None:
        sal = session.execute(select(service_at_location.c.service_id,
                                     service_at_location.c.location_id,
                                     service_at_location.c.is_active)
                              .where(service_at_location.c.id == service_at_location_id)
                              ).first()
        if sal is None or not sal.is_active:
            raise BadRequest(f"no service at location {service_at_location_id}",
                             field="service_at_location_id")
        if service_id is not None and service_id != sal.service_id:
            raise BadRequest("the service_at_location is not a site of that service",
                             field="service_at_location_id")
        service_id, location_id = sal.service_id, sal.location_id
    found = session.execute(select(service_table.c.organization_id, service_table.c.is_active,
                                   service_table.c.is_referable)
                            .where(service_table.c.id == service_id)).first()
    if found is None or not found.is_active:
        raise BadRequest(f"no service {service_id}", field="service_id")
    if not found.is_referable:
        raise BadRequest("this service does not take referrals", field="service_id")
    if found.organization_id is None:
        raise BadRequest("this service names no organization to refer to", field="service_id")
    return {"service_id": service_id, "service_at_location_id": service_at_location_id,
            "location_id": location_id, "organization_id": found.organization_id}


def _need_id(need: str) -> str:
    tree = category_tree()
    key = need.strip()
    category = tree.get(key) or tree.by_slug(key.casefold())
    if category is None:
        raise BadRequest(f"no need category {key!r}: give a category id or slug", field="need")
    return category.id


def _append(session: Session, *, actor: Principal, row: Mapping[str, Any], seq: int, kind: str,
            to_status: str, now: datetime, reason_code: str | None = None,
            reason_text: str | None = None, detail: dict[str, Any] | None = None) -> None:
    session.execute(insert(referral_event).values(
        referral_id=row["id"], seq=seq, kind=kind, actor_user_id=actor.user_id,
        actor_role=actor.role, at=now, from_status=None if kind == "created" else row["status"],
        to_status=to_status, reason_code=reason_code, reason_text=reason_text, detail=detail))


def _check_version(row: Mapping[str, Any], expected_version: int) -> None:
    if expected_version != row["version"]:
        raise Conflict(f"the referral changed since you read it: it is at version "
                       f"{row['version']}, not {expected_version}; read it again",
                       field="expected_version")


def _bump(session: Session, *, row: Mapping[str, Any], expected_version: int,
          values: Mapping[str, Any], now: datetime) -> int:
    """Write `values` if nobody changed the referral since `expected_version`; the new version.

    The conditional UPDATE is the guard: on PostgreSQL a concurrent writer waits for the row
    lock, then finds the version changed and updates nothing; on SQLite writers are serialised
    by BEGIN IMMEDIATE."""
    _check_version(row, expected_version)
    result = session.execute(update(referral).where(referral.c.id == row["id"])
                             .where(referral.c.version == expected_version)
                             .values(version=expected_version + 1, updated_at=now, **values))
    if result.rowcount != 1:
        raise Conflict("the referral changed since you read it; read it again",
                       field="expected_version")
    return expected_version + 1


def create_referral(session: Session, *, actor: Principal, data: ReferralCreate,
                    policy: FollowUpPolicy = DEFAULT_POLICY,
                    public_base_url: str | None = None) -> dict[str, Any]:
    """A new referral of one of the actor's agency's clients: a draft, sent at once when
    `data.send` (which needs the client's consent unless the referral is logged); audited.
    `public_base_url` is the app's address, for the link in the partners' notification."""
    if not _is_staff(actor):
        raise Forbidden("only an agency's staff may refer its clients", field="role")
    owner = session.execute(select(client.c.agency_id).where(client.c.id == data.client_id)
                            ).scalar()
    if owner is None or owner != actor.agency_id:
        raise NotFound(f"no client {data.client_id}", field="client_id")
    target = _target(session, service_id=data.service_id,
                     service_at_location_id=data.service_at_location_id)
    now = datetime.now(UTC)
    note = data.note.strip() if data.note and data.note.strip() else None
    values = {"client_id": data.client_id, "agency_id": actor.agency_id,
              "created_by": actor.user_id, **target, "need_category_id": _need_id(data.need),
              "note": note, "urgency": data.urgency, "status": "draft", "version": 1,
              "is_logged": data.is_logged, "created_at": now, "updated_at": now}
    referral_id = session.execute(insert(referral).values(**values).returning(referral.c.id)
                                  ).scalar_one()
    row = {**values, "id": referral_id}
    _append(session, actor=actor, row=row, seq=1, kind="created", to_status="draft", now=now)
    audit.record(session, actor=actor, action="referral.create", entity_type="referral",
                 entity_id=referral_id,
                 changes=audit.diff(None, values, fields=REFERRAL_FIELDS, personal=PERSONAL))
    if data.send:
        return transition(session, actor=actor, referral_id=referral_id, policy=policy,
                          data=TransitionIn(to="requested", expected_version=1),
                          public_base_url=public_base_url)
    return _detail(session, actor=actor, row=_visible(session, actor=actor,
                                                       referral_id=referral_id))


def _check_side(session: Session, *, actor: Principal, row: Mapping[str, Any],
                side: str, to: str) -> None:
    staff = _is_staff(actor) and actor.agency_id == row["agency_id"]
    if side == AGENCY and not staff:
        raise Forbidden(f"only the referring agency may move a referral to {to}", field="role")
    if side == PARTNER and not (actor.role == "partner" or (row["is_logged"] and staff)):
        raise Forbidden(f"only the receiving partner may move a referral to {to}"
                        + ("" if row["is_logged"] else " (a logged referral's answers are "
                           "recorded by the agency)"), field="role")


def transition(session: Session, *, actor: Principal, referral_id: int, data: TransitionIn,
               policy: FollowUpPolicy = DEFAULT_POLICY,
               public_base_url: str | None = None) -> dict[str, Any]:
    """Move a referral along `TRANSITIONS`; one referral_event and one audit event. Sending
    queues a notification to the receiving partners, a partner's answer one to the staff
    member who sent it (same transaction; links to `public_base_url`)."""
    row = _visible(session, actor=actor, referral_id=referral_id)
    _check_version(row, data.expected_version)
    side = TRANSITIONS.get((row["status"], data.to))
    if side is None:
        raise InvalidTransition(f"a referral cannot go from {row['status']} to {data.to}",
                                field="to")
    _check_side(session, actor=actor, row=row, side=side, to=data.to)
    reason_text = data.reason_text.strip() if data.reason_text and data.reason_text.strip() \
        else None
    if data.to in REASON_REQUIRED and data.reason_code is None:
        raise BadRequest(f"say why the referral is {data.to}: a reason_code (no_capacity, "
                         "not_eligible, could_not_contact, client_declined, got_help, "
                         "duplicate or other)", field="reason_code")
    if data.reason_code == "other" and reason_text is None:
        raise BadRequest("reason_code other needs a reason_text", field="reason_text")
    now = datetime.now(UTC)
    values: dict[str, Any] = {"status": data.to}
    if data.to == "requested":
        if not row["is_logged"] and not covering_consents(
                session, client_id=row["client_id"], organization_id=row["organization_id"],
                now=now):
            raise BadRequest("the client has no active consent to share with this "
                             "organization: record one first (or log the referral)",
                             field="consent")
        values.update(sent_at=now, follow_up_due_at=policy.due(row["urgency"], now))
    version = _bump(session, row=row, expected_version=data.expected_version, values=values,
                    now=now)
    _append(session, actor=actor, row=row, seq=version, kind="transition", to_status=data.to,
            now=now, reason_code=data.reason_code, reason_text=reason_text)
    if data.to == "requested":
        notifications.on_referral_sent(session, row=row, base_url=public_base_url)
    elif actor.role == "partner" and data.to in notifications.ANSWERS:
        notifications.on_referral_answered(session, row=row, base_url=public_base_url)
    audit.record(session, actor=actor, action="referral.transition", entity_type="referral",
                 entity_id=referral_id, changes=audit.diff(
                     {"status": row["status"], "version": row["version"]},
                     {"status": data.to, "version": version, "reason_code": data.reason_code,
                      "reason_text": reason_text},
                     fields=("status", "version", "reason_code", "reason_text"),
                     personal=PERSONAL))
    return _detail(session, actor=actor, row=_visible(session, actor=actor,
                                                       referral_id=referral_id))


def record_follow_up(session: Session, *, actor: Principal, referral_id: int, data: FollowUpIn,
                     policy: FollowUpPolicy = DEFAULT_POLICY) -> dict[str, Any]:
    """The case manager checked back with the client. An `unknown` outcome schedules another
    follow-up; one referral_event and one audit event."""
    row = _visible(session, actor=actor, referral_id=referral_id)
    if not (_is_staff(actor) and actor.agency_id == row["agency_id"]):
        raise Forbidden("only the referring agency follows up", field="role")
    expected = row["version"] if data.expected_version is None else data.expected_version
    _check_version(row, expected)
    if row["status"] in NO_FOLLOW_UP:
        raise InvalidTransition(f"a referral that is {row['status']} has no follow-up",
                                field="referral_id")
    now = datetime.now(UTC)
    due = policy.due(row["urgency"], now) if data.outcome == "unknown" else None
    version = _bump(session, row=row, expected_version=expected, now=now,
                    values={"follow_up_outcome": data.outcome, "follow_up_due_at": due})
    reason = data.reason.strip() if data.reason and data.reason.strip() else None
    detail = {"outcome": data.outcome, "contact_method": data.contact_method}
    _append(session, actor=actor, row=row, seq=version, kind="follow_up",
            to_status=row["status"], now=now, reason_text=reason, detail=detail)
    audit.record(session, actor=actor, action="referral.follow_up", entity_type="referral",
                 entity_id=referral_id, changes=audit.diff(
                     {"version": row["version"], "follow_up_outcome": row["follow_up_outcome"]},
                     {"version": version, "follow_up_outcome": data.outcome, "reason": reason,
                      "contact_method": data.contact_method},
                     fields=("version", "follow_up_outcome", "reason", "contact_method"),
                     personal=PERSONAL))
    return _detail(session, actor=actor, row=_visible(session, actor=actor,
                                                       referral_id=referral_id))
