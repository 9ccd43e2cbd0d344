"""The access-control matrix: every route × every kind of caller × ownership, allow or deny.

Callers: anonymous; an admin; agency A's supervisor and case manager; agency B's case manager
(another agency); the partner of organization 0 and the partner of organization 1 (another
organization). The records every route is called on belong to agency A and organization 0: a
client of A with consent for org 0, a referral from A to org 0, org 0's service and site, a
pending edit of org 0's listing. So "cm_b" and "partner1" are the other-agency and
other-organization cells.

Each row names who gets through; everyone else must be refused: 401 (anonymous, API), a
redirect to the sign-in page (anonymous, pages), 403 (wrong role, or a listing of another
organization), or 404 (a record of another agency or organization, whose existence must not
leak). "Gets through" means any answer but those: a 409 or 422 for the generated body still
proves the gate opened. A route without a row fails the suite, so a new endpoint must be
placed in the matrix.

Each route runs against its own copy of the world (SQLite: access is decided above the
database), so a caller's write cannot change another cell's answer.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from indexer.pipeline import load
from service.access import RULES, app_routes
from service.accounts import security
from service.accounts import service as accounts
from service.accounts.tables import api_token
from service.app import create_app
from service.audit.service import CLI
from service.config import Settings
from service.db import Database
from service.directory.tables import hsds_tables, import_run
from tests.factories import directory_package

CALLERS = ("anonymous", "admin", "supervisor", "cm_a", "cm_b", "partner0", "partner1")
PASSWORD = "matrix lantern orchard 77"
PARTNER_BODY = "partner's body"  # in a body: what a partner sends instead (their own move)
# Which user a route's {user_id} names, where it is not agency A's case manager.
USER_FOR = {"DELETE /api/v1/users/{user_id}/organizations/{organization_id}": "partner0",
            "POST /api/v1/users/{user_id}/organizations": "partner0",
            "POST /admin/users/{user_id}/organizations/remove": "partner0",
            "POST /admin/users/{user_id}/organizations": "partner0"}
# Query strings a page needs to show anything.
QUERY = {"GET /referrals/new": "?client={client_id}&service_at_location={sal0}"}

EVERYONE = set(CALLERS)
SIGNED_IN = EVERYONE - {"anonymous"}
ADMIN = {"admin"}
STAFF_A = {"supervisor", "cm_a"}  # agency A's staff: the records' own agency
STAFF = STAFF_A | {"cm_b"}  # any agency's staff (the route scopes to the caller's agency)
PARTNERS = {"partner0", "partner1"}


def _allow(*groups: set[str] | str) -> frozenset[str]:
    out: set[str] = set()
    for group in groups:
        out |= {group} if isinstance(group, str) else group
    return frozenset(out)


# "METHOD /path" -> (who gets through, JSON or form body for writes)
MATRIX: dict[str, tuple[frozenset[str], dict[str, Any] | None]] = {
    # meta, documentation, public listings and search, the HSDS API
    **{key: (_allow(EVERYONE), None) for key, rule in RULES.items() if rule.is_public},
    # accounts
    "GET /api/v1/auth/me": (_allow(SIGNED_IN), None),
    "POST /api/v1/auth/logout": (_allow(SIGNED_IN), {}),
    "POST /logout": (_allow(SIGNED_IN), {}),
    # user management: admins; a supervisor reads their own agency's users (cm_a is in it)
    "GET /api/v1/users": (_allow(ADMIN, "supervisor"), None),
    "POST /api/v1/users": (_allow(ADMIN), {"username": "newbie", "password": PASSWORD,
                                           "role": "case_manager", "agency": "A"}),
    "GET /api/v1/users/{user_id}": (_allow(ADMIN, "supervisor"), None),
    "PATCH /api/v1/users/{user_id}": (_allow(ADMIN), {"is_active": True}),
    "POST /api/v1/users/{user_id}/organizations": (_allow(ADMIN), {"organization_id": "x"}),
    # (the user here is partner 0, who speaks for organization 0)
    "DELETE /api/v1/users/{user_id}/organizations/{organization_id}": (_allow(ADMIN), None),
    "GET /api/v1/agencies": (_allow(ADMIN), None),
    # clients of agency A
    "POST /api/v1/clients": (_allow(STAFF), {"name": "T. Q."}),
    "GET /api/v1/clients": (_allow(ADMIN, STAFF), None),
    "GET /api/v1/clients/{client_id}": (_allow(ADMIN, STAFF_A), None),
    "POST /api/v1/clients/{client_id}/consents": (_allow(STAFF_A), {
        "shares": ["identity"], "shared_with_organization_id": "{organization_id}",
        "purpose": "referral"}),
    "POST /api/v1/clients/{client_id}/consents/{consent_id}/revoke": (_allow(STAFF_A), {}),
    "POST /api/v1/clients/{client_id}/reassign": (_allow("supervisor"),
                                                  {"case_manager_id": "{user_id}"}),
    "GET /api/v1/caseloads": (_allow("supervisor"), None),
    # referrals from agency A to organization 0
    "POST /api/v1/referrals": (_allow(STAFF_A), {
        "client_id": "{client_id}", "service_at_location_id": "{service_at_location_id}",
        "need": "food", "urgency": "soon", "send": True}),
    "GET /api/v1/referrals": (_allow(ADMIN, STAFF, PARTNERS), None),
    "GET /api/v1/referrals/work-queue": (_allow(STAFF), None),
    "GET /api/v1/referrals/{referral_id}": (_allow(ADMIN, STAFF_A, "partner0"), None),
    "POST /api/v1/referrals/{referral_id}/transitions": (_allow(STAFF_A, "partner0"), {
        "to": "cancelled", "expected_version": 2, "reason_code": "client_declined",
        PARTNER_BODY: {"to": "accepted", "expected_version": 2}}),
    "POST /api/v1/referrals/{referral_id}/follow-ups": (_allow(STAFF_A), {
        "outcome": "got_help", "contact_method": "phone"}),
    "GET /api/v1/referrals/{referral_id}/fhir": (_allow(ADMIN, STAFF_A, "partner0"), None),
    "GET /api/v1/reports/referrals": (_allow(ADMIN, STAFF, PARTNERS), None),
    "GET /api/v1/notifications": (_allow(SIGNED_IN), None),
    "GET /api/v1/audit": (_allow(ADMIN), None),
    # listings of organization 0: its partner and admins edit; the other partner is refused
    "PATCH /api/v1/services/{service_id}": (_allow(ADMIN, "partner0"), {"name": "Renamed"}),
    "PATCH /api/v1/locations/{location_id}": (_allow(ADMIN, "partner0"), {"name": "Renamed"}),
    "POST /api/v1/services/{service_id}/verify": (_allow(ADMIN, "partner0"), {}),
    "GET /api/v1/listing-edits": (_allow(ADMIN, PARTNERS), None),
    "POST /api/v1/listing-edits/{edit_id}/approve": (_allow(ADMIN), {}),
    "POST /api/v1/listing-edits/{edit_id}/reject": (_allow(ADMIN), {"reason": "no"}),
    "POST /api/v1/listing-edits/{edit_id}/revert": (_allow(ADMIN), {}),
    "GET /api/v1/listings/stale": (_allow(ADMIN, PARTNERS), None),
    "GET /api/v1/partner/listings": (_allow(PARTNERS), None),
    # pages: case managers (their agency's clients and referrals)
    "GET /dashboard": (_allow(STAFF), None),
    "GET /clients": (_allow(STAFF), None),
    "POST /clients": (_allow(STAFF), {"name": "T. Q."}),
    "GET /clients/{client_id}": (_allow(STAFF_A), None),
    "POST /clients/{client_id}/consents": (_allow(STAFF_A), {
        "shares": "identity", "shared_with_organization_id": "{organization_id}",
        "purpose": "referral"}),
    "POST /clients/{client_id}/consents/{consent_id}/revoke": (_allow(STAFF_A), {}),
    "GET /clients/{client_id}/print": (_allow(STAFF_A), None),
    "GET /clients/{client_id}/text": (_allow(STAFF_A), None),
    "GET /referrals/new": (_allow(STAFF_A), None),  # for agency A's client
    "POST /referrals": (_allow(STAFF_A), {
        "client_id": "{client_id}", "service_at_location_id": "{service_at_location_id}",
        "need": "food", "urgency": "soon"}),
    "GET /referrals/{referral_id}": (_allow(STAFF_A), None),
    "POST /referrals/{referral_id}/transition": (_allow(STAFF_A), {
        "to": "cancelled", "expected_version": "2", "reason_code": "client_declined"}),
    "POST /referrals/{referral_id}/follow-up": (_allow(STAFF_A), {"outcome": "got_help"}),
    # pages: partners (organization 0's inbox)
    "GET /partner": (_allow(PARTNERS), None),
    "GET /partner/referrals/{referral_id}": (_allow("partner0"), None),
    "POST /partner/referrals/{referral_id}/transition": (_allow("partner0"), {
        "to": "accepted", "version": "2"}),
    "GET /partner/listings": (_allow(PARTNERS), None),
    "GET /partner/listings/{service_id}": (_allow("partner0"), None),
    "POST /partner/listings/{service_id}/verify": (_allow("partner0"), {}),
    "POST /partner/listings/{service_id}/details": (_allow("partner0"), {"name": "Renamed"}),
    "POST /partner/listings/{service_id}/status": (_allow("partner0"), {"status": "active"}),
    "POST /partner/listings/{service_id}/hours": (_allow("partner0"), {}),
    "POST /partner/listings/{service_id}/eligibility": (_allow("partner0"), {}),
    "POST /partner/listings/{service_id}/capacity": (_allow("partner0"), {}),
    # pages: admins
    "GET /admin": (_allow(ADMIN), None),
    "GET /admin/imports": (_allow(ADMIN), None),
    "GET /admin/imports/{run_id}": (_allow(ADMIN), None),
    "GET /admin/users": (_allow(ADMIN), None),
    "POST /admin/users": (_allow(ADMIN), {"username": "newbie", "password": PASSWORD,
                                          "role": "case_manager", "agency": "A"}),
    "GET /admin/users/{user_id}": (_allow(ADMIN), None),
    "POST /admin/users/{user_id}/active": (_allow(ADMIN), {"active": "true"}),
    "POST /admin/users/{user_id}/organizations": (_allow(ADMIN), {"organization_id": "x"}),
    "POST /admin/users/{user_id}/organizations/remove": (_allow(ADMIN),
                                                         {"organization_id": "x"}),
    "GET /admin/edits": (_allow(ADMIN), None),
    "POST /admin/edits/{edit_id}/approve": (_allow(ADMIN), {}),
    "POST /admin/edits/{edit_id}/reject": (_allow(ADMIN), {"reason": "no"}),
    "POST /admin/edits/{edit_id}/revert": (_allow(ADMIN), {}),
    "GET /admin/stale": (_allow(ADMIN), None),
    "GET /admin/reports": (_allow(ADMIN), None),
}


class World:
    """The records and callers every cell uses, built once into a SQLite file."""

    def __init__(self, path: Path, ids: dict[str, Any], users: dict[str, int]) -> None:
        self.path = path
        self.ids = ids
        self.users = users


def _build_world(folder: Path) -> World:
    path = folder / "world.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    load(db, directory_package(2).write(folder / "pkg"), source="city")
    ids: dict[str, Any] = {}
    with db.session() as session:
        for name in ("organization", "service", "location", "service_at_location"):
            table = hsds_tables[name]
            ids.update(session.execute(select(table.c.record_source_id, table.c.id)).all())
        ids["run_id"] = session.execute(select(import_run.c.id)).scalar()
    users: dict[str, int] = {}
    with db.session(write=True) as session:
        for name, role, agency, orgs in (
                ("admin", "admin", None, ()), ("supervisor", "supervisor", "A", ()),
                ("cm_a", "case_manager", "A", ()), ("cm_b", "case_manager", "B", ()),
                ("partner0", "partner", None, (ids["org0"],)),
                ("partner1", "partner", None, (ids["org1"],))):
            users[name] = accounts.create_user(
                session, actor=CLI, username=f"m-{name}", password=PASSWORD, role=role,
                agency_name=agency, organization_ids=orgs)["id"]
    db.dispose()
    world = World(path, ids, users)
    settings = Settings(database_url=f"sqlite:///{path}", environment="test", demo_notice=False,
                        geocode_cache_path=folder / "geo.sqlite", cookie_secure=False,
                        partner_edits_require_approval=True)
    with TestClient(create_app(settings)) as http:
        cm_a, partner0 = _headers(world, "cm_a"), _headers(world, "partner0")
        made = http.post("/api/v1/clients", headers=cm_a, json={
            "name": "Rosa Q. Example", "date_of_birth": "1984-06-02"})
        assert made.status_code == 201, made.text
        ids["client_id"] = made.json()["client"]["id"]
        consent = http.post(f"/api/v1/clients/{ids['client_id']}/consents", headers=cm_a, json={
            "shares": ["identity", "contact", "needs", "referral_status"],
            "shared_with_organization_id": ids["org0"], "purpose": "referral"})
        assert consent.status_code == 201, consent.text
        ids["consent_id"] = consent.json()["id"]
        sent = http.post("/api/v1/referrals", headers=cm_a, json={
            "client_id": ids["client_id"], "service_at_location_id": ids["sal0"],
            "need": "food", "urgency": "soon", "send": True})
        assert sent.status_code == 201, sent.text
        ids["referral_id"] = sent.json()["id"]
        edit = http.patch(f"/api/v1/services/{ids['svc0']}", headers=partner0,
                          json={"description": "Open to all"})
        assert edit.status_code == 202, edit.text
        ids["edit_id"] = edit.json()["edit"]["id"]
    return world


def _headers(world: World, caller: str) -> dict[str, str]:
    """A fresh bearer token for the caller (a cell may sign out or deactivate someone)."""
    if caller == "anonymous":
        return {}
    token = security.new_token()
    now = datetime.now(UTC)
    db = Database(f"sqlite:///{world.path}")
    with db.session(write=True) as session:
        session.execute(insert(api_token).values(
            user_id=world.users[caller], token_hash=security.token_hash(token), name="matrix",
            created_at=now, expires_at=now + timedelta(hours=1)))
    db.dispose()
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build_world(tmp_path_factory.mktemp("matrix"))


def _routes() -> list[str]:
    return [entry.key for entry in app_routes(create_app(Settings(environment="test")))
            if not entry.key.startswith(("MOUNT ", "HEAD "))]


def test_every_route_is_in_the_matrix() -> None:
    missing = [key for key in _routes() if key not in MATRIX]
    assert not missing, f"routes missing from the access matrix (tests/test_access_matrix.py): "\
                        f"{missing}"
    stale = [key for key in MATRIX if key not in _routes() and not key.startswith("MOUNT ")]
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"


def _fill(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return ids[value[1:-1]]
    return value


def _path(key: str, ids: dict[str, Any]) -> str:
    path = key.split(" ", 1)[1]
    for name, value in ids.items():
        path = path.replace("{" + name + "}", str(value))
    return path


@pytest.fixture
def cell_world(world: World, tmp_path: Path) -> Iterator[tuple[World, TestClient]]:
    path = tmp_path / "cell.db"
    shutil.copy(world.path, path)
    copy = World(path, world.ids, world.users)
    settings = Settings(database_url=f"sqlite:///{path}", environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geo.sqlite", cookie_secure=False,
                        hsds_rate_limit_per_minute=0)
    with TestClient(create_app(settings), follow_redirects=False) as http:
        yield copy, http


def _refused(response, caller: str, key: str) -> bool:  # noqa: ANN001
    if response.status_code in (401, 403, 404):
        return True
    is_page = not key.split(" ", 1)[1].startswith(("/api/", "/hsds/"))
    return (is_page and caller == "anonymous" and response.status_code == 303
            and response.headers["location"].startswith("/login"))


PROTECTED = sorted(key for key in MATRIX
                   if key in RULES and not RULES[key].is_public and not key.startswith("MOUNT"))


def call(world: World, http: TestClient, key: str, caller: str,
         body: dict[str, Any] | None, **more_ids: Any):  # noqa: ANN201
    """Call route `key` as `caller` on agency A's and organization 0's records, with `body`
    ("{name}" values filled from the world's ids and `more_ids`; a partner sends the body's
    PARTNER_BODY instead when it has one). Pages get form fields and ask for HTML."""
    method = key.split(" ", 1)[0]
    ids = world.ids | {"user_id": world.users[USER_FOR.get(key, "cm_a")],
                       "organization_id": world.ids["org0"], "service_id": world.ids["svc0"],
                       "location_id": world.ids["loc0"],
                       "service_at_location_id": world.ids["sal0"]} | more_ids
    path = _path(key, ids) + _path("GET " + QUERY.get(key, ""), ids)
    is_page = not path.startswith(("/api/", "/hsds/"))
    headers = _headers(world, caller) | ({"accept": "text/html"} if is_page else {})
    if body is None or method == "GET":
        return http.request(method, path, headers=headers)
    chosen = body.get(PARTNER_BODY, body) if caller.startswith("partner") else body
    filled = {k: _fill(v, ids) for k, v in chosen.items() if k != PARTNER_BODY}
    if is_page:
        return http.request(method, path, headers=headers,
                            data={k: str(v) for k, v in filled.items()})
    return http.request(method, path, headers=headers, json=filled)


@pytest.mark.parametrize("key", PROTECTED)
def test_each_caller_is_allowed_or_refused_as_the_matrix_says(
        cell_world: tuple[World, TestClient], key: str) -> None:
    world, http = cell_world
    allowed, body = MATRIX[key]
    wrong = []
    # Refused callers first, then the allowed ones: a write by an allowed caller cannot
    # open a gate for a refused one.
    for caller in sorted(CALLERS, key=lambda c: c in allowed):
        response = call(world, http, key, caller, body)
        assert response.status_code < 500, (key, caller, response.text[:300])
        refused = _refused(response, caller, key)
        if refused == (caller in allowed):
            wrong.append(f"{caller}: {response.status_code} "
                         f"({'refused' if refused else 'let through'})")
    assert not wrong, f"{key}: {wrong}"


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_public_routes_let_everyone_through(cell_world: tuple[World, TestClient],
                                            caller: str) -> None:
    world, http = cell_world
    headers = _headers(world, caller)
    for key in sorted(k for k, rule in RULES.items() if rule.is_public
                      and k.startswith("GET ") and "{" not in k and k != "GET /openapi.json"):
        response = http.get(key.split(" ", 1)[1], headers=headers)
        assert response.status_code not in (401, 403, 404), (key, caller, response.status_code)
        assert response.status_code < 500, (key, caller, response.status_code)
