"""Who may call each route: the one table of rules, and the one dependency that applies it.

Every route of the app has a rule in `RULES`, keyed by "METHOD /path" as the app serves it.
`enforce` runs before every FastAPI route (it is an app-wide dependency, see `service.app`):
public routes pass untouched; any other route needs a valid bearer token whose user has one of
the rule's roles (else 401 or 403). A route with no rule is refused (fail closed), and
`tests/test_access.py` fails while any route lacks one.

A rule's `scope` says which rows the route's service function lets the caller see; the services
apply it with the signed-in `Principal` (e.g. `service.clients.service` answers 404 for a client
of another agency, so existence does not leak):

- `public`: anyone, signed in or not;
- `self`: the caller's own account and tokens;
- `agency`: rows of the caller's agency; an admin may read any agency's (audited);
- `organization`: listings of the directory organizations a partner speaks for (and only their
  sites when their link names some); an admin may change any;
- `all`: everything (admins).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Mount, WebSocketRoute

from service.accounts.tables import ROLES
from service.deps import authenticate
from service.errors import Forbidden, Unauthorized
from service.pages.session import SESSION_COOKIE, check_csrf

log = logging.getLogger(__name__)

ADMIN, SUPERVISOR, CASE_MANAGER, PARTNER = ROLES
API_PATHS = ("/api/", "/hsds/")
Scope = Literal["public", "self", "agency", "organization", "all"]


@dataclass(frozen=True)
class Requires:
    """A route's rule: the roles that may call it, and which rows they see there."""

    roles: frozenset[str] = frozenset()
    scope: Scope = "public"

    def __post_init__(self) -> None:
        if (self.scope == "public") != (not self.roles):
            raise ValueError("a public rule names no roles; any other rule names some")
        unknown = self.roles - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")

    @property
    def is_public(self) -> bool:
        return self.scope == "public"


def requires(*roles: str, scope: Scope) -> Requires:
    """A rule for signed-in users with one of `roles`."""
    return Requires(frozenset(roles), scope)


PUBLIC = Requires()
ANY_USER = frozenset(ROLES)
AGENCY_STAFF = (SUPERVISOR, CASE_MANAGER)

RULES: dict[str, Requires] = {
    # meta and documentation
    "GET /health": PUBLIC,
    "GET /openapi.json": PUBLIC,
    "GET /docs": PUBLIC,
    "GET /docs/oauth2-redirect": PUBLIC,
    "GET /redoc": PUBLIC,
    # pages (service/pages): public for now; sign-in comes with the next increment
    "GET /": PUBLIC,
    "GET /search": PUBLIC,
    "GET /services/{service_id}": PUBLIC,
    "GET /login": PUBLIC,
    "POST /login": PUBLIC,  # CSRF-checked like every form (service/pages/session.py)
    "POST /logout": Requires(ANY_USER, "self"),
    "MOUNT /static": PUBLIC,  # the app's own CSS and JS (service/static)
    # pages: case managers (service/pages/clients.py, referrals.py, search.py): agency staff;
    # their agency's clients and referrals only (others are 404). The printable and text
    # resource lists are the public search's results, with nothing about a client.
    "GET /search/print": PUBLIC,
    "GET /search/text": PUBLIC,
    "GET /dashboard": requires(*AGENCY_STAFF, scope="agency"),
    "GET /clients": requires(*AGENCY_STAFF, scope="agency"),
    "POST /clients": requires(*AGENCY_STAFF, scope="agency"),
    "GET /clients/{client_id}": requires(*AGENCY_STAFF, scope="agency"),
    "GET /clients/{client_id}/print": requires(*AGENCY_STAFF, scope="agency"),
    "GET /clients/{client_id}/text": requires(*AGENCY_STAFF, scope="agency"),
    "POST /clients/{client_id}/consents": requires(*AGENCY_STAFF, scope="agency"),
    "POST /clients/{client_id}/consents/{consent_id}/revoke":
        requires(*AGENCY_STAFF, scope="agency"),
    "GET /referrals/new": requires(*AGENCY_STAFF, scope="agency"),
    "POST /referrals": requires(*AGENCY_STAFF, scope="agency"),
    "GET /referrals/{referral_id}": requires(*AGENCY_STAFF, scope="agency"),
    "POST /referrals/{referral_id}/transition": requires(*AGENCY_STAFF, scope="agency"),
    "POST /referrals/{referral_id}/follow-up": requires(*AGENCY_STAFF, scope="agency"),
    # pages: partners (service/pages/partner.py): the inbox of referrals sent to their
    # organizations (another's referral is 404) and their organizations' listings (another's
    # listing is 403 naming it, as listings are public)
    "GET /partner": requires(PARTNER, scope="agency"),
    "GET /partner/referrals/{referral_id}": requires(PARTNER, scope="agency"),
    "POST /partner/referrals/{referral_id}/transition": requires(PARTNER, scope="agency"),
    "GET /partner/listings": requires(PARTNER, scope="organization"),
    "GET /partner/listings/{service_id}": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/verify": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/details": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/status": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/hours": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/eligibility": requires(PARTNER, scope="organization"),
    "POST /partner/listings/{service_id}/capacity": requires(PARTNER, scope="organization"),
    # pages: admins (service/pages/admin.py)
    "GET /admin": requires(ADMIN, scope="all"),
    "GET /admin/imports": requires(ADMIN, scope="all"),
    "GET /admin/imports/{run_id}": requires(ADMIN, scope="all"),
    "GET /admin/users": requires(ADMIN, scope="all"),
    "POST /admin/users": requires(ADMIN, scope="all"),
    "GET /admin/users/{user_id}": requires(ADMIN, scope="all"),
    "POST /admin/users/{user_id}/active": requires(ADMIN, scope="all"),
    "POST /admin/users/{user_id}/organizations": requires(ADMIN, scope="all"),
    "POST /admin/users/{user_id}/organizations/remove": requires(ADMIN, scope="all"),
    "GET /admin/edits": requires(ADMIN, scope="all"),
    "POST /admin/edits/{edit_id}/approve": requires(ADMIN, scope="all"),
    "POST /admin/edits/{edit_id}/reject": requires(ADMIN, scope="all"),
    "POST /admin/edits/{edit_id}/revert": requires(ADMIN, scope="all"),
    "GET /admin/stale": requires(ADMIN, scope="all"),
    "GET /admin/reports": requires(ADMIN, scope="all"),
    # the directory and search: public listings
    "GET /api/v1/services": PUBLIC,
    "GET /api/v1/services/{service_id}": PUBLIC,
    "GET /api/v1/search": PUBLIC,
    "POST /api/v1/search": PUBLIC,
    "GET /api/v1/suggest": PUBLIC,
    "GET /api/v1/categories": PUBLIC,
    # the HSDS 3.1 API (service/hsds_api): the public directory, read-only
    "GET /hsds/": PUBLIC,
    "GET /hsds/profile": PUBLIC,
    "GET /hsds/services": PUBLIC,
    "GET /hsds/services/{id}": PUBLIC,
    "GET /hsds/service_at_locations": PUBLIC,
    "GET /hsds/service_at_locations/{id}": PUBLIC,
    "GET /hsds/organizations": PUBLIC,
    "GET /hsds/organizations/{id}": PUBLIC,
    "GET /hsds/taxonomies": PUBLIC,
    "GET /hsds/taxonomies/{id}": PUBLIC,
    "GET /hsds/taxonomy_terms": PUBLIC,
    "GET /hsds/taxonomy_terms/{id}": PUBLIC,
    # accounts
    "POST /api/v1/auth/token": PUBLIC,
    "GET /api/v1/auth/me": Requires(ANY_USER, "self"),
    "POST /api/v1/auth/logout": Requires(ANY_USER, "self"),
    # user management: admins; a supervisor reads their own agency's users
    "GET /api/v1/users": requires(ADMIN, SUPERVISOR, scope="agency"),
    "POST /api/v1/users": requires(ADMIN, scope="all"),
    "GET /api/v1/users/{user_id}": requires(ADMIN, SUPERVISOR, scope="agency"),
    "PATCH /api/v1/users/{user_id}": requires(ADMIN, scope="all"),
    "POST /api/v1/users/{user_id}/organizations": requires(ADMIN, scope="all"),
    "DELETE /api/v1/users/{user_id}/organizations/{organization_id}":
        requires(ADMIN, scope="all"),
    "GET /api/v1/agencies": requires(ADMIN, scope="all"),
    # clients: agency staff; admins read for oversight; never partners or anonymous
    "POST /api/v1/clients": requires(*AGENCY_STAFF, scope="agency"),
    "GET /api/v1/clients": requires(ADMIN, *AGENCY_STAFF, scope="agency"),
    "GET /api/v1/clients/{client_id}": requires(ADMIN, *AGENCY_STAFF, scope="agency"),
    "POST /api/v1/clients/{client_id}/consents": requires(*AGENCY_STAFF, scope="agency"),
    "POST /api/v1/clients/{client_id}/consents/{consent_id}/revoke":
        requires(*AGENCY_STAFF, scope="agency"),
    # caseloads: a supervisor sees the agency's and moves clients between its staff
    "POST /api/v1/clients/{client_id}/reassign": requires(SUPERVISOR, scope="agency"),
    "GET /api/v1/caseloads": requires(SUPERVISOR, scope="agency"),
    # referrals (service/referrals): agency staff make, send, cancel and follow up; partners
    # answer the referrals sent to their organizations (and sites); admins read. The scope is
    # applied in service.referrals.service: the caller's agency, or (partners) their
    # organizations' inbox; anything else is 404.
    "POST /api/v1/referrals": requires(*AGENCY_STAFF, scope="agency"),
    "GET /api/v1/referrals": requires(ADMIN, *AGENCY_STAFF, PARTNER, scope="agency"),
    "GET /api/v1/referrals/work-queue": requires(*AGENCY_STAFF, scope="agency"),
    "GET /api/v1/referrals/{referral_id}": requires(ADMIN, *AGENCY_STAFF, PARTNER,
                                                    scope="agency"),
    "POST /api/v1/referrals/{referral_id}/transitions":
        requires(*AGENCY_STAFF, PARTNER, scope="agency"),
    "POST /api/v1/referrals/{referral_id}/follow-ups": requires(*AGENCY_STAFF, scope="agency"),
    "GET /api/v1/referrals/{referral_id}/fhir": requires(ADMIN, *AGENCY_STAFF, PARTNER,
                                                         scope="agency"),
    # reports (service/reports): admins everything; staff their agency's referrals; partners
    # the referrals sent to their organizations (the same scope as reading referrals)
    "GET /api/v1/reports/referrals": requires(ADMIN, *AGENCY_STAFF, PARTNER, scope="agency"),
    # notifications (service/notifications): each user reads their own
    "GET /api/v1/notifications": Requires(ANY_USER, "self"),
    # partner listing updates (service/directory/listing_edits.py): partners edit and confirm
    # their organizations' listings (another organization's: 403 naming it, listings being
    # public); admins edit any, and approve, reject and revert edits
    "PATCH /api/v1/services/{service_id}": requires(ADMIN, PARTNER, scope="organization"),
    "POST /api/v1/services/{service_id}/verify": requires(ADMIN, PARTNER, scope="organization"),
    "PATCH /api/v1/locations/{location_id}": requires(ADMIN, PARTNER, scope="organization"),
    "GET /api/v1/listing-edits": requires(ADMIN, PARTNER, scope="organization"),
    "POST /api/v1/listing-edits/{edit_id}/approve": requires(ADMIN, scope="all"),
    "POST /api/v1/listing-edits/{edit_id}/reject": requires(ADMIN, scope="all"),
    "POST /api/v1/listing-edits/{edit_id}/revert": requires(ADMIN, scope="all"),
    "GET /api/v1/listings/stale": requires(ADMIN, PARTNER, scope="organization"),
    "GET /api/v1/partner/listings": requires(PARTNER, scope="organization"),
    # the audit log
    "GET /api/v1/audit": requires(ADMIN, scope="all"),
}


@dataclass(frozen=True)
class RouteEntry:
    """One (method, path) the app serves, and what answers it."""

    key: str
    endpoint: Callable | None
    is_api_route: bool  # runs FastAPI dependencies, so `enforce` guards it


def _contexts(routes: list[BaseRoute]) -> Iterator[object]:
    try:  # FastAPI >= 0.16x keeps included routers lazily; this lists their effective routes
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI flattens included routers
        yield from routes
        return
    yield from iter_route_contexts(routes)


def app_routes(app: FastAPI) -> list[RouteEntry]:
    """Every route of `app`, one entry per method, with the full path as served."""
    from fastapi.routing import APIRoute

    entries = []
    for ctx in _contexts(app.routes):
        original = getattr(ctx, "original_route", ctx)
        path = ctx.path
        if isinstance(original, Mount):
            entries.append(RouteEntry(f"MOUNT {path}", None, False))
            continue
        if isinstance(original, WebSocketRoute):
            entries.append(RouteEntry(f"WEBSOCKET {path}", ctx.endpoint, False))
            continue
        methods = set(ctx.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # HEAD follows GET
        for method in sorted(methods):
            entries.append(RouteEntry(f"{method} {path}", ctx.endpoint,
                                      isinstance(original, APIRoute)))
    return entries


def rule_for(key: str) -> Requires | None:
    """The declared rule for "METHOD /path", or None."""
    return RULES.get(key)


def _rules_by_endpoint(app: FastAPI) -> dict[tuple[Callable, str], Requires | None]:
    table = {}
    for entry in app_routes(app):
        method = entry.key.split(" ", 1)[0]
        table[(entry.endpoint, method)] = rule_for(entry.key)
    return table


def prepare(app: FastAPI) -> None:
    """Build the table of route rules now, at start-up: built by the first request instead, it
    would hold that request (and every other one on the worker) for a third of a second."""
    app.state.access_rules = _rules_by_endpoint(app)


def _rule_for_request(request: Request) -> Requires | None:
    state = request.app.state
    endpoint = request.scope.get("endpoint")
    method = "GET" if request.method == "HEAD" else request.method
    table = getattr(state, "access_rules", None)
    if table is None or (endpoint, method) not in table:
        table = state.access_rules = _rules_by_endpoint(request.app)
    return table.get((endpoint, method))


async def enforce(request: Request) -> None:
    """Apply the route's rule: public passes; otherwise a signed-in user with a listed role."""
    rule = _rule_for_request(request)
    if rule is None:
        log.error("refused %s %s: no access rule is declared for this route; add one to RULES "
                  "in service/access.py", request.method, request.url.path)
        raise Forbidden("no access rule is declared for this route (service/access.py)",
                        field="route")
    await check_csrf(request)
    if rule.is_public:
        if SESSION_COOKIE in request.cookies and not request.url.path.startswith(API_PATHS):
            await run_in_threadpool(authenticate, request)  # a page shows who is signed in
        return
    principal = await run_in_threadpool(authenticate, request)
    if principal is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <token> (a valid, "
                           "unexpired token), or sign in on the web page", field="authorization")
    if principal.role not in rule.roles:
        raise Forbidden(f"a {principal.role.replace('_', ' ')} may not do this", field="role")
