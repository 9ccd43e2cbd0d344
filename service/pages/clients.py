"""The case manager's client pages: the client list with a name search and the "New client"
form (with the duplicate warning), and one client's page (details, consents with add and revoke
forms, their referrals, a search pre-filled for them, and a printable list of the services they
were referred to).

The same service functions as `/api/v1/clients` do the work (`clients.create_client`,
`get_client`, `add_consent`, `revoke_consent`); every read of a client is audited.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import app_user
from service.audit import service as audit
from service.clients import service as clients
from service.clients.schemas import ClientCreate, ConsentCreate
from service.clients.tables import CONTACT_PREFERENCES, client
from service.deps import CurrentUser, SessionDep, SettingsDep, WriteSessionDep
from service.directory import service as directory
from service.errors import BadRequest, InvalidTransition, NotFound
from service.pages import referrals as referral_pages
from service.pages.referrals import SHARES, age_on, day, initials
from service.pages.search import plain_list
from service.pages.services import LANGUAGES, detail
from service.pages.session import flash
from service.referrals import service as referrals
from service.referrals.tables import referral
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 50
ClientId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CONTACT_LABELS = {"phone": "Phone", "text": "Text message", "email": "Email", "mail": "Mail",
                  "in_person": "In person", "do_not_contact": "Do not contact"}
STATUS_TEXT = {"active": "Active", "expired": "Expired", "revoked": "Revoked"}


def language_name(tag: str | None) -> str:
    """A BCP 47 tag in words where known ("es" -> "Spanish")."""
    if not tag:
        return ""
    return LANGUAGES.get(tag.split("-")[0].lower(), tag)


def find_clients(session: Session, *, actor: Principal, q: str = "", mine: bool = False,
                 page: int = 1, per_page: int = PER_PAGE) -> tuple[int, list[dict[str, Any]]]:
    """A page of the actor's agency's clients (only their caseload with `mine`), by name,
    matching `q` anywhere in the name; with their open referrals counted. Audited (the ids
    shown, as `clients.list_clients` does)."""
    where = [client.c.agency_id == actor.agency_id]
    if mine:
        where.append(client.c.case_manager_id == actor.user_id)
    if q.strip():
        where.append(func.lower(client.c.name).contains(" ".join(q.split()).lower(),
                                                         autoescape=True))
    open_count = (select(referral.c.client_id, func.count().label("open_referrals"))
                  .where(referral.c.status.in_(referrals.OPEN))
                  .group_by(referral.c.client_id).subquery())
    total = session.execute(select(func.count()).select_from(client).where(and_(*where))
                            ).scalar_one()
    rows = [dict(r) for r in session.execute(
        select(client.c.id, client.c.name, client.c.date_of_birth,
               client.c.preferred_language, client.c.contact_preference,
               client.c.case_manager_id,
               func.coalesce(open_count.c.open_referrals, 0).label("open_referrals"))
        .select_from(client.outerjoin(open_count, open_count.c.client_id == client.c.id))
        .where(and_(*where)).order_by(func.lower(client.c.name), client.c.id)
        .limit(per_page).offset((page - 1) * per_page)).mappings()]
    audit.record(session, actor=actor, action="client.list", entity_type="agency",
                 entity_id=actor.agency_id,
                 changes={"client_ids": {"old": None, "new": [r["id"] for r in rows]}})
    return total, rows


def _blank_client(**values: Any) -> dict[str, Any]:
    form = {"name": "", "date_of_birth": "", "preferred_language": "",
            "contact_preference": "phone", "no_voicemail": False, "do_not_text": False}
    form.update(values)
    return form


def _list_page(request: Request, session: Session, user: Principal, *, q: str = "",
               who: str = "", page: int = 1, form: dict[str, Any] | None = None,
               errors: dict[str, str] | None = None,
               duplicates: list[dict[str, Any]] | None = None,
               status: int = 200) -> HTMLResponse:
    who = who if who in ("mine", "agency") else (
        "mine" if user.role == "case_manager" else "agency")
    total, rows = find_clients(session, actor=user, q=q, mine=who == "mine", page=page)
    pages = max(1, -(-total // PER_PAGE))
    today = datetime.now(UTC).date()

    def link(**changes: Any) -> str:
        values = {"q": q, "who": who, "page": page, **changes}
        return "?" + urlencode({k: v for k, v in values.items() if v and v != 1})

    return templates.TemplateResponse(request, "clients/list.html", {
        "rows": [{**r, "born": day(r["date_of_birth"]), "age": age_on(r["date_of_birth"], today),
                  "language": language_name(r["preferred_language"])} for r in rows],
        "total": total, "q": q, "who": who, "page": page, "pages": pages,
        "mine_link": link(who="mine", page=1), "agency_link": link(who="agency", page=1),
        "nav": {"prev": link(page=page - 1) if page > 1 else None,
                "next": link(page=page + 1) if page < pages else None},
        "form": form or _blank_client(), "errors": errors or {},
        "duplicates": duplicates or [],
        "contact_preferences": [(p, CONTACT_LABELS[p]) for p in CONTACT_PREFERENCES],
        "open_form": bool(errors or duplicates),
    }, status_code=status)


@router.get("/clients", response_class=HTMLResponse, name="clients_page")
def clients_page(request: Request, user: CurrentUser, session: WriteSessionDep,
                 q: Annotated[str, Query(max_length=200)] = "",
                 who: Annotated[str, Query(max_length=16)] = "",
                 page: Annotated[int, Query(ge=1, le=10000)] = 1) -> HTMLResponse:
    """The agency's clients (a case manager's own caseload first), found by name."""
    return _list_page(request, session, user, q=q, who=who, page=page)


class _Unconfirmed(Exception):
    """A possible duplicate the user has not confirmed yet (rolls the new client back)."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__("possible duplicate")
        self.ids = ids


def _validation_errors(exc: ValidationError) -> dict[str, str]:
    words = {"name": "Give a name or initials.",
             "preferred_language": "Give the language as a short code, e.g. es, vi, zh-Hant.",
             "date_of_birth": "Give the date of birth as a date, e.g. 1984-06-02.",
             "shares": "Tick what the client agreed to share.",
             "purpose": "Say what the consent is for.",
             "shared_with_name": "Say whom the information may be shared with."}
    errors = {}
    for item in exc.errors():
        field = str(item["loc"][0]) if item.get("loc") else "form"
        errors.setdefault(field, words.get(field, item.get("msg", "Check this field.")))
    return errors


@router.post("/clients", name="client_create")
def client_create(
    request: Request, user: CurrentUser, session: SessionDep,
    name: Annotated[str, Form(max_length=200)] = "",
    date_of_birth: Annotated[str, Form(max_length=10)] = "",
    preferred_language: Annotated[str, Form(max_length=35)] = "",
    contact_preference: Annotated[str, Form(max_length=16)] = "phone",
    no_voicemail: Annotated[bool, Form()] = False,
    do_not_text: Annotated[bool, Form()] = False,
    confirm_duplicate: Annotated[bool, Form()] = False,
) -> Response:
    """Add a client; a possible duplicate (same name and date of birth) is shown first, and
    the client is added only once the user confirms it is someone else."""
    form = _blank_client(name=name, date_of_birth=date_of_birth,
                         preferred_language=preferred_language,
                         contact_preference=contact_preference, no_voicemail=no_voicemail,
                         do_not_text=do_not_text)
    try:
        data = ClientCreate(name=name, date_of_birth=date_of_birth.strip() or None,
                            preferred_language=preferred_language.strip() or None,
                            contact_preference=contact_preference, no_voicemail=no_voicemail,
                            do_not_text=do_not_text)
    except ValidationError as exc:
        return _list_page(request, session, user, form=form, errors=_validation_errors(exc),
                          status=422)
    try:
        with session.begin_nested():
            created, duplicates = clients.create_client(session, actor=user, data=data)
            if duplicates and not confirm_duplicate:
                raise _Unconfirmed(duplicates)
    except _Unconfirmed as exc:
        found = [clients.get_client(session, actor=user, client_id=i) for i in exc.ids]
        return _list_page(request, session, user, form=form, status=422, duplicates=[
            {"id": f["id"], "name": f["name"], "born": day(f["date_of_birth"])} for f in found])
    except BadRequest as exc:
        return _list_page(request, session, user, form=form, status=422,
                          errors={exc.field or "form": exc.message})
    response = RedirectResponse(f"/clients/{created['id']}", status_code=303)
    flash(response, request, "Client added." if not duplicates else
          "Client added as a different person from the one with the same name and birthday.")
    return response


def _client_page(request: Request, session: Session, user: Principal, *, client_id: int,
                 errors: dict[str, str] | None = None, form: dict[str, Any] | None = None,
                 status: int = 200) -> HTMLResponse:
    person = clients.get_client(session, actor=user, client_id=client_id)
    total, rows = referral_pages.referral_rows(session, actor=user, statuses=None,
                                               client_id=client_id, per_page=100)
    now = datetime.now(UTC)
    holder = None
    if person["case_manager_id"]:
        holder = session.execute(select(app_user.c.username).where(
            app_user.c.id == person["case_manager_id"])).scalar()
    consents = []
    for c in reversed(person["consents"]):
        view = referral_pages.consent_view(c)
        consents.append({**view, "status_text": STATUS_TEXT[c["status"]]})
    return templates.TemplateResponse(request, "clients/detail.html", {
        "person": person, "age": age_on(person["date_of_birth"], now.date()),
        "born": day(person["date_of_birth"]),
        "language": language_name(person["preferred_language"]),
        "contact": CONTACT_LABELS.get(person["contact_preference"], ""),
        "holder": holder, "consents": consents, "shares": SHARES,
        "referrals": [referral_pages.row_view(r, now) for r in rows],
        "referral_total": total, "initials": initials(person["name"]),
        "part2_notice": clients.PART2_NOTICE, "errors": errors or {},
        "form": form or {"shares": [], "shared_with_name": "", "purpose": "",
                         "is_part2": False, "expires": ""},
        "open_consent_form": bool(errors),
    }, status_code=status)


@router.get("/clients/{client_id}", response_class=HTMLResponse, name="client_page")
def client_page(request: Request, client_id: ClientId, user: CurrentUser,
                session: WriteSessionDep) -> HTMLResponse:
    """One client: details, consents, referrals, and a search for them."""
    return _client_page(request, session, user, client_id=client_id)


@router.post("/clients/{client_id}/consents", name="consent_add")
def consent_add(
    request: Request, client_id: ClientId, user: CurrentUser, session: SessionDep,
    shares: Annotated[list[str], Form(max_length=7)] = [],  # noqa: B006
    shared_with_name: Annotated[str, Form(max_length=300)] = "",
    purpose: Annotated[str, Form(max_length=1000)] = "",
    is_part2: Annotated[bool, Form()] = False,
    expires: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    """Record a consent the client gave."""
    form = {"shares": shares, "shared_with_name": shared_with_name, "purpose": purpose,
            "is_part2": is_part2, "expires": expires}
    errors: dict[str, str] = {}
    if not shared_with_name.strip():
        errors["shared_with_name"] = "Say whom the information may be shared with."
    try:
        expires_at = referral_pages.expiry(expires)
    except ValueError:
        errors["expires"] = "Give the end date as a date (e.g. 2026-06-30)."
        expires_at = None
    data = None
    try:
        data = ConsentCreate(shares=shares, shared_with_name=shared_with_name.strip() or None,
                             purpose=purpose.strip(), is_part2=is_part2, expires_at=expires_at)
    except ValidationError as exc:
        errors = {**_validation_errors(exc), **errors}
    if errors or data is None:
        return _client_page(request, session, user, client_id=client_id, errors=errors,
                            form=form, status=422)
    try:
        with session.begin_nested():
            added = clients.add_consent(session, actor=user, client_id=client_id, data=data)
    except BadRequest as exc:
        field = {"expires_at": "expires", "given_at": "expires"}.get(exc.field or "",
                                                                     exc.field or "form")
        return _client_page(request, session, user, client_id=client_id, form=form,
                            errors={field: exc.message}, status=422)
    response = RedirectResponse(f"/clients/{client_id}#consents", status_code=303)
    flash(response, request, f"Consent recorded: sharing with {added['shared_with_name']}.")
    return response


@router.post("/clients/{client_id}/consents/{consent_id}/revoke", name="consent_revoke")
def consent_revoke(request: Request, client_id: ClientId,
                   consent_id: Annotated[int, Path(ge=1, le=2**31 - 1)], user: CurrentUser,
                   session: SessionDep) -> Response:
    """The client withdrew a consent: it stops covering anything from now."""
    response = RedirectResponse(f"/clients/{client_id}#consents", status_code=303)
    try:
        with session.begin_nested():
            revoked = clients.revoke_consent(session, actor=user, client_id=client_id,
                                             consent_id=consent_id)
    except InvalidTransition:
        flash(response, request, "That consent was already revoked.", kind="error")
        return response
    flash(response, request, f"Consent revoked: no more sharing with "
                             f"{revoked['shared_with_name']}.")
    return response


# --- a printable list of the services a client was referred to ------------------------------


def referred_services(session: Session, *, actor: Principal,
                      client_id: int) -> list[dict[str, Any]]:
    """The services of the client's open referrals, as the print page lists them."""
    clients.get_client(session, actor=actor, client_id=client_id)  # scope, and audited
    _, rows = referral_pages.referral_rows(session, actor=actor, client_id=client_id,
                                           statuses=tuple(s for s in referrals.OPEN
                                                          if s != "draft"), per_page=100)
    now = datetime.now(UTC)
    items = []
    for row in rows:
        try:
            doc = directory.get_service(session, row["service_id"])["service"]
        except NotFound:
            continue
        sites = doc.get("service_at_locations") or []
        chosen = [s for s in sites if (s.get("location") or {}).get("id") == row["location_id"]]
        found = detail({**doc, "service_at_locations": chosen or sites}, now)
        site = found["sites"][0] if found["sites"] else {}
        items.append({
            "name": found["name"], "organization": found["organization"],
            "address": ", ".join(site.get("address") or []),
            "phones": site.get("phones") or found["phones"],
            "hours": site.get("hours") or found["hours"], "distance": None,
            "need": row.get("need_category_id") and referral_pages.need_name(
                row["need_category_id"]),
        })
    return items


@router.get("/clients/{client_id}/print", response_class=HTMLResponse, name="client_print")
def client_print(request: Request, client_id: ClientId, user: CurrentUser,
                 session: WriteSessionDep, settings: SettingsDep) -> HTMLResponse:
    """The services the client was referred to, on paper (no name on it)."""
    items = referred_services(session, actor=user, client_id=client_id)
    return templates.TemplateResponse(request, "print/list.html", {
        "title": "Your referrals", "subtitle": f"Printed {day(date.today())}",
        "items": items, "back": f"/clients/{client_id}", "back_label": "Back to the client",
        "text_link": f"/clients/{client_id}/text", "demo_notice": settings.demo_notice,
    })


@router.get("/clients/{client_id}/text", response_class=PlainTextResponse, name="client_text")
def client_text(client_id: ClientId, user: CurrentUser, session: WriteSessionDep,
                settings: SettingsDep) -> PlainTextResponse:
    """The same list as plain text, to paste into a text message or an email."""
    items = referred_services(session, actor=user, client_id=client_id)
    return PlainTextResponse(plain_list("Your referrals (Signpost):", items,
                                        demo_notice=settings.demo_notice))
