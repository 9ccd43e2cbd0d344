"""The admin pages: import runs and their problems, stale listings, users, partner edits, the
referral outcome report (with a chart drawn as inline SVG on the server), the audit export.

Each page calls the same service functions as the JSON API (`service.accounts.service`,
`service.directory.listing_edits`, `service.reports.service`); import runs are read from the
`import_run` table the importer writes, as `signpost index runs` and `index problems` do.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.accounts import service as accounts
from service.accounts.security import MIN_PASSWORD_LENGTH
from service.accounts.service import Principal
from service.accounts.tables import ROLES
from service.deps import CurrentUser, SessionDep, SettingsDep, WriteSessionDep
from service.directory import listing_edits
from service.directory.tables import import_run, location, organization, service_at_location
from service.errors import AppError, BadRequest, NotFound
from service.pages.session import flash
from service.reports import service as reports
from service.search.api import BackendDep
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 25
PROBLEMS_PER_PAGE = 50
RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]
UserId = Annotated[int, Path(ge=1, le=2**31 - 1)]
EditId = Annotated[int, Path(ge=1, le=2**31 - 1)]
PageNo = Annotated[int, Query(ge=1, le=100000)]
ROLE_LABELS = {"admin": "Admin", "supervisor": "Supervisor", "case_manager": "Case manager",
               "partner": "Partner"}
EDIT_STATUSES = {"pending": "Waiting for approval", "applied": "Applied",
                 "rejected": "Rejected", "reverted": "Reverted"}
STATUS_LABELS = {"draft": "Draft", "requested": "Sent, no answer yet", "accepted": "Accepted",
                 "in-progress": "In progress", "on-hold": "On hold", "completed": "Completed",
                 "failed": "Did not work out", "rejected": "Declined",
                 "cancelled": "Cancelled", "entered-in-error": "Entered in error"}
AUDIT_EXPORT = "/api/v1/audit?format=csv"


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _nav(base: str, page: int, pages: int, **params: Any) -> dict[str, str | None]:
    """Links to the previous and next pages (None at either end)."""
    def link(n: int) -> str:
        query = urlencode([(k, v) for k, v in {**params, "page": n}.items()
                           if v not in (None, "") and not (k == "page" and v == 1)])
        return base + (f"?{query}" if query else "")
    return {"prev": link(page - 1) if page > 1 else None,
            "next": link(page + 1) if page < pages else None}


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


def _sentence(message: str) -> str:
    """A service's message as a sentence for a flash."""
    message = message.strip()
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _done(request: Request, target: str, message: str, kind: str = "info") -> Response:
    response = RedirectResponse(target, status_code=303)
    flash(response, request, message, kind)
    return response


# --- the overview ---------------------------------------------------------------------------


def _runs(session: Session, *, limit: int, offset: int = 0) -> list[dict[str, Any]]:
    """Import runs, newest first, without their problem lists."""
    rows = session.execute(
        select(import_run.c.id, import_run.c.source, import_run.c.format, import_run.c.status,
               import_run.c.started_at, import_run.c.finished_at, import_run.c.counts,
               import_run.c.message)
        .order_by(import_run.c.id.desc()).limit(limit).offset(offset)).mappings().all()
    return [_run(r) for r in rows]


def _run(row: Any) -> dict[str, Any]:
    counts = row["counts"]
    counts = json.loads(counts) if isinstance(counts, str) else (counts or {})
    tables = counts.get("tables") or {}
    return {**dict(row), "started": _when(row["started_at"]),
            "finished": _when(row["finished_at"]),
            "errors": counts.get("errors"), "warnings": counts.get("warnings"),
            "tables": [{"table": t, "outcomes": ", ".join(f"{k} {v}" for k, v in
                                                          sorted(c.items()) if v)}
                       for t, c in tables.items()],
            "precision": ", ".join(f"{k} {v}" for k, v in
                                   sorted((counts.get("precision") or {}).items()))}


@router.get("/admin", response_class=HTMLResponse, name="admin_home")
def admin_home(request: Request, user: CurrentUser, session: SessionDep,
               settings: SettingsDep) -> HTMLResponse:
    """What needs an admin now: partner edits to decide, stale listings, the latest imports,
    users, and links to the report and the audit export."""
    pending_total, pending = listing_edits.list_edits(session, actor=user, status="pending",
                                                      per_page=5)
    stale_total, stale = listing_edits.stale_listings(
        session, actor=user, stale_days=settings.stale_listing_days, per_page=5)
    users_total, _ = accounts.list_users(session, actor=user, per_page=1)
    active_total, _ = accounts.list_users(session, actor=user, is_active=True, per_page=1)
    return templates.TemplateResponse(request, "admin/home.html", {
        "runs": _runs(session, limit=5), "pending_total": pending_total,
        "pending": [_edit_view(e, {}) for e in pending], "stale_total": stale_total,
        "stale": stale, "stale_days": settings.stale_listing_days, "users_total": users_total,
        "active_total": active_total, "audit_export": AUDIT_EXPORT,
        "requires_approval": settings.partner_edits_require_approval})


# --- import runs ----------------------------------------------------------------------------


@router.get("/admin/imports", response_class=HTMLResponse, name="admin_imports")
def admin_imports(request: Request, user: CurrentUser, session: SessionDep,
                  page: PageNo = 1) -> HTMLResponse:
    """Every import run, newest first, with its counts and how many problems it found."""
    total = session.execute(select(func.count()).select_from(import_run)).scalar_one()
    pages = _pages(total, PER_PAGE)
    return templates.TemplateResponse(request, "admin/imports.html", {
        "runs": _runs(session, limit=PER_PAGE, offset=(page - 1) * PER_PAGE), "total": total,
        "page": page, "pages": pages, "nav": _nav("/admin/imports", page, pages)})


@router.get("/admin/imports/{run_id}", response_class=HTMLResponse, name="admin_import")
def admin_import(request: Request, run_id: RunId, user: CurrentUser, session: SessionDep,
                 severity: Annotated[str, Query(max_length=16)] = "",
                 page: PageNo = 1) -> HTMLResponse:
    """One import run: its counts and every problem (file, line, field, why), paged."""
    row = session.execute(select(import_run).where(import_run.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no import run {run_id}", field="run_id")
    problems = row["problems"]
    problems = json.loads(problems) if isinstance(problems, str) else (problems or [])
    if severity not in ("error", "warning"):
        severity = ""
    shown = [p for p in problems if not severity or p.get("severity") == severity]
    pages = _pages(len(shown), PROBLEMS_PER_PAGE)
    start = (page - 1) * PROBLEMS_PER_PAGE
    return templates.TemplateResponse(request, "admin/import.html", {
        "run": _run(row), "problems": shown[start:start + PROBLEMS_PER_PAGE],
        "total_problems": len(problems), "shown_total": len(shown), "first": start + 1,
        "severity": severity, "page": page, "pages": pages,
        "nav": _nav(f"/admin/imports/{run_id}", page, pages, severity=severity)})


# --- users ----------------------------------------------------------------------------------


def _user_view(u: dict[str, Any]) -> dict[str, Any]:
    return {**u, "role_label": ROLE_LABELS.get(u["role"], u["role"]),
            "created": _when(u.get("created_at"))}


def _organization_id(session: Session, text: str, *, field: str) -> str:
    """An organization named by its id or its exact name (case-insensitive)."""
    text = " ".join(text.split())
    if not text:
        raise BadRequest("give the organization's id or its exact name", field=field)
    if session.execute(select(organization.c.id).where(organization.c.id == text)).first():
        return text
    ids = list(session.execute(select(organization.c.id).where(
        func.lower(organization.c.name) == text.lower()).order_by(organization.c.id)
        .limit(6)).scalars())
    if not ids:
        raise BadRequest(f"no organization has the id or name {text!r}", field=field)
    if len(ids) > 1:
        raise BadRequest(f"{len(ids)} organizations are named {text!r}: give one of their ids "
                         f"({', '.join(ids[:5])})", field=field)
    return ids[0]


def _users_page(request: Request, session: Session, user: Principal, *, role: str,
                active: str, page: int, form: dict[str, str] | None = None,
                errors: dict[str, str] | None = None, status: int = 200) -> HTMLResponse:
    total, rows = accounts.list_users(
        session, actor=user, role=role or None,
        is_active={"yes": True, "no": False}.get(active), page=page, per_page=PER_PAGE)
    pages = _pages(total, PER_PAGE)
    return templates.TemplateResponse(request, "admin/users.html", {
        "users": [_user_view(u) for u in rows], "total": total, "page": page, "pages": pages,
        "nav": _nav("/admin/users", page, pages, role=role, active=active),
        "filters": {"role": role, "active": active}, "roles": ROLE_LABELS,
        "agencies": accounts.list_agencies(session), "form": form or {"role": "case_manager"},
        "errors": errors or {}, "min_password": MIN_PASSWORD_LENGTH}, status_code=status)


@router.get("/admin/users", response_class=HTMLResponse, name="admin_users")
def admin_users(request: Request, user: CurrentUser, session: SessionDep,
                role: Annotated[str, Query(max_length=16)] = "",
                active: Annotated[str, Query(max_length=3)] = "",
                page: PageNo = 1) -> HTMLResponse:
    """Users by username, filtered by role and whether active; the form to add one."""
    role = role if role in ROLES else ""
    active = active if active in ("yes", "no") else ""
    return _users_page(request, session, user, role=role, active=active, page=page)


@router.post("/admin/users", response_class=HTMLResponse)
def admin_create_user(
    request: Request, user: CurrentUser, session: SessionDep,
    username: Annotated[str, Form(max_length=150)] = "",
    role: Annotated[str, Form(max_length=16)] = "",
    agency: Annotated[str, Form(max_length=200)] = "",
    organization_ref: Annotated[str, Form(alias="organization", max_length=300)] = "",
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    """Add a user: the role's agency or organization, and a password under the policy."""
    form = {"username": username, "role": role, "agency": agency,
            "organization": organization_ref, "email": email}
    try:
        organizations = ([_organization_id(session, organization_ref, field="organization")]
                         if role == "partner" else [])
        if role != "partner" and organization_ref.strip():
            raise BadRequest("only partners are linked to organizations", field="organization")
        created = accounts.create_user(
            session, actor=user, username=username, password=password, role=role,
            agency_name=agency.strip() or None, organization_ids=organizations,
            email=email.strip() or None)
    except AppError as exc:
        if exc.status >= 500:
            raise
        field = exc.field if exc.field in form or exc.field == "password" else "username"
        return _users_page(request, session, user, role="", active="", page=1, form=form,
                           errors={field: _sentence(exc.message)},
                           status=422)
    return _done(request, f"/admin/users/{created['id']}",
                 f"User {created['username']} added.")


@router.get("/admin/users/{user_id}", response_class=HTMLResponse, name="admin_user")
def admin_user(request: Request, user_id: UserId, user: CurrentUser,
               session: SessionDep) -> HTMLResponse:
    """One user: activate or deactivate; a partner's organizations."""
    found = accounts.get_user(session, actor=user, user_id=user_id)
    return templates.TemplateResponse(request, "admin/user.html", {
        "u": _user_view(found), "is_self": found["id"] == user.user_id})


@router.post("/admin/users/{user_id}/active")
def admin_user_active(request: Request, user_id: UserId, user: CurrentUser,
                      session: SessionDep,
                      is_active: Annotated[str, Form(max_length=5)] = "") -> Response:
    """Deactivate (every session of the user ends) or activate again."""
    if is_active not in ("true", "false"):
        raise BadRequest("is_active must be true or false", field="is_active")
    here = f"/admin/users/{user_id}"
    try:
        changed = accounts.update_user(session, actor=user, user_id=user_id,
                                       is_active=is_active == "true")
    except BadRequest as exc:
        return _done(request, here, _sentence(exc.message), "error")
    state = "active again" if changed["is_active"] else "deactivated: their sessions ended"
    return _done(request, here, f"{changed['username']} is {state}.")


@router.post("/admin/users/{user_id}/organizations")
def admin_link_organization(request: Request, user_id: UserId, user: CurrentUser,
                            session: SessionDep,
                            organization_ref: Annotated[str, Form(alias="organization",
                                                                  max_length=300)] = ""
                            ) -> Response:
    """Link a partner to an organization (every site of it)."""
    here = f"/admin/users/{user_id}"
    try:
        org = _organization_id(session, organization_ref, field="organization")
        changed = accounts.link_organization(session, actor=user, user_id=user_id,
                                             organization_id=org)
    except BadRequest as exc:
        return _done(request, here, _sentence(exc.message), "error")
    name = next((o["organization_name"] for o in changed["organizations"]
                 if o["organization_id"] == org), org)
    return _done(request, here, f"{changed['username']} now speaks for {name}.")


@router.post("/admin/users/{user_id}/organizations/remove")
def admin_unlink_organization(request: Request, user_id: UserId, user: CurrentUser,
                              session: SessionDep,
                              organization_id: Annotated[str, Form(max_length=64)] = ""
                              ) -> Response:
    """The partner no longer speaks for the organization."""
    here = f"/admin/users/{user_id}"
    try:
        changed = accounts.unlink_organization(session, actor=user, user_id=user_id,
                                               organization_id=organization_id)
    except AppError as exc:  # not linked (404), or their last organization (409)
        if exc.status not in (400, 404, 409) or exc.field == "user_id":
            raise
        return _done(request, here, _sentence(exc.message), "error")
    return _done(request, here, f"{changed['username']} no longer speaks for that "
                                "organization.")


# --- partner edits --------------------------------------------------------------------------


def _show(value: Any) -> str:
    """A changed value in words: hours, languages, addresses... as people read them."""
    if value is None or value == "" or value == []:
        return "(none)"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return "; ".join(_show(v) for v in value)
    if isinstance(value, dict):
        if "opens_at" in value or "byday" in value:
            days = (value.get("byday") or "").replace(",", ", ")
            hours = f"{value.get('opens_at') or '?'}–{value.get('closes_at') or '?'}"
            note = f" ({value['description']})" if value.get("description") else ""
            return f"{days} {hours}{note}".strip()
        for key in ("address_1", "number", "name", "code", "description"):
            if value.get(key):
                return str(value[key])
        return ", ".join(f"{k.replace('_', ' ')}: {_show(v)}" for k, v in value.items()
                         if v not in (None, "", [], False))
    return str(value)


def _field_label(field: str, sites: dict[str, str]) -> str:
    parts = field.split(".")
    if parts[0] == "sites" and len(parts) >= 3:
        what = " ".join(parts[2:]).replace("_", " ")
        return f"{what.capitalize()} at {sites.get(parts[1], 'a site')}"
    return " ".join(field.replace("_", " ").split(".")).capitalize()


def _site_names(session: Session, edits: list[dict[str, Any]]) -> dict[str, str]:
    ids = {c["field"].split(".")[1] for e in edits for c in e["changes"]
           if c["field"].startswith("sites.") and c["field"].count(".") >= 2}
    if not ids:
        return {}
    return dict(session.execute(
        select(service_at_location.c.id, location.c.name)
        .join(location, location.c.id == service_at_location.c.location_id)
        .where(service_at_location.c.id.in_(sorted(ids)))).all())


def _edit_view(edit: dict[str, Any], sites: dict[str, str]) -> dict[str, Any]:
    return {**edit, "status_label": EDIT_STATUSES.get(edit["status"], edit["status"]),
            "created": _when(edit["created_at"]), "decided": _when(edit["decided_at"]),
            "reverted": _when(edit["reverted_at"]),
            "changes": [{"field": _field_label(c["field"], sites), "old": _show(c["old"]),
                         "new": _show(c["new"])} for c in edit["changes"]
                        if not c["field"].endswith("capacity_updated_at")]}


@router.get("/admin/edits", response_class=HTMLResponse, name="admin_edits")
def admin_edits(request: Request, user: CurrentUser, session: SessionDep,
                settings: SettingsDep,
                status: Annotated[str, Query(max_length=16)] = "pending",
                page: PageNo = 1) -> HTMLResponse:
    """Partner edits by status, newest first: approve or reject the waiting ones, revert an
    applied one."""
    status = status if status in EDIT_STATUSES else "pending"
    total, edits = listing_edits.list_edits(session, actor=user, status=status, page=page,
                                            per_page=PER_PAGE)
    pages = _pages(total, PER_PAGE)
    sites = _site_names(session, edits)
    return templates.TemplateResponse(request, "admin/edits.html", {
        "edits": [_edit_view(e, sites) for e in edits], "total": total, "status": status,
        "statuses": EDIT_STATUSES, "page": page, "pages": pages,
        "nav": _nav("/admin/edits", page, pages, status=status),
        "requires_approval": settings.partner_edits_require_approval})


def _decide(request: Request, *, edit_id: int, action: Any, verb: str, back: str) -> Response:
    try:
        edit = action()
    except AppError as exc:
        if exc.status not in (400, 409, 422):
            raise
        return _done(request, back, f"Edit {edit_id} was not {verb}: {exc.message}.", "error")
    name = edit.get("name") or "the listing"
    return _done(request, back, f"Edit {edit_id} to {name} {verb}.")


@router.post("/admin/edits/{edit_id}/approve")
def admin_approve_edit(request: Request, edit_id: EditId, user: CurrentUser,
                       session: SessionDep, search: BackendDep,
                       reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Apply a waiting edit: it shows in search at once."""
    return _decide(request, edit_id=edit_id, verb="approved", back="/admin/edits",
                   action=lambda: listing_edits.approve(session, actor=user, edit_id=edit_id,
                                                        reason=reason.strip() or None,
                                                        search=search))


@router.post("/admin/edits/{edit_id}/reject", response_class=HTMLResponse)
def admin_reject_edit(request: Request, edit_id: EditId, user: CurrentUser,
                      session: SessionDep,
                      reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Discard a waiting edit, with the reason the partner will read."""
    if not reason.strip():
        return _done(request, "/admin/edits", f"Edit {edit_id} was not rejected: say why "
                     "(the partner reads it).", "error")
    return _decide(request, edit_id=edit_id, verb="rejected", back="/admin/edits",
                   action=lambda: listing_edits.reject(session, actor=user, edit_id=edit_id,
                                                       reason=reason.strip()))


@router.post("/admin/edits/{edit_id}/revert")
def admin_revert_edit(request: Request, edit_id: EditId, user: CurrentUser,
                      session: SessionDep, search: BackendDep,
                      reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Put back the values an applied edit replaced."""
    return _decide(request, edit_id=edit_id, verb="reverted", back="/admin/edits?status=applied",
                   action=lambda: listing_edits.revert(session, actor=user, edit_id=edit_id,
                                                       reason=reason.strip() or None,
                                                       search=search))


# --- stale listings -------------------------------------------------------------------------


@router.get("/admin/stale", response_class=HTMLResponse, name="admin_stale")
def admin_stale(request: Request, user: CurrentUser, session: SessionDep, settings: SettingsDep,
                page: PageNo = 1) -> HTMLResponse:
    """Listings nobody confirmed within the stale window (or ever), least recently first."""
    total, items = listing_edits.stale_listings(session, actor=user,
                                                stale_days=settings.stale_listing_days,
                                                page=page, per_page=PER_PAGE)
    pages = _pages(total, PER_PAGE)
    return templates.TemplateResponse(request, "admin/stale.html", {
        "items": [{**i, "verified": _when(i["verified_at"])} for i in items], "total": total,
        "stale_days": settings.stale_listing_days, "page": page, "pages": pages,
        "nav": _nav("/admin/stale", page, pages)})


# --- the referral outcome report ------------------------------------------------------------

CHART_WIDTH, CHART_HEIGHT, CHART_TOP, CHART_BOTTOM, CHART_LEFT = 640, 240, 24, 40, 44


def _month_label(key: str, *, short: bool = False) -> str:
    try:
        return datetime.strptime(key, "%Y-%m").strftime("%b %y" if short else "%B %Y")
    except ValueError:
        return key


def bar_chart(points: list[dict[str, Any]], *, grid: list[tuple[float, str]]) -> dict[str, Any]:
    """Bars laid out for an inline SVG, every number the template needs computed here. Each
    point has `label`, `fraction` (0 to 1, of the plot's height), `value` (the text over the
    bar) and `title` (a sentence a screen reader or a hover reads); `grid` the fractions and
    labels of the horizontal lines."""
    plot_w = CHART_WIDTH - CHART_LEFT - 8
    plot_h = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    n = max(1, len(points))
    slot = plot_w / n
    width = min(56.0, slot * 0.7)
    every = -(-n // 12)  # label at most a dozen months, evenly
    bars = []
    for i, point in enumerate(points):
        height = round(plot_h * max(0.0, min(1.0, point["fraction"] or 0.0)), 1)
        x = round(CHART_LEFT + i * slot + (slot - width) / 2, 1)
        bars.append({"x": x, "y": round(CHART_TOP + plot_h - height, 1), "width": round(width, 1),
                     "height": height, "center": round(x + width / 2, 1),
                     "label": point["label"] if i % every == 0 else "",
                     "value": point["value"] if n <= 24 else "", "title": point["title"]})
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT,
            "right": CHART_WIDTH - 8, "baseline": CHART_TOP + plot_h,
            "label_y": CHART_HEIGHT - CHART_BOTTOM + 18, "bars": bars,
            "grid": [{"y": round(CHART_TOP + plot_h * (1 - f), 1), "label": label}
                     for f, label in grid]}


def rate_chart(months: list[dict[str, Any]]) -> dict[str, Any]:
    """The closed-loop rate by month sent."""
    return bar_chart([{
        "label": _month_label(m["key"], short=True), "fraction": m["rate"] or 0.0,
        "value": _percent(m["rate"]),
        "title": f"{_month_label(m['key'])}: " + (
            "no referrals counted" if m["rate"] is None else
            f"{m['closed']} of {m['counted']} closed ({_percent(m['rate'])})")}
        for m in months], grid=[(p / 100, f"{p}%") for p in (0, 25, 50, 75, 100)])


def sent_chart(months: list[dict[str, Any]]) -> dict[str, Any]:
    """Referrals sent by month."""
    top = max([m["count"] for m in months] + [1])
    step = max(1, -(-top // 4))
    scale = step * 4
    return bar_chart([{
        "label": _month_label(m["key"], short=True), "fraction": m["count"] / scale,
        "value": str(m["count"]),
        "title": f"{_month_label(m['key'])}: {m['count']} sent"} for m in months],
        grid=[(k * step / scale, str(k * step)) for k in range(5)])


def _percent(rate: float | None) -> str:
    return "n/a" if rate is None else f"{round(rate * 100)}%"


def _date(value: str, field: str) -> date | None:
    value = value.strip()
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{field}: give a date as YYYY-MM-DD", field=field) from None


@router.get("/admin/reports", response_class=HTMLResponse, name="admin_reports")
def admin_reports(request: Request, user: CurrentUser, session: WriteSessionDep,
                  date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
                  date_to: Annotated[str, Query(alias="to", max_length=10)] = "") -> HTMLResponse:
    """Referral outcomes: the closed-loop rate by month (a chart and its table), counts by
    status, need and partner, partners' response time, unmet needs; the CSV download."""
    errors: dict[str, str] = {}
    period: dict[str, date | None] = {"from": None, "to": None}
    for key, value in (("from", date_from), ("to", date_to)):
        try:
            period[key] = _date(value, key)
        except BadRequest:
            errors[key] = "Give a date as YYYY-MM-DD."
    report = None
    if not errors:
        try:
            report = reports.referral_report(session, actor=user, date_from=period["from"],
                                             date_to=period["to"])
        except BadRequest as exc:
            errors[exc.field or "to"] = _sentence(exc.message)
    query = urlencode([(k, v) for k, v in (("from", date_from.strip()),
                                            ("to", date_to.strip())) if v and not errors])
    context: dict[str, Any] = {
        "form": {"from": date_from, "to": date_to}, "errors": errors, "report": report,
        "csv": "/api/v1/reports/referrals?" + "&".join(filter(None, [query, "format=csv"])),
        "statuses": STATUS_LABELS, "percent": _percent}
    if report is not None:
        context.update(
            rate_chart=rate_chart(report["closed_loop_by_month"]),
            sent_chart=sent_chart(report["by_month"]),
            months=[{**m, "label": _month_label(m["key"]), "rate_text": _percent(m["rate"])}
                    for m in report["closed_loop_by_month"]])
    return templates.TemplateResponse(request, "admin/reports.html", context,
                                      status_code=422 if errors else 200)


