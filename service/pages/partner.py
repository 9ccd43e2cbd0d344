"""The partner portal: the referral inbox, one referral with its timeline, and "My listings".

The inbox lists the referrals sent to the partner's organizations (the scope of
`service.referrals.service.scope`), newest first, by status tab; each shows what
`referrals.get_referral` lets a partner see (a first name until they accept, more as far as the
client's consent goes), so every referral shown is an audited read. Every answer is a small form
posting to `/partner/referrals/{id}/transition` with the version the page showed, through the
same `referrals.transition` as the API: a stale version says so and shows the referral again.

"My listings" lists the services of the partner's organizations (`listing_edits.partner_listings`)
with a one-click "Still accurate" (`verify_service`); a listing's edit page has one small form
per part (details, status, hours, eligibility, capacity per site), each sending only what
changed through `listing_edits.edit_service` with the listing's version, like
`PATCH /api/v1/services/{id}`: searches show it at once, or it waits for an admin when partner
edits need approval. Another organization's listing is refused (403, naming it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.deps import CurrentUser, SessionDep, SettingsDep, WriteSessionDep
from service.directory import edits, listing_edits
from service.directory.eligibility import DOCUMENTS, GENDERS, POPULATIONS, RESTRICTION, Eligibility
from service.directory.schemas import HoursIn, ServiceEdit
from service.directory.tables import location, organization, service, service_at_location
from service.errors import BadRequest, Conflict, Forbidden, InvalidTransition, NotFound
from service.pages.session import flash, safe_next
from service.referrals import service as referrals
from service.referrals.schemas import TransitionIn
from service.referrals.tables import referral
from service.search.api import BackendDep
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 20
ReferralId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ServiceId = Annotated[str, Path(max_length=64)]

# The inbox's tabs: key -> (label, the statuses it holds).
TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "new": ("New", ("requested",)),
    "accepted": ("Accepted", ("accepted",)),
    "in_progress": ("In progress", ("in-progress", "on-hold")),
    "closed": ("Closed", ("completed", "failed", "rejected", "cancelled", "entered-in-error")),
}
STATUS_LABELS = {
    "draft": "Draft", "requested": "New", "accepted": "Accepted", "in-progress": "In progress",
    "on-hold": "On hold", "completed": "Completed", "failed": "Did not work out",
    "rejected": "Declined", "cancelled": "Cancelled by the agency",
    "entered-in-error": "Entered in error",
}
REASON_LABELS = {
    "no_capacity": "No capacity", "not_eligible": "Not eligible",
    "could_not_contact": "Couldn't contact the client", "client_declined": "Client declined",
    "got_help": "Got help", "duplicate": "Duplicate referral", "other": "Other (say why)",
}
URGENCY_LABELS = {"urgent": "Urgent", "soon": "Soon", "routine": "Routine"}
CONTACT_LABELS = {"phone": "Phone", "text": "Text message", "email": "Email", "mail": "Mail",
                  "in_person": "In person", "do_not_contact": "Do not contact"}
OUTCOME_LABELS = {"got_help": "the client got help",
                  "did_not_get_help": "the client did not get help",
                  "unknown": "not known yet"}
ROLE_LABELS = {"partner": "Your organization", "case_manager": "The referring agency",
               "supervisor": "The referring agency", "admin": "A directory admin"}


@dataclass(frozen=True)
class Action:
    """One answer a partner can give from a status: a button, or a small form with a reason."""

    key: str
    to: str
    label: str
    reasons: tuple[str, ...] = ()  # reason codes offered; a reason is then required

    @property
    def needs_reason(self) -> bool:
        return bool(self.reasons)


ACCEPT = Action("accept", "accepted", "Accept")
DECLINE = Action("decline", "rejected", "Decline",
                 ("no_capacity", "not_eligible", "could_not_contact", "client_declined",
                  "duplicate", "other"))
START = Action("start", "in-progress", "Start")
RESUME = Action("resume", "in-progress", "Resume")
HOLD = Action("hold", "on-hold", "Put on hold",
              ("no_capacity", "could_not_contact", "client_declined", "other"))
COMPLETE = Action("complete", "completed", "Complete")
FAIL = Action("fail", "failed", "Did not work out",
              ("could_not_contact", "client_declined", "not_eligible", "no_capacity", "other"))
ACTIONS: dict[str, tuple[Action, ...]] = {
    "requested": (ACCEPT, DECLINE),
    "accepted": (START, HOLD, DECLINE),
    "in-progress": (COMPLETE, HOLD, FAIL),
    "on-hold": (RESUME, FAIL),
}
# What the flash says after each answer: "Referral 12 {…}."
DONE = {"accepted": "accepted", "rejected": "declined", "in-progress": "is in progress",
        "on-hold": "is on hold", "completed": "completed",
        "failed": "closed: it did not work out"}
STALE = ("This referral changed since you opened it. Here it is as it is now: check it and try "
         "again.")


# --- values for the templates ---------------------------------------------------------------


def _names(session: Session, rows: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Names of the services, sites and organizations the referrals went to."""
    found: dict[str, dict[str, str]] = {"service": {}, "location": {}, "organization": {}}
    for kind, table, key in (("service", service, "service_id"),
                             ("location", location, "location_id"),
                             ("organization", organization, "organization_id")):
        ids = sorted({r[key] for r in rows if r.get(key)})
        if ids:
            found[kind] = dict(session.execute(select(table.c.id, table.c.name)
                                               .where(table.c.id.in_(ids))).all())
    return found


def _when(value: datetime | None) -> str:
    return value.strftime("%b %-d, %Y %H:%M UTC") if value else ""


def _timeline(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The referral's events in plain words. A follow-up shows its outcome only: the case
    manager's own notes about the client stay with the agency."""
    items = []
    for e in events:
        if e["kind"] == "created":
            text = "Referral made"
        elif e["kind"] == "follow_up":
            outcome = (e.get("detail") or {}).get("outcome")
            text = f"The agency followed up: {OUTCOME_LABELS.get(outcome, 'recorded')}"
        elif e["to_status"] == "requested":
            text = "Sent to your organization"
        else:
            text = f"{STATUS_LABELS.get(e['from_status'], e['from_status'])} → " \
                   f"{STATUS_LABELS.get(e['to_status'], e['to_status'])}"
        items.append({
            "seq": e["seq"], "at": e["at"], "when": _when(e["at"]), "text": text,
            "who": ROLE_LABELS.get(e.get("actor_role") or "", "Signpost"),
            "reason": REASON_LABELS.get(e["reason_code"] or "") if e["kind"] == "transition"
            else None,
            "reason_text": e["reason_text"] if e["kind"] == "transition" else None,
        })
    return items


def view(detail: dict[str, Any], names: dict[str, dict[str, str]]) -> dict[str, Any]:
    """A referral as the partner pages show it."""
    person = detail["client"]
    service_name = names["service"].get(detail["service_id"], "A service")
    site = names["location"].get(detail["location_id"] or "")
    return {
        "id": detail["id"], "version": detail["version"], "status": detail["status"],
        "status_label": STATUS_LABELS.get(detail["status"], detail["status"]),
        "need": detail["need"]["name"], "urgency": detail["urgency"],
        "urgency_label": URGENCY_LABELS.get(detail["urgency"], detail["urgency"]),
        "client": person,
        "contact": CONTACT_LABELS.get(person.get("contact_preference") or "",
                                      person.get("contact_preference")),
        "service": service_name,
        "site": site if site != service_name else None,  # a site named as its service
        "organization": names["organization"].get(detail["organization_id"], ""),
        "sent": _when(detail["sent_at"]), "note": detail.get("note"),
        "redisclosure_notice": detail.get("redisclosure_notice"),
        "actions": ACTIONS.get(detail["status"], ()),
        "timeline": _timeline(detail.get("events") or []),
    }


def _tab_counts(session: Session, *, actor: Principal) -> dict[str, int]:
    """How many of the partner's referrals each tab holds (counts only: no client data)."""
    allowed = referrals.scope(session, actor=actor)
    query = select(referral.c.status, func.count()).group_by(referral.c.status)
    if allowed is not None:
        query = query.where(allowed)
    by_status = dict(session.execute(query).all())
    return {key: sum(by_status.get(s, 0) for s in statuses)
            for key, (_, statuses) in TABS.items()}


def _inbox_ids(session: Session, *, actor: Principal, statuses: tuple[str, ...],
               page: int) -> list[int]:
    allowed = referrals.scope(session, actor=actor)
    query = select(referral.c.id).where(referral.c.status.in_(statuses))
    if allowed is not None:
        query = query.where(allowed)
    return list(session.execute(query.order_by(referral.c.id.desc()).limit(PER_PAGE)
                                .offset((page - 1) * PER_PAGE)).scalars())


def _referral_page(request: Request, session: Session, *, user: Principal, referral_id: int,
                   error: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    detail = referrals.get_referral(session, actor=user, referral_id=referral_id)
    return templates.TemplateResponse(request, "partner/referral.html", {
        "r": view(detail, _names(session, [detail])), "reasons": REASON_LABELS,
        "error": error, "next": f"/partner/referrals/{referral_id}"}, status_code=status)


# --- the inbox ------------------------------------------------------------------------------


@router.get("/partner", response_class=HTMLResponse, name="partner_home")
def partner_home(request: Request, user: CurrentUser, session: WriteSessionDep,
                 tab: Annotated[str, Query(max_length=16)] = "new",
                 page: Annotated[int, Query(ge=1, le=10000)] = 1) -> HTMLResponse:
    """The referral inbox, newest first, by status tab; the actions on each referral."""
    if tab not in TABS:
        tab = "new"
    counts = _tab_counts(session, actor=user)
    ids = _inbox_ids(session, actor=user, statuses=TABS[tab][1], page=page)
    details = [referrals.get_referral(session, actor=user, referral_id=i) for i in ids]
    names = _names(session, details)
    here = f"/partner?tab={tab}" + (f"&page={page}" if page > 1 else "")
    pages = max(1, -(-counts[tab] // PER_PAGE))
    nav = {"prev": f"/partner?tab={tab}&page={page - 1}" if page > 1 else None,
           "next": f"/partner?tab={tab}&page={page + 1}" if page < pages else None}
    return templates.TemplateResponse(request, "partner/inbox.html", {
        "tabs": [{"key": k, "label": label, "count": counts[k]} for k, (label, _) in
                 TABS.items()],
        "tab": tab, "tab_label": TABS[tab][0], "page": page, "pages": pages, "nav": nav,
        "items": [view(d, names) for d in details], "reasons": REASON_LABELS,
        "next": here, "error": None})


@router.get("/partner/referrals/{referral_id}", response_class=HTMLResponse,
            name="partner_referral")
def partner_referral(request: Request, referral_id: ReferralId, user: CurrentUser,
                     session: WriteSessionDep) -> HTMLResponse:
    """One referral: what the partner may see of the client, the timeline, the actions."""
    return _referral_page(request, session, user=user, referral_id=referral_id)


@router.post("/partner/referrals/{referral_id}/transition", response_class=HTMLResponse)
def partner_transition(
    request: Request, referral_id: ReferralId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep,
    to: Annotated[str, Form(max_length=32)] = "",
    version: Annotated[int, Form(ge=1, le=2**31 - 1)] = 1,
    reason_code: Annotated[str, Form(max_length=32)] = "",
    reason_text: Annotated[str, Form(max_length=2000)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    """Answer a referral: accept, decline, start, hold, resume, complete, or close as failed."""
    here = f"/partner/referrals/{referral_id}"
    needs_reason = to in referrals.REASON_REQUIRED
    if to not in DONE:
        raise BadRequest("that is not an answer a partner can give", field="to")
    reason_text = reason_text.strip()
    asked = {"referral_id": referral_id, "to": to, "reason_code": reason_code,
             "reason_text": reason_text}
    problem = None
    if needs_reason and reason_code not in REASON_LABELS:
        problem = {"field": "reason_code", "message": "Choose a reason."}
    elif reason_code == "other" and not reason_text:
        problem = {"field": "reason_text", "message": "Say why, in a few words."}
    if problem:
        return _referral_page(request, session, user=user, referral_id=referral_id,
                              status=422, error={**asked, **problem})
    try:
        referrals.transition(
            session, actor=user, referral_id=referral_id,
            data=TransitionIn(to=to, expected_version=version,
                              reason_code=reason_code if needs_reason else None,
                              reason_text=reason_text or None),
            policy=referrals.FollowUpPolicy.from_settings(settings),
            public_base_url=settings.public_base_url)
    except (Conflict, InvalidTransition) as exc:
        # Somebody (or another tab) moved it first: show it as it is now.
        response = RedirectResponse(here, status_code=303)
        flash(response, request, STALE if isinstance(exc, Conflict) else exc.message, "error")
        return response
    except BadRequest as exc:
        field = exc.field if exc.field in ("reason_code", "reason_text") else "reason_code"
        return _referral_page(request, session, user=user, referral_id=referral_id,
                              status=422, error={**asked, "field": field,
                                                 "message": exc.message})
    response = RedirectResponse(safe_next(next_url, here), status_code=303)
    flash(response, request, f"Referral {referral_id} {DONE[to]}.")
    return response


# --- my listings ----------------------------------------------------------------------------

DAYS = (("MO", "Monday"), ("TU", "Tuesday"), ("WE", "Wednesday"), ("TH", "Thursday"),
        ("FR", "Friday"), ("SA", "Saturday"), ("SU", "Sunday"))
DAY_ORDER = [code for code, _ in DAYS]
BLANK_HOURS_ROWS = 3
CAPACITY_LABELS = {"has_capacity": "Has capacity", "no_capacity": "No capacity now",
                   "waitlist": "Waitlist", "assessment_needed": "Assessment needed first"}
LISTING_STATUSES = {"active": "Active: taking referrals",
                    "temporarily closed": "Temporarily closed",
                    "active do not refer": "Active, but do not send referrals"}
GENDER_LABELS = {g: g.capitalize() for g in GENDERS}
POPULATION_LABELS = {p: p.replace("_", " ").capitalize()
                     .replace("Lgbtq", "LGBTQ").replace("hiv", "HIV") for p in POPULATIONS}
DOCUMENT_LABELS = {d: d.replace("_", " ").capitalize().replace("Tb ", "TB ")
                   .replace("id", "ID") for d in DOCUMENTS}
DETAIL_FIELDS = (("name", "Name"), ("alternate_name", "Other name"),
                 ("description", "What it offers"), ("email", "Email"), ("url", "Web page"),
                 ("fees_description", "Fees"), ("application_process", "How to apply"))
STALE_LISTING = ("This listing changed since you opened it (someone else saved an edit). Here "
                 "it is as it is now: make your change again.")
SERVICE_HOURS = {"service_id": None, "location_id": None, "service_at_location_id": None}


def _iso(value: datetime) -> str:
    """A listing's version as the form carries it (SQLite gives naive UTC datetimes back)."""
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            ).isoformat()


def _clock(value: Any) -> str:
    """A stored opening time as the form's HH:MM."""
    return str(value or "")[:5]


def _hours_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Weekly rules as one form row per day; and the rows the form cannot show (monthly
    rules, closures), which saving replaces."""
    shown, other = [], []
    for row in rows:
        days = [d for d in (row.get("byday") or "").split(",") if d in DAY_ORDER]
        weekly = (row.get("freq") or "WEEKLY").upper() == "WEEKLY" and days and \
            row.get("opens_at") and row.get("closes_at") and not row.get("is_closure")
        if not weekly:
            other.append(row)
            continue
        shown += [{"day": d, "opens": _clock(row["opens_at"]), "closes": _clock(row["closes_at"]),
                   "description": row.get("description") or ""} for d in days]
    shown.sort(key=lambda r: (DAY_ORDER.index(r["day"]), r["opens"]))
    return shown, other


def _eligibility(svc: dict[str, Any]) -> dict[str, Any]:
    raw = svc["eligibility"]
    parsed = Eligibility.from_dict(json.loads(raw) if isinstance(raw, str) else raw or {})
    restricted_genders = parsed.genders if parsed.gender_kind == RESTRICTION else []
    restricted_pops = parsed.required_populations or (
        parsed.populations if parsed.population_kind == RESTRICTION else [])
    return {"description": svc["eligibility_description"] or "",
            "min_age": "" if svc["minimum_age"] is None else str(svc["minimum_age"]),
            "max_age": "" if svc["maximum_age"] is None else str(svc["maximum_age"]),
            "genders": list(restricted_genders), "populations": list(restricted_pops),
            "documents": list(parsed.documents),
            "focus": [GENDER_LABELS.get(g, g) for g in parsed.genders
                      if parsed.gender_kind != RESTRICTION]
            + [POPULATION_LABELS.get(p, p) for p in parsed.populations
               if p not in restricted_pops]}


def _listing(session: Session, *, actor: Principal, service_id: str) -> dict[str, Any]:
    """The service as its edit page shows it, with the version to send back; 404 if absent
    or hidden, 403 if it is another organization's (as `listing_edits` answers an edit)."""
    row = session.execute(select(service).where(service.c.id == service_id)).mappings().first()
    reach = listing_edits.reach_of(session, actor=actor)
    if row is None or not row["is_active"] or (
            row["is_hidden"] and not reach.organization(row["organization_id"])):
        raise NotFound(f"no service with id {service_id!r}", field="service_id")
    svc = dict(row)
    org_name = session.execute(select(organization.c.name).where(
        organization.c.id == svc["organization_id"])).scalar() or "another organization"
    if not reach.organization(svc["organization_id"]):
        raise Forbidden(f"this listing belongs to {org_name}, which your account does not "
                        "speak for; an admin can link your account to it", field="service_id")
    hours, other = _hours_rows(edits.read_child_rows(
        session, table="schedule", where={**SERVICE_HOURS, "service_id": service_id}))
    languages = edits.read_child_rows(session, table="language", where={
        "service_id": service_id, "location_id": None, "phone_id": None})
    sites = []
    for sal in session.execute(
            select(service_at_location.c.id, service_at_location.c.location_id,
                   service_at_location.c.capacity_status,
                   service_at_location.c.capacity_updated_at,
                   location.c.name.label("location_name"))
            .outerjoin(location, location.c.id == service_at_location.c.location_id)
            .where(service_at_location.c.service_id == service_id)
            .where(service_at_location.c.is_active)
            .order_by(location.c.name, service_at_location.c.id)).mappings():
        if not reach.site(svc["organization_id"], sal["location_id"]):
            continue
        site_hours, site_other = _hours_rows(edits.read_child_rows(
            session, table="schedule", where={"service_at_location_id": sal["id"]}))
        sites.append({"id": sal["id"], "name": sal["location_name"] or "A site",
                      "capacity": sal["capacity_status"] or "",
                      "capacity_label": CAPACITY_LABELS.get(sal["capacity_status"] or ""),
                      "capacity_updated": _when(sal["capacity_updated_at"]),
                      "hours": site_hours, "other_hours": site_other})
    status = "active do not refer" if svc["status"] == "active" and not svc["is_referable"] \
        else svc["status"]
    return {
        "id": service_id, "name": svc["name"], "organization": org_name,
        "version": _iso(svc["updated_at"]),
        "details": {name: svc[name] or "" for name, _ in DETAIL_FIELDS},
        "languages": ", ".join(r.get("code") or r.get("name") or "" for r in languages),
        "status": status, "hours": hours, "other_hours": other, "sites": sites,
        "eligibility": _eligibility(svc), "verified": _when(svc["verified_at"]),
        "verified_by": svc["verified_by"],
    }


@router.get("/partner/listings", response_class=HTMLResponse, name="partner_listings")
def partner_listings(request: Request, user: CurrentUser, session: SessionDep,
                     settings: SettingsDep,
                     page: Annotated[int, Query(ge=1, le=10000)] = 1) -> HTMLResponse:
    """The services of the partner's organizations: confirm each in one click, or edit it."""
    total, items = listing_edits.partner_listings(session, actor=user,
                                                  stale_days=settings.stale_listing_days,
                                                  page=page, per_page=PER_PAGE)
    pages = max(1, -(-total // PER_PAGE))
    return templates.TemplateResponse(request, "partner/listings.html", {
        "items": [{**i, "verified": _when(i["verified_at"]),
                   "status_label": LISTING_STATUSES.get(i["status"], i["status"]),
                   "sites": [{**s, "capacity_label": CAPACITY_LABELS.get(
                       s["capacity_status"] or "")} for s in i["sites"]]} for i in items],
        "total": total, "page": page, "pages": pages,
        "nav": {"prev": f"/partner/listings?page={page - 1}" if page > 1 else None,
                "next": f"/partner/listings?page={page + 1}" if page < pages else None},
        "stale_days": settings.stale_listing_days,
        "requires_approval": settings.partner_edits_require_approval})


def _edit_page(request: Request, session: Session, *, user: Principal, settings: Any,
               service_id: str, errors: dict[str, str] | None = None,
               form: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    listing = _listing(session, actor=user, service_id=service_id)
    _, pending = listing_edits.list_edits(session, actor=user, status="pending",
                                          service_id=service_id, per_page=10)
    return templates.TemplateResponse(request, "partner/listing.html", {
        "s": listing, "form": form or {}, "errors": errors or {}, "days": DAYS,
        "blank_rows": BLANK_HOURS_ROWS, "capacities": CAPACITY_LABELS,
        "statuses": LISTING_STATUSES, "genders": GENDER_LABELS,
        "populations": POPULATION_LABELS, "documents": DOCUMENT_LABELS,
        "detail_fields": DETAIL_FIELDS, "pending": pending,
        "requires_approval": settings.partner_edits_require_approval}, status_code=status)


@router.get("/partner/listings/{service_id}", response_class=HTMLResponse,
            name="partner_listing")
def partner_listing(request: Request, service_id: ServiceId, user: CurrentUser,
                    session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """Edit one listing: details, hours, eligibility, capacity per site, status."""
    return _edit_page(request, session, user=user, settings=settings, service_id=service_id)


def _saved(request: Request, service_id: str, what: str, result: dict[str, Any]) -> Response:
    edit = result.get("edit")
    if edit is None:
        message = f"{what}: nothing changed."
    elif edit["status"] == "pending":
        message = (f"{what} sent for approval: an admin checks partners' edits before they "
                   "show. The listing keeps its old values until then.")
    else:
        message = f"{what} saved. Searches show the change now."
    return _redirect(request, f"/partner/listings/{service_id}", message)


def _redirect(request: Request, target: str, message: str, kind: str = "info") -> Response:
    response = RedirectResponse(target, status_code=303)
    flash(response, request, message, kind)
    return response


def _version(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _save(request: Request, session: Session, *, user: Principal, settings: Any, search: Any,
          service_id: str, what: str, changes: dict[str, Any], version: str,
          form: dict[str, Any]) -> Response:
    """Send `changes` through `listing_edits.edit_service`; a problem re-renders the page with
    the message by its field (422), a stale version reloads it."""
    here = f"/partner/listings/{service_id}"
    try:
        data = ServiceEdit(expected_updated_at=_version(version), **changes)
        result = listing_edits.edit_service(
            session, actor=user, service_id=service_id, data=data,
            require_approval=settings.partner_edits_require_approval, search=search)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "form"
        message = first["msg"].removeprefix("Value error, ")
        return _edit_page(request, session, user=user, settings=settings,
                          service_id=service_id, status=422, form=form,
                          errors={field: message[:1].upper() + message[1:] + "."})
    except Conflict:
        return _redirect(request, here, STALE_LISTING, "error")
    except (listing_edits.Invalid, BadRequest) as exc:
        return _edit_page(request, session, user=user, settings=settings,
                          service_id=service_id, status=422, form=form,
                          errors={exc.field or "form": exc.message[:1].upper()
                                  + exc.message[1:] + "."})
    return _saved(request, service_id, what, result)


@router.post("/partner/listings/{service_id}/verify")
def partner_verify(request: Request, service_id: ServiceId, user: CurrentUser,
                   session: SessionDep, search: BackendDep,
                   next_url: Annotated[str, Form(alias="next", max_length=500)] = ""
                   ) -> Response:
    """"Still accurate": the listing is confirmed now, in one click."""
    _listing(session, actor=user, service_id=service_id)  # 404 / 403 as the edit page
    listing_edits.verify_service(session, actor=user, service_id=service_id, search=search)
    return _redirect(request, safe_next(next_url, "/partner/listings"),
                     "Thanks: the listing is marked as checked today.")


@router.post("/partner/listings/{service_id}/details", response_class=HTMLResponse)
def partner_edit_details(
    request: Request, service_id: ServiceId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep, search: BackendDep,
    version: Annotated[str, Form(max_length=64)] = "",
    name: Annotated[str, Form(max_length=300)] = "",
    alternate_name: Annotated[str, Form(max_length=300)] = "",
    description: Annotated[str, Form(max_length=10000)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    url: Annotated[str, Form(max_length=2000)] = "",
    fees_description: Annotated[str, Form(max_length=2000)] = "",
    application_process: Annotated[str, Form(max_length=4000)] = "",
    languages: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Name, description, contact, fees, how to apply, languages: only what changed is sent."""
    current = _listing(session, actor=user, service_id=service_id)
    posted = {k: v.replace("\r\n", "\n") for k, v in (
        ("name", name), ("alternate_name", alternate_name), ("description", description),
        ("email", email), ("url", url), ("fees_description", fees_description),
        ("application_process", application_process))}
    form = {"details": {**posted, "languages": languages}}
    if not name.strip():
        return _edit_page(request, session, user=user, settings=settings,
                          service_id=service_id, status=422, form=form,
                          errors={"name": "The service needs a name."})
    changes: dict[str, Any] = {k: v.strip() or None for k, v in posted.items()
                               if v.strip() != (current["details"][k] or "").strip()}
    wanted = [x.strip() for x in languages.split(",") if x.strip()]
    if [x.lower() for x in wanted] != [x.strip().lower() for x in
                                       current["languages"].split(",") if x.strip()]:
        changes["languages"] = wanted
    return _save(request, session, user=user, settings=settings, search=search,
                 service_id=service_id, what="Details", changes=changes, version=version,
                 form=form)


@router.post("/partner/listings/{service_id}/status", response_class=HTMLResponse)
def partner_edit_status(request: Request, service_id: ServiceId, user: CurrentUser,
                        session: SessionDep, settings: SettingsDep, search: BackendDep,
                        version: Annotated[str, Form(max_length=64)] = "",
                        status: Annotated[str, Form(max_length=32)] = "") -> Response:
    """Active, temporarily closed, or active but not taking referrals."""
    if status not in LISTING_STATUSES:
        raise BadRequest("choose one of the statuses offered", field="status")
    current = _listing(session, actor=user, service_id=service_id)
    changes = {} if status == current["status"] else {"status": status}
    return _save(request, session, user=user, settings=settings, search=search,
                 service_id=service_id, what="Status", changes=changes, version=version,
                 form={"status": status})


def _read_hours(days: list[str], opens: list[str], closes: list[str],
                field: str) -> tuple[list[dict[str, Any]], dict[str, str], list[dict[str, str]]]:
    """The weekly rows of the hours form as `HoursIn` values (days with the same hours
    together), field errors, and the rows as typed (to show again)."""
    typed, errors = [], {}
    groups: dict[tuple[str, str], list[str]] = {}
    for i in range(max(len(days), len(opens), len(closes))):
        day = days[i] if i < len(days) else ""
        start = (opens[i] if i < len(opens) else "").strip()
        end = (closes[i] if i < len(closes) else "").strip()
        typed.append({"day": day, "opens": start, "closes": end})
        if not (day or start or end):
            continue
        if day not in DAY_ORDER or not start or not end:
            errors.setdefault(field, f"Row {i + 1}: give the day, the opening time and the "
                                     "closing time (or clear the row).")
            continue
        try:
            HoursIn(days=[day], opens_at=start, closes_at=end)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"].removeprefix("Value error, ")
            errors.setdefault(field, f"Row {i + 1}: {message}.")
            continue
        group = groups.setdefault((start, end), [])
        if day not in group:
            group.append(day)
    hours = [{"days": sorted(d, key=DAY_ORDER.index), "opens_at": o, "closes_at": c}
             for (o, c), d in sorted(groups.items(), key=lambda g: (
                 min(DAY_ORDER.index(x) for x in g[1]), g[0]))]
    return hours, errors, typed


def _same_hours(new: list[dict[str, Any]], current: list[dict[str, str]]) -> bool:
    return sorted((d, h["opens_at"], h["closes_at"]) for h in new for d in h["days"]) == \
        sorted((r["day"], r["opens"], r["closes"]) for r in current)


@router.post("/partner/listings/{service_id}/hours", response_class=HTMLResponse)
def partner_edit_hours(
    request: Request, service_id: ServiceId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep, search: BackendDep,
    version: Annotated[str, Form(max_length=64)] = "",
    site: Annotated[str, Form(max_length=36)] = "",
    day: Annotated[list[str], Form(max_length=60)] = [],  # noqa: B006
    opens: Annotated[list[str], Form(max_length=60)] = [],  # noqa: B006
    closes: Annotated[list[str], Form(max_length=60)] = [],  # noqa: B006
) -> Response:
    """The weekly hours of the service (or of one site): a row per day; a closing time at or
    before the opening time runs past midnight."""
    current = _listing(session, actor=user, service_id=service_id)
    key = f"hours-{site}" if site else "hours"
    hours, errors, typed = _read_hours(day, opens, closes, key)
    if errors:
        return _edit_page(request, session, user=user, settings=settings,
                          service_id=service_id, status=422, errors=errors,
                          form={key: typed})
    if site:
        found = next((s for s in current["sites"] if s["id"] == site), None)
        if found is None:
            raise NotFound(f"no site {site!r} of this service", field="site")
        changes = {} if _same_hours(hours, found["hours"]) and not found["other_hours"] else {
            "sites": [{"service_at_location_id": site, "hours": hours}]}
    else:
        changes = {} if _same_hours(hours, current["hours"]) and not current["other_hours"] \
            else {"hours": hours}
    return _save(request, session, user=user, settings=settings, search=search,
                 service_id=service_id, what="Hours", changes=changes, version=version,
                 form={key: typed})


@router.post("/partner/listings/{service_id}/eligibility", response_class=HTMLResponse)
def partner_edit_eligibility(
    request: Request, service_id: ServiceId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep, search: BackendDep,
    version: Annotated[str, Form(max_length=64)] = "",
    description: Annotated[str, Form(max_length=4000)] = "",
    min_age: Annotated[str, Form(max_length=8)] = "",
    max_age: Annotated[str, Form(max_length=8)] = "",
    genders: Annotated[list[str], Form(max_length=10)] = [],  # noqa: B006
    populations: Annotated[list[str], Form(max_length=30)] = [],  # noqa: B006
    documents: Annotated[list[str], Form(max_length=20)] = [],  # noqa: B006
) -> Response:
    """Who the service is for: the text people read, ages, and the restrictions and documents
    search uses. Only what changed is sent, so what was read from the text stays."""
    current = _listing(session, actor=user, service_id=service_id)["eligibility"]
    description = description.replace("\r\n", "\n")
    form = {"description": description, "min_age": min_age.strip(),
            "max_age": max_age.strip(), "genders": genders, "populations": populations,
            "documents": documents}
    errors = {}
    ages: dict[str, int | None] = {}
    for name in ("min_age", "max_age"):
        text = form[name]
        if text and not (text.isdigit() and int(text) <= 130):
            errors[f"eligibility.{name}"] = "Give an age in whole years from 0 to 130."
        ages[name] = int(text) if text.isdigit() else None
    if errors:
        return _edit_page(request, session, user=user, settings=settings,
                          service_id=service_id, status=422, errors=errors,
                          form={"eligibility": form})
    wanted: dict[str, Any] = {}
    if description.strip() != current["description"].strip():
        wanted["description"] = description.strip() or None
    for name in ("min_age", "max_age"):
        if form[name] != current[name]:
            wanted[name] = ages[name]
    for name, allowed in (("genders", GENDERS), ("populations", POPULATIONS),
                          ("documents", DOCUMENTS)):
        chosen = [v for v in form[name] if v in allowed]
        if sorted(chosen) != sorted(current[name]):
            wanted[name] = chosen
    changes = {"eligibility": wanted} if wanted else {}
    return _save(request, session, user=user, settings=settings, search=search,
                 service_id=service_id, what="Eligibility", changes=changes, version=version,
                 form={"eligibility": form})


@router.post("/partner/listings/{service_id}/capacity", response_class=HTMLResponse)
def partner_edit_capacity(
    request: Request, service_id: ServiceId, user: CurrentUser, session: SessionDep,
    settings: SettingsDep, search: BackendDep,
    version: Annotated[str, Form(max_length=64)] = "",
    site: Annotated[list[str], Form(max_length=200)] = [],  # noqa: B006
    capacity: Annotated[list[str], Form(max_length=200)] = [],  # noqa: B006
) -> Response:
    """Whether each site takes people now; saving confirms each status given, changed or not."""
    _listing(session, actor=user, service_id=service_id)
    sites = [{"service_at_location_id": s, "capacity_status": c}
             for s, c in zip(site, capacity, strict=False) if c in CAPACITY_LABELS]
    return _save(request, session, user=user, settings=settings, search=search,
                 service_id=service_id, what="Capacity",
                 changes={"sites": sites} if sites else {}, version=version,
                 form={"capacity": dict(zip(site, capacity, strict=False))})
