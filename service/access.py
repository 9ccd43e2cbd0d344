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

log = logging.getLogger(__name__)

ADMIN, SUPERVISOR, CASE_MANAGER, PARTNER = ROLES
Scope = Literal["public", "self", "agency", "all"]


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
    "MOUNT /static": PUBLIC,  # the app's own CSS and JS (service/static)
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
    # clients: agency staff; admins read for oversight; never partners or anonymous
    "POST /api/v1/clients": requires(*AGENCY_STAFF, scope="agency"),
    "GET /api/v1/clients": requires(ADMIN, *AGENCY_STAFF, scope="agency"),
    "GET /api/v1/clients/{client_id}": requires(ADMIN, *AGENCY_STAFF, scope="agency"),
    "POST /api/v1/clients/{client_id}/consents": requires(*AGENCY_STAFF, scope="agency"),
    "POST /api/v1/clients/{client_id}/consents/{consent_id}/revoke":
        requires(*AGENCY_STAFF, scope="agency"),
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
    if rule.is_public:
        return
    principal = await run_in_threadpool(authenticate, request)
    if principal is None:
        raise Unauthorized("sign in first: send Authorization: Bearer <token> (a valid, "
                           "unexpired token)", field="authorization")
    if principal.role not in rule.roles:
        raise Forbidden(f"a {principal.role.replace('_', ' ')} may not do this", field="role")
