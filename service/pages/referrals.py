"""The case manager's referral pages: the dashboard, the one-page refer flow, one referral.

- `/dashboard`: the follow-up work queue first (`referrals.work_queue`: overdue follow-ups and
  referrals with no partner answer yet), then the referrals by status tab. A case manager sees
  their own caseload by default and a supervisor the agency's; either can switch.
- `/referrals/new`: one confirmation page for a referral (client, service, need, urgency,
  note) with the consent check: when the client's consent does not cover the organization, an
  inline consent form is sent together with the referral, in one submit, and both are written
  in one transaction (`clients.add_consent`, then `referrals.create_referral` with `send`).
- `/referrals/{id}`: status, timeline, the partner's answer, the agency's moves (with the
  version the page showed: a stale one says so and shows the referral again) and the
  follow-up form.

Lists show client names, so each list is an audited read (as `referrals.list_referrals` is).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import app_user
from service.audit import service as audit
from service.clients import service as clients
from service.clients.schemas import ConsentCreate
from service.clients.tables import client
from service.deps import CurrentUser, SessionDep, SettingsDep, WriteSessionDep
from service.directory.categories import category_tree
from service.directory.tables import (
    hsds_tables,
    location,
    organization,
    service_at_location,
    service_category,
)
from service.directory.tables import service as service_table
from service.errors import BadRequest, Conflict, InvalidTransition, NotFound
from service.pages.session import flash
from service.referrals import service as referrals
from service.referrals.schemas import FollowUpIn, ReferralCreate, TransitionIn
from service.referrals.tables import REASON_CODES, referral
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 25
ReferralId = Annotated[int, Path(ge=1, le=2**31 - 1)]
Short = Annotated[str, Query(max_length=64)]

# The agency's view of each status (the partner portal words them for partners).
STATUS_LABELS = {
    "draft": "Draft (not sent)", "requested": "Waiting for partner", "accepted": "Accepted",
    "in-progress": "In progress", "on-hold": "On hold", "rejected": "Declined by partner",
    "failed": "Did not work out", "completed": "Completed", "cancelled": "Cancelled",
    "entered-in-error": "Entered in error",
}
CLOSED = ("rejected", "failed", "completed", "cancelled", "entered-in-error")
# The dashboard's tabs: key -> (label, the statuses shown; None: all).
TABS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "open": ("Open", referrals.OPEN),
    "waiting": ("Waiting for partner", ("requested",)),
    "accepted": ("Accepted", ("accepted", "in-progress", "on-hold")),
    "closed": ("Closed", CLOSED),
    "all": ("All", None),
}
URGENCIES = (("urgent", "Urgent"), ("soon", "Soon"), ("routine", "Routine"))
REASON_LABELS = {
    "no_capacity": "No capacity", "not_eligible": "Not eligible",
    "could_not_contact": "Couldn't contact the client", "client_declined": "Client declined",
    "got_help": "Got help", "duplicate": "Duplicate referral", "other": "Other (say why)",
}
REASON_SHOWN = {**REASON_LABELS, "other": "Other"}  # a reason as the timeline tells it
QUEUE_REASONS = {"follow_up_overdue": "Follow-up overdue",
                 "no_partner_response": "No answer from the partner yet"}
OUTCOMES = (("got_help", "Yes, the client got help"),
            ("did_not_get_help", "No, the client did not get help"),
            ("unknown", "Not known yet: remind me again later"))
OUTCOME_LABELS = {"got_help": "The client got help",
                  "did_not_get_help": "The client did not get help",
                  "unknown": "Not known yet"}
CONTACT_METHODS = (("phone", "Phone"), ("text", "Text message"), ("email", "Email"),
                   ("in_person", "In person"), ("mail", "Mail"), ("other", "Other"))
# What a consent may share, in words (service.clients.tables.SHAREABLE).
SHARES = (("identity", "Name"), ("contact", "How to reach them"),
          ("demographics", "Date of birth and language"), ("needs", "What they need"),
          ("referral_status", "How the referral goes"), ("notes", "The referral's note"),
          ("substance_use_treatment", "Substance-use treatment information"))
# What a referral needs shared; the inline consent form starts with these ticked.
REFERRAL_SHARES = ("identity", "contact", "needs", "referral_status")
# The agency's moves from a status, as buttons (a logged referral's partner moves too).
ACTION_LABELS = {
    "requested": "Send to the partner", "cancelled": "Cancel the referral",
    "entered-in-error": "Mark as entered in error",
    "accepted": "Record: the provider accepted", "rejected": "Record: the provider declined",
    "in-progress": "Record: service started", "on-hold": "Record: on hold",
    "completed": "Record: completed", "failed": "Record: did not work out",
}
STALE = ("This referral changed since you opened it. Here it is as it is now: check it and "
         "try again.")


# --- small helpers shared with the client pages --------------------------------------------


def day(value: datetime | date | None) -> str:
    """A date as people read it (e.g. "Jun 3, 2025"); "" for none."""
    return value.strftime("%b %-d, %Y") if value else ""


def moment(value: datetime | None) -> str:
    """A time with its date, in UTC (the server knows no user's time zone)."""
    return value.astimezone(UTC).strftime("%b %-d, %Y, %H:%M UTC") if value else ""


def initials(name: str) -> str:
    """A name's initials (at most four letters): what a button may show over a shoulder."""
    words = [w for w in re.split(r"[\s.\-]+", name or "") if w]
    return "".join(w[0].upper() for w in words)[:4] or "?"


def age_on(born: date | None, today: date) -> int | None:
    """Age in whole years."""
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def parse_int(value: str | None) -> int | None:
    """A positive id from a form or query string, or None."""
    value = (value or "").strip()
    if not value.isdigit() or len(value) > 10:
        return None
    number = int(value)
    return number if 1 <= number <= 2**31 - 1 else None


@lru_cache(maxsize=1)
def need_options() -> list[tuple[str, list[tuple[str, str]]]]:
    """The need categories for a select: one group per top-level category, the deeper ones
    indented under their parents."""
    tree = category_tree()
    groups = []
    for root in tree.roots():
        options = [(root.id, f"{root.name} (any)")]

        def walk(parent: str, depth: int, options: list[tuple[str, str]] = options) -> None:
            for child in tree.children(parent):
                options.append((child.id, "\u2014 " * (depth - 1) + child.name))
                walk(child.id, depth + 1)

        walk(root.id, 1)
        groups.append((root.name, options))
    return groups


def need_name(category_id: str | None) -> str:
    category = category_tree().get(category_id or "")
    return category.name if category else (category_id or "")


def policy(settings: Any) -> referrals.FollowUpPolicy:
    return referrals.FollowUpPolicy.from_settings(settings)


def is_overdue(row: dict[str, Any], now: datetime) -> bool:
    due = row.get("follow_up_due_at")
    return bool(due and due <= now and row["status"] not in
                (*referrals.NO_FOLLOW_UP, "cancelled"))


# --- reading -------------------------------------------------------------------------------


def referral_rows(session: Session, *, actor: Principal, statuses: tuple[str, ...] | None,
                  mine: bool = False, client_id: int | None = None, page: int = 1,
                  per_page: int = PER_PAGE) -> tuple[int, list[dict[str, Any]]]:
    """A page of the referrals the actor may see, newest first, with client, service and
    organization names; audited like `referrals.list_referrals` (the ids shown)."""
    joined = (referral.join(client, client.c.id == referral.c.client_id)
              .join(service_table, service_table.c.id == referral.c.service_id)
              .join(organization, organization.c.id == referral.c.organization_id))
    wheres = [referrals.scope(session, actor=actor)]
    if statuses is not None:
        wheres.append(referral.c.status.in_(statuses))
    if mine:
        wheres.append(client.c.case_manager_id == actor.user_id)
    if client_id is not None:
        wheres.append(referral.c.client_id == client_id)
    query = select(referral.c.id, referral.c.status, referral.c.urgency, referral.c.client_id,
                   referral.c.need_category_id, referral.c.sent_at, referral.c.created_at,
                   referral.c.follow_up_due_at, referral.c.follow_up_outcome,
                   referral.c.service_id, referral.c.location_id, referral.c.is_logged,
                   client.c.name.label("client_name"),
                   service_table.c.name.label("service_name"),
                   organization.c.name.label("organization_name")).select_from(joined)
    count = select(func.count()).select_from(joined)
    for clause in wheres:
        if clause is not None:
            query, count = query.where(clause), count.where(clause)
    total = session.execute(count).scalar_one()
    rows = [dict(r) for r in session.execute(
        query.order_by(referral.c.id.desc()).limit(per_page).offset((page - 1) * per_page)
    ).mappings()]
    audit.record(session, actor=actor, action="referral.list", entity_type="referral",
                 changes={"referral_ids": {"old": None, "new": [r["id"] for r in rows]}})
    return total, rows


def _names(session: Session, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Work-queue items (ids only) with client, service and organization names added."""
    def lookup(table: Any, ids: set[Any], *columns: Any) -> dict[Any, Any]:
        if not ids:
            return {}
        return {r.id: r for r in session.execute(select(table.c.id, *columns)
                                                 .where(table.c.id.in_(sorted(ids))))}

    people = lookup(client, {i["client_id"] for i in items}, client.c.name,
                    client.c.case_manager_id)
    services = lookup(service_table, {i["service_id"] for i in items}, service_table.c.name)
    orgs = lookup(organization, {i["organization_id"] for i in items}, organization.c.name)
    out = []
    for item in items:
        person = people.get(item["client_id"])
        out.append({**item, "client_name": person.name if person else "",
                    "case_manager_id": person.case_manager_id if person else None,
                    "service_name": services[item["service_id"]].name
                    if item["service_id"] in services else "",
                    "organization_name": orgs[item["organization_id"]].name
                    if item["organization_id"] in orgs else ""})
    return out


def row_view(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {**row, "status_label": STATUS_LABELS.get(row["status"], row["status"]),
            "sent": day(row.get("sent_at")), "due": day(row.get("follow_up_due_at")),
            "overdue": is_overdue(row, now), "need": need_name(row.get("need_category_id")),
            "outcome": OUTCOME_LABELS.get(row.get("follow_up_outcome") or "")}


@router.get("/dashboard", response_class=HTMLResponse, name="dashboard")
def dashboard(request: Request, user: CurrentUser, session: WriteSessionDep,
              settings: SettingsDep, show: Short = "open", who: Short = "",
              page: Annotated[int, Query(ge=1, le=10000)] = 1) -> HTMLResponse:
    """The case manager's home: what needs a look now, then the referrals by status."""
    show = show if show in TABS else "open"
    who = who if who in ("mine", "agency") else (
        "mine" if user.role == "case_manager" else "agency")
    mine = who == "mine"
    now = datetime.now(UTC)
    queue = _names(session, referrals.work_queue(session, actor=user, policy=policy(settings),
                                                 now=now))
    if mine:
        queue = [i for i in queue if i["case_manager_id"] == user.user_id]
    total, rows = referral_rows(session, actor=user, statuses=TABS[show][1], mine=mine,
                                page=page)
    pages = max(1, -(-total // PER_PAGE))

    def link(**changes: Any) -> str:
        values = {"show": show, "who": who, "page": 1, **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v and v != 1 or k == "show"})

    return templates.TemplateResponse(request, "referrals/dashboard.html", {
        "queue": [{**row_view(i, now), "reasons": [QUEUE_REASONS[r] for r in i["reasons"]]}
                  for i in queue],
        "rows": [row_view(r, now) for r in rows], "total": total, "page": page,
        "pages": pages, "tabs": [(key, label, link(show=key)) for key, (label, _) in TABS.items()],
        "show": show, "tab_label": TABS[show][0], "who": who, "mine_link": link(who="mine"),
        "agency_link": link(who="agency"),
        "nav": {"prev": link(page=page - 1) if page > 1 else None,
                "next": link(page=page + 1) if page < pages else None},
    })


# --- the refer flow ------------------------------------------------------------------------


def target_info(session: Session, *, service_at_location_id: str | None,
                service_id: str | None) -> dict[str, Any]:
    """The service (and site) a referral would go to, with names; NotFound otherwise."""
    address = hsds_tables["address"]
    if service_at_location_id:
        row = session.execute(
            select(service_at_location.c.id.label("service_at_location_id"),
                   service_table.c.id.label("service_id"),
                   service_table.c.name.label("service_name"),
                   service_table.c.organization_id, service_table.c.is_referable,
                   organization.c.name.label("organization_name"),
                   location.c.name.label("location_name"), location.c.is_confidential,
                   location.c.id.label("location_id"))
            .select_from(service_at_location
                         .join(service_table,
                               service_table.c.id == service_at_location.c.service_id)
                         .join(organization,
                               organization.c.id == service_table.c.organization_id)
                         .outerjoin(location,
                                    location.c.id == service_at_location.c.location_id))
            .where(service_at_location.c.id == service_at_location_id)
            .where(service_at_location.c.is_active, service_table.c.is_active)).mappings().first()
    elif service_id:
        row = session.execute(
            select(service_table.c.id.label("service_id"),
                   service_table.c.name.label("service_name"),
                   service_table.c.organization_id, service_table.c.is_referable,
                   organization.c.name.label("organization_name"))
            .select_from(service_table.join(
                organization, organization.c.id == service_table.c.organization_id))
            .where(service_table.c.id == service_id, service_table.c.is_active)
        ).mappings().first()
    else:
        row = None
    if row is None:
        raise NotFound("That service is not in the directory (any more): search again.",
                       field="service_at_location_id")
    info = {"service_at_location_id": None, "location_name": None, "location_id": None,
            "is_confidential": False, **dict(row), "address": None}
    if info["location_id"] and not info["is_confidential"]:
        found = session.execute(select(address.c.address_1, address.c.city,
                                       address.c.state_province, address.c.postal_code)
                                .where(address.c.location_id == info["location_id"])
                                .order_by(address.c.id)).first()
        if found:
            info["address"] = ", ".join(filter(None, [found.address_1, found.city,
                                                      found.state_province]))
    return info


def _service_need(session: Session, service_id: str) -> str:
    """The service's own first need category (the need the refer page starts with)."""
    found = session.execute(select(service_category.c.category_id)
                            .where(service_category.c.service_id == service_id)
                            .order_by(service_category.c.category_id)).scalars().all()
    tree = category_tree()
    return next((c for c in found if tree.get(c)), "")


def caseload(session: Session, *, actor: Principal, limit: int = 200) -> list[dict[str, Any]]:
    """The clients to choose from: the actor's caseload (a supervisor's: the agency's), the
    most recently active first (their last referral, else when they were added); audited."""
    last = (select(referral.c.client_id, func.max(referral.c.created_at).label("last_at"))
            .group_by(referral.c.client_id).subquery())
    query = (select(client.c.id, client.c.name, client.c.date_of_birth)
             .select_from(client.outerjoin(last, last.c.client_id == client.c.id))
             .where(client.c.agency_id == actor.agency_id))
    if actor.role == "case_manager":
        query = query.where(client.c.case_manager_id == actor.user_id)
    rows = [dict(r) for r in session.execute(
        query.order_by(func.coalesce(last.c.last_at, client.c.created_at).desc(),
                       client.c.id.desc()).limit(limit)).mappings()]
    audit.record(session, actor=actor, action="client.list", entity_type="agency",
                 entity_id=actor.agency_id,
                 changes={"client_ids": {"old": None, "new": [r["id"] for r in rows]}})
    return rows


def consent_view(row: dict[str, Any]) -> dict[str, Any]:
    labels = dict(SHARES)
    return {**row, "shares_text": ", ".join(labels.get(s, s) for s in row["shares"]),
            "given": day(row["given_at"]), "expires": day(row.get("expires_at")),
            "notice": clients.PART2_NOTICE if row["is_part2"] else None}


def _new_page(request: Request, session: Session, user: Principal, *, form: dict[str, Any],
              errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    """The refer page for `form` (what the user chose or typed so far)."""
    target = target_info(session, service_at_location_id=form["service_at_location_id"],
                         service_id=form["service_id"])
    person, covering, choices = None, [], []
    client_id = parse_int(form["client_id"])
    if client_id is not None:
        person = clients.get_client(session, actor=user, client_id=client_id)
        covering = [consent_view(c) for c in referrals.covering_consents(
            session, client_id=client_id, organization_id=target["organization_id"])]
    if client_id is None or form["choose"]:
        choices = caseload(session, actor=user)
    need = form["need"] if category_tree().get(form["need"] or "") else \
        _service_need(session, target["service_id"])
    purpose = form["purpose"] or f"Referral to {target['service_name']}"
    days = policy(request.app.state.settings).days
    return templates.TemplateResponse(request, "referrals/new.html", {
        "target": target, "person": person, "covering": covering, "choices": choices,
        "form": {**form, "need": need, "purpose": purpose,
                 "urgency": form["urgency"] if form["urgency"] in dict(URGENCIES) else "soon"},
        "errors": errors or {}, "need_options": need_options(),
        "urgencies": [(k, label, days[k]) for k, label in URGENCIES], "shares": SHARES,
        "initials": initials(person["name"]) if person else None,
        "part2_notice": clients.PART2_NOTICE,
        "back": form.get("back") or "",
    }, status_code=status)


def _blank_form(**values: Any) -> dict[str, Any]:
    form = {"client_id": "", "service_at_location_id": "", "service_id": "", "need": "",
            "urgency": "soon", "note": "", "consent_given": False,
            "shares": list(REFERRAL_SHARES), "purpose": "", "is_part2": False,
            "consent_expires": "", "back": "", "choose": False}
    form.update({k: v for k, v in values.items() if v is not None})
    return form


@router.get("/referrals/new", response_class=HTMLResponse, name="referral_new")
def referral_new(request: Request, user: CurrentUser, session: WriteSessionDep,
                 client: Short = "", service_at_location: Short = "", service: Short = "",
                 need: Short = "", urgency: Short = "soon",
                 back: Annotated[str, Query(max_length=1000)] = "") -> HTMLResponse:
    """One page to confirm a referral: client, service, need, urgency, note, consent."""
    return _new_page(request, session, user, form=_blank_form(
        client_id=client, service_at_location_id=service_at_location, service_id=service,
        need=need, urgency=urgency, back=back, choose=not client))


def expiry(value: str) -> datetime | None:
    value = value.strip()
    if not value:
        return None
    return datetime.combine(date.fromisoformat(value), time(23, 59, 59), tzinfo=UTC)


def _field_of(exc: Exception) -> str:
    field = getattr(exc, "field", None) or "form"
    return {"service_id": "service", "service_at_location_id": "service",
            "shared_with_organization_id": "consent", "shared_with_name": "consent",
            "expires_at": "consent_expires", "given_at": "consent_expires"}.get(field, field)


@router.post("/referrals", name="referral_send")
def referral_send(
    request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep,
    client_id: Annotated[str, Form(max_length=12)] = "",
    service_at_location_id: Annotated[str, Form(max_length=64)] = "",
    service_id: Annotated[str, Form(max_length=64)] = "",
    need: Annotated[str, Form(max_length=100)] = "",
    urgency: Annotated[str, Form(max_length=16)] = "soon",
    note: Annotated[str, Form(max_length=4000)] = "",
    consent_given: Annotated[bool, Form()] = False,
    shares: Annotated[list[str], Form(max_length=7)] = [],  # noqa: B006
    purpose: Annotated[str, Form(max_length=1000)] = "",
    is_part2: Annotated[bool, Form()] = False,
    consent_expires: Annotated[str, Form(max_length=10)] = "",
    back: Annotated[str, Form(max_length=1000)] = "",
    choose: Annotated[bool, Form()] = False,
) -> Response:
    """Send the referral (recording the consent first when the form carries one)."""
    form = _blank_form(client_id=client_id, service_at_location_id=service_at_location_id,
                       service_id=service_id, need=need, urgency=urgency, note=note,
                       consent_given=consent_given, shares=shares, purpose=purpose,
                       is_part2=is_part2, consent_expires=consent_expires, back=back,
                       choose=choose)
    target = target_info(session, service_at_location_id=service_at_location_id or None,
                         service_id=service_id or None)
    errors: dict[str, str] = {}
    person_id = parse_int(client_id)
    if person_id is None:
        errors["client_id"] = "Choose the client to refer."
    if not category_tree().get(need):
        errors["need"] = "Choose what the client needs."
    if urgency not in dict(URGENCIES):
        errors["urgency"] = "Choose how urgent it is."
    consent = None
    if consent_given:
        if not shares:
            errors["shares"] = "Tick what the client agreed to share."
        if not purpose.strip():
            errors["purpose"] = "Say what the consent is for."
        try:
            expires = expiry(consent_expires)
        except ValueError:
            errors["consent_expires"] = "Give the end date as a date (e.g. 2026-06-30)."
            expires = None
        if not errors:
            try:
                consent = ConsentCreate(shares=shares, purpose=purpose.strip(),
                                        shared_with_organization_id=target["organization_id"],
                                        is_part2=is_part2, expires_at=expires)
            except ValidationError:
                errors["shares"] = "Tick only the listed kinds of information."
    if errors:
        return _new_page(request, session, user, form=form, errors=errors, status=422)
    try:
        with session.begin_nested():
            if consent is not None:
                clients.add_consent(session, actor=user, client_id=person_id, data=consent)
            created = referrals.create_referral(
                session, actor=user, policy=policy(settings),
                public_base_url=settings.public_base_url,
                data=ReferralCreate(client_id=person_id, need=need, urgency=urgency,
                                    service_at_location_id=service_at_location_id or None,
                                    service_id=None if service_at_location_id else service_id,
                                    note=note.strip() or None, send=True))
    except BadRequest as exc:
        field = _field_of(exc)
        message = exc.message
        if field == "consent":
            message = (f"There is no consent on record to share this client's information with "
                       f"{target['organization_name']}. Record the consent the client gave "
                       "below, or refer them elsewhere.")
        return _new_page(request, session, user, form={**form, "consent_given": False},
                         errors={field: message}, status=422)
    response = RedirectResponse(f"/referrals/{created['id']}", status_code=303)
    flash(response, request, f"Referral sent to {target['organization_name']}.")
    return response


# --- one referral --------------------------------------------------------------------------


def _actions(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The moves the agency may make from the referral's status, as small forms."""
    out = []
    for (frm, to), side in referrals.TRANSITIONS.items():
        if frm != row["status"]:
            continue
        if side == referrals.AGENCY or (row["is_logged"] and side == referrals.PARTNER):
            needs = to in referrals.REASON_REQUIRED
            out.append({"to": to, "label": ACTION_LABELS[to], "needs_reason": needs,
                        "reasons": [(c, REASON_LABELS[c]) for c in REASON_CODES]
                        if needs or to == "entered-in-error" else []})
    return out


def _timeline(session: Session, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = {e["actor_user_id"] for e in events if e.get("actor_user_id")}
    names = dict(session.execute(select(app_user.c.id, app_user.c.username)
                                 .where(app_user.c.id.in_(sorted(ids))))
                 .all()) if ids else {}
    out = []
    for event in events:
        detail = event.get("detail") or {}
        role = (event.get("actor_role") or "").replace("_", " ")
        who = names.get(event.get("actor_user_id"))
        if event["kind"] == "created":
            what = "Created"
        elif event["kind"] == "follow_up":
            what = "Follow-up: " + OUTCOME_LABELS.get(detail.get("outcome"), "recorded")
            if detail.get("contact_method"):
                what += f" (by {dict(CONTACT_METHODS).get(detail['contact_method'], '')})"
        else:
            what = (f"{STATUS_LABELS.get(event['from_status'], event['from_status'])} → "
                    f"{STATUS_LABELS.get(event['to_status'], event['to_status'])}")
        out.append({"seq": event["seq"], "when": moment(event["at"]),
                    "at": event["at"].isoformat(), "what": what,
                    "who": f"{who} ({role})" if who else role or "someone",
                    "reason": REASON_SHOWN.get(event.get("reason_code") or ""),
                    "reason_text": event.get("reason_text")})
    return out


def _partner_answer(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    answers = [e for e in events if e["kind"] == "transition" and e.get("actor_role") == "partner"]
    if not answers:
        return None
    last = answers[-1]
    return {"status": STATUS_LABELS.get(last["to_status"], last["to_status"]),
            "when": moment(last["at"]), "reason": REASON_SHOWN.get(last.get("reason_code") or ""),
            "reason_text": last.get("reason_text")}


def _detail_page(request: Request, session: Session, user: Principal, *, referral_id: int,
                 errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                 status: int = 200) -> HTMLResponse:
    found = referrals.get_referral(session, actor=user, referral_id=referral_id)
    target = target_info(session, service_at_location_id=found["service_at_location_id"],
                         service_id=found["service_id"]) if found["service_id"] else None
    now = datetime.now(UTC)
    return templates.TemplateResponse(request, "referrals/detail.html", {
        "referral": found, "target": target,
        "status_label": STATUS_LABELS.get(found["status"], found["status"]),
        "sent": moment(found["sent_at"]), "due": day(found["follow_up_due_at"]),
        "overdue": is_overdue(found, now), "need": found["need"]["name"],
        "urgency": dict(URGENCIES).get(found["urgency"], found["urgency"]),
        "outcome": OUTCOME_LABELS.get(found["follow_up_outcome"] or ""),
        "timeline": _timeline(session, found["events"]),
        "answer": _partner_answer(found["events"]), "actions": _actions(found),
        "can_follow_up": found["status"] not in referrals.NO_FOLLOW_UP,
        "outcomes": OUTCOMES, "contact_methods": CONTACT_METHODS,
        "errors": errors or {}, "form": form or {},
    }, status_code=status)


@router.get("/referrals/{referral_id}", response_class=HTMLResponse, name="referral_page")
def referral_page(request: Request, referral_id: ReferralId, user: CurrentUser,
                  session: WriteSessionDep) -> HTMLResponse:
    """One referral: status, timeline, the partner's answer, actions, follow-up."""
    return _detail_page(request, session, user, referral_id=referral_id)


def _stale(request: Request, referral_id: int, message: str = STALE) -> Response:
    response = RedirectResponse(f"/referrals/{referral_id}", status_code=303)
    flash(response, request, message, kind="error")
    return response


@router.post("/referrals/{referral_id}/transition", name="referral_transition")
def referral_transition(
    request: Request, referral_id: ReferralId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep,
    to: Annotated[str, Form(max_length=32)] = "",
    expected_version: Annotated[str, Form(max_length=12)] = "",
    reason_code: Annotated[str, Form(max_length=32)] = "",
    reason_text: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Cancel, mark entered-in-error, send a draft (or record a logged referral's answer)."""
    form = {"to": to, "reason_code": reason_code, "reason_text": reason_text}
    try:
        data = TransitionIn(to=to, expected_version=parse_int(expected_version) or 0,
                            reason_code=reason_code or None, reason_text=reason_text or None)
    except ValidationError:
        return _stale(request, referral_id, "That action is not available here: here is the "
                                            "referral as it is now.")
    try:
        with session.begin_nested():
            referrals.transition(session, actor=user, referral_id=referral_id, data=data,
                                 policy=policy(settings),
                                 public_base_url=settings.public_base_url)
    except Conflict:
        return _stale(request, referral_id)
    except InvalidTransition:
        return _stale(request, referral_id)
    except BadRequest as exc:
        field = _field_of(exc)
        if field not in ("reason_code", "reason_text"):
            field = "action"
        return _detail_page(request, session, user, referral_id=referral_id,
                            errors={f"{to}:{field}": exc.message}, form=form, status=422)
    response = RedirectResponse(f"/referrals/{referral_id}", status_code=303)
    flash(response, request, f"Done: the referral is now "
                             f"{STATUS_LABELS.get(to, to).lower()}.")
    return response


@router.post("/referrals/{referral_id}/follow-up", name="referral_follow_up")
def referral_follow_up(
    request: Request, referral_id: ReferralId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep,
    outcome: Annotated[str, Form(max_length=32)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    contact_method: Annotated[str, Form(max_length=32)] = "",
    expected_version: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    """Record what the client said when the case manager checked back."""
    form = {"outcome": outcome, "reason": reason, "contact_method": contact_method}
    errors = {}
    if outcome not in dict(OUTCOMES):
        errors["outcome"] = "Say whether the client got help."
    if contact_method and contact_method not in dict(CONTACT_METHODS):
        errors["contact_method"] = "Choose how you reached the client."
    if errors:
        return _detail_page(request, session, user, referral_id=referral_id, errors=errors,
                            form=form, status=422)
    data = FollowUpIn(outcome=outcome, reason=reason.strip() or None,
                      contact_method=contact_method or None,
                      expected_version=parse_int(expected_version))
    try:
        with session.begin_nested():
            referrals.record_follow_up(session, actor=user, referral_id=referral_id,
                                       data=data, policy=policy(settings))
    except Conflict:
        return _stale(request, referral_id)
    except InvalidTransition as exc:
        return _stale(request, referral_id, exc.message)
    response = RedirectResponse(f"/referrals/{referral_id}", status_code=303)
    flash(response, request, "Follow-up recorded: "
                             f"{OUTCOME_LABELS[outcome][0].lower()}{OUTCOME_LABELS[outcome][1:]}.")
    return response
