"""User management over real HTTP: admins add, change, deactivate and link users; supervisors
read their agency's; everyone else is refused; every change is audited, never the password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from service.accounts import security
from service.audit.tables import audit_event
from service.db import Database
from service.directory.tables import location
from tests.service.accounts.helpers import (
    PASSWORD,
    an_organization,
    create_user,
    sign_in,
    user_headers,
)

NEW_PASSWORD = "quartz meadow lantern 7"


@pytest.fixture
def admin(db: Database, client) -> dict[str, str]:  # noqa: ANN001
    return user_headers(db, client, "ada", role="admin")


def _add(client, headers: dict[str, str], status: int = 201, **body: object) -> dict:  # noqa: ANN001
    response = client.post("/api/v1/users", headers=headers,
                           json={"password": PASSWORD, **body})
    assert response.status_code == status, response.text
    return response.json()


def _patch(client, headers: dict[str, str], user_id: int, status: int = 200,  # noqa: ANN001
           **body: object) -> dict:
    response = client.patch(f"/api/v1/users/{user_id}", headers=headers, json=body)
    assert response.status_code == status, response.text
    return response.json()


def _events(db: Database, action: str) -> list[dict]:
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(audit_event).where(audit_event.c.action == action)
            .order_by(audit_event.c.id)).mappings()]


def test_an_admin_adds_staff_and_partners_and_lists_them(db: Database, client, admin,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    org = an_organization(db, tmp_path)
    with db.session() as session:
        site = session.execute(select(location.c.id)
                               .where(location.c.organization_id == org)).scalar()
    casey = _add(client, admin, username="Casey", role="case_manager", agency="North Agency",
                 email="casey@example.org")
    assert casey["username"] == "casey" and casey["agency_name"] == "North Agency"
    assert casey["email"] == "casey@example.org" and casey["is_active"] is True
    pat = _add(client, admin, username="pat", role="partner", organization_ids=[org],
               location_ids=[site])
    assert pat["organization_ids"] == [org]
    assert pat["organizations"][0]["location_ids"] == [site]
    _add(client, admin, username="sue", role="supervisor", agency="South Agency")

    everyone = client.get("/api/v1/users", headers=admin).json()
    assert [u["username"] for u in everyone["items"]] == ["ada", "casey", "pat", "sue"]
    partners = client.get("/api/v1/users", params={"role": "partner"}, headers=admin).json()
    assert [u["username"] for u in partners["items"]] == ["pat"]
    north = client.get("/api/v1/users", params={"agency_id": casey["agency_id"]},
                       headers=admin).json()
    assert [u["username"] for u in north["items"]] == ["casey"]
    assert client.get(f"/api/v1/users/{pat['id']}", headers=admin).json()["role"] == "partner"

    # The new users can sign in; the audit log has each creation, never the password.
    sign_in(client, "casey")
    created = _events(db, "user.create")
    assert len(created) == 4  # ada (from the shell) and the three above
    assert all(PASSWORD not in json.dumps(e["changes"]) for e in created)
    assert "casey@example.org" not in json.dumps([e["changes"] for e in created])

    agencies = client.get("/api/v1/agencies", headers=admin).json()
    assert [(a["name"], a["active_users"]) for a in agencies] == [("North Agency", 1),
                                                                  ("South Agency", 1)]


@pytest.mark.parametrize(("password", "why"), [
    ("short pass1", "at least 12 characters"),
    ("Password2024!", "too common"),
    ("P@ssw0rd-2024", "too common"),
    ("casey-the-great", "username"),
    ("zzzzzzzzzzzzzzzz", "too common"),
])
def test_a_weak_password_is_refused_naming_the_field(db: Database, client, admin,  # noqa: ANN001
                                                     password: str, why: str) -> None:
    refused = _add(client, admin, status=400, username="casey", role="case_manager",
                   agency="North Agency", password=password)
    assert refused["error"]["field"] == "password" and why in refused["error"]["message"]
    assert client.get("/api/v1/users", params={"role": "case_manager"},
                      headers=admin).json()["total"] == 0
    # A reset is held to the same policy.
    casey = create_user(db, username="casey")
    again = _patch(client, admin, casey["id"], status=400, password=password)
    assert again["error"]["field"] == "password"


def test_a_long_passphrase_without_digits_or_symbols_is_fine(client, admin) -> None:  # noqa: ANN001
    _add(client, admin, username="casey", role="case_manager", agency="North Agency",
         password="orange river quietly hums")


def test_deactivating_a_user_ends_their_tokens_at_once(db: Database, client, admin) -> None:  # noqa: ANN001
    casey = create_user(db, username="casey")
    phone, laptop = sign_in(client, "casey"), sign_in(client, "casey")
    assert client.get("/api/v1/auth/me", headers=phone).status_code == 200

    off = _patch(client, admin, casey["id"], is_active=False)
    assert off["is_active"] is False
    for headers in (phone, laptop):
        refused = client.get("/api/v1/clients", headers=headers)
        assert refused.status_code == 401 and refused.json()["error"]["field"] == "authorization"
    assert client.post("/api/v1/auth/token", json={"username": "casey", "password": PASSWORD}
                       ).status_code == 401
    [event] = _events(db, "user.update")
    assert event["changes"]["is_active"] == {"old": True, "new": False}
    assert event["changes"]["tokens_revoked"]["new"] == 2
    inactive = client.get("/api/v1/users", params={"is_active": False}, headers=admin).json()
    assert [u["username"] for u in inactive["items"]] == ["casey"]

    # Reactivated, they sign in again; the old tokens stay dead.
    _patch(client, admin, casey["id"], is_active=True)
    assert client.get("/api/v1/auth/me", headers=phone).status_code == 401
    assert client.get("/api/v1/auth/me", headers=sign_in(client, "casey")).status_code == 200


def test_a_password_reset_ends_sessions_and_is_audited_without_the_password(  # noqa: ANN001
        db: Database, client, admin) -> None:
    casey = create_user(db, username="casey")
    old = sign_in(client, "casey")
    _patch(client, admin, casey["id"], password=NEW_PASSWORD)
    assert client.get("/api/v1/auth/me", headers=old).status_code == 401
    assert client.post("/api/v1/auth/token", json={"username": "casey", "password": PASSWORD}
                       ).status_code == 401
    sign_in(client, "casey", NEW_PASSWORD)
    [event] = _events(db, "user.update")
    assert event["changes"]["password"] == {"old": "[redacted]", "new": "[redacted]"}
    assert NEW_PASSWORD not in json.dumps(event["changes"])


def test_unlock_lifts_a_lockout(db: Database, client, admin) -> None:  # noqa: ANN001
    casey = create_user(db, username="casey")
    for _ in range(security.MAX_FAILED_LOGINS):
        client.post("/api/v1/auth/token", json={"username": "casey", "password": "wrong one!!"})
    assert client.get(f"/api/v1/users/{casey['id']}", headers=admin).json()["is_locked"]
    assert _patch(client, admin, casey["id"], unlock=True)["is_locked"] is False
    sign_in(client, "casey")


def test_role_changes_keep_the_agency_and_organization_rules(db: Database, client, admin,  # noqa: ANN001
                                                             tmp_path: Path) -> None:
    org = an_organization(db, tmp_path)
    casey = create_user(db, username="casey")
    refused = _patch(client, admin, casey["id"], status=400, role="partner")
    assert refused["error"]["field"] == "organization_ids"
    partner = _patch(client, admin, casey["id"], role="partner", organization_ids=[org])
    assert partner["role"] == "partner" and partner["agency_id"] is None
    assert partner["organization_ids"] == [org]
    assert client.get("/api/v1/auth/me", headers=sign_in(client, "casey")
                      ).json()["organization_ids"] == [org]

    refused = _patch(client, admin, casey["id"], status=400, role="case_manager")
    assert refused["error"]["field"] == "agency"
    staff = _patch(client, admin, casey["id"], role="supervisor", agency="West Agency")
    assert staff["agency_name"] == "West Agency" and staff["organization_ids"] == []
    refused = _patch(client, admin, casey["id"], status=400, role="admin", agency="West")
    assert refused["error"]["field"] == "agency"
    refused = _patch(client, admin, casey["id"], status=400, organization_ids=[org])
    assert refused["error"]["field"] == "organization_ids"

    me = client.get("/api/v1/auth/me", headers=admin).json()
    assert _patch(client, admin, me["id"], status=400, is_active=False)["error"]["field"] == (
        "is_active")
    assert _patch(client, admin, me["id"], status=400, role="partner")["error"]["field"] == (
        "role")
    assert _patch(client, admin, 999999, status=404, is_active=False)["error"]["field"] == (
        "user_id")
    assert client.patch(f"/api/v1/users/{casey['id']}", headers=admin,
                        json={"is_admin": True}).status_code == 422


def test_staff_holding_clients_keep_their_agency_until_reassigned(db: Database, client,  # noqa: ANN001
                                                                  admin) -> None:
    casey = create_user(db, username="casey")
    created = client.post("/api/v1/clients", headers=sign_in(client, "casey"),
                          json={"name": "R. E."})
    assert created.status_code == 201
    moved = _patch(client, admin, casey["id"], status=409, agency="South Agency")
    assert moved["error"]["field"] == "agency" and "reassign" in moved["error"]["message"]
    assert _patch(client, admin, casey["id"], status=409, role="admin")["error"]["field"] == (
        "role")
    # Within the agency a role change is fine, and so is deactivating (a supervisor reassigns).
    assert _patch(client, admin, casey["id"], role="supervisor")["role"] == "supervisor"
    assert _patch(client, admin, casey["id"], is_active=False)["is_active"] is False


def test_linking_partners_to_organizations_and_sites(db: Database, client, admin,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    first = an_organization(db, tmp_path)
    with db.session() as session:
        sites = dict(session.execute(select(location.c.id, location.c.organization_id)).all())
    second = next(o for o in sites.values() if o != first)
    first_site = next(s for s, o in sites.items() if o == first)
    other_site = next(s for s, o in sites.items() if o == second)
    pat = create_user(db, username="pat", role="partner", organizations=(first,))
    link = f"/api/v1/users/{pat['id']}/organizations"

    linked = client.post(link, headers=admin, json={"organization_id": second})
    assert linked.status_code == 200, linked.text
    assert sorted(linked.json()["organization_ids"]) == sorted([first, second])
    sited = client.post(link, headers=admin, json={"organization_id": first,
                                                   "location_ids": [first_site]}).json()
    assert {o["organization_id"]: o["location_ids"] for o in sited["organizations"]} == {
        first: [first_site], second: None}
    wrong_site = client.post(link, headers=admin, json={"organization_id": first,
                                                        "location_ids": [other_site]})
    assert wrong_site.status_code == 400 and wrong_site.json()["error"]["field"] == (
        "location_ids")
    unknown = client.post(link, headers=admin, json={"organization_id": "no-such-org"})
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == "organization_id"
    casey = create_user(db, username="casey")
    staff = client.post(f"/api/v1/users/{casey['id']}/organizations", headers=admin,
                        json={"organization_id": first})
    assert staff.status_code == 400 and staff.json()["error"]["field"] == "user_id"

    gone = client.delete(f"{link}/{second}", headers=admin)
    assert gone.status_code == 200 and gone.json()["organization_ids"] == [first]
    assert client.delete(f"{link}/{second}", headers=admin).status_code == 404
    last = client.delete(f"{link}/{first}", headers=admin)
    assert last.status_code == 409 and last.json()["error"]["field"] == "organization_id"
    actions = [e["action"] for e in _events(db, "user.link_organization")
               + _events(db, "user.unlink_organization")]
    assert actions == ["user.link_organization"] * 2 + ["user.unlink_organization"]


def test_a_supervisor_reads_only_their_agency_and_changes_nothing(db: Database, client,  # noqa: ANN001
                                                                  admin) -> None:
    sue = user_headers(db, client, "sue", role="supervisor", agency="North Agency")
    casey = create_user(db, username="casey", agency="North Agency")
    sam = create_user(db, username="sam", agency="South Agency")
    mine = client.get("/api/v1/users", headers=sue)
    assert mine.status_code == 200
    assert [u["username"] for u in mine.json()["items"]] == ["casey", "sue"]
    assert client.get(f"/api/v1/users/{casey['id']}", headers=sue).status_code == 200
    other = client.get(f"/api/v1/users/{sam['id']}", headers=sue)
    assert other.status_code == 404 and other.json()["error"]["field"] == "user_id"
    assert client.get("/api/v1/users", params={"agency_id": sam["agency_id"]},
                      headers=sue).status_code == 404
    for method, path, body in (("PATCH", f"/api/v1/users/{casey['id']}", {"is_active": False}),
                               ("POST", "/api/v1/users", {"username": "x", "password": "y",
                                                          "role": "admin"}),
                               ("GET", "/api/v1/agencies", None)):
        refused = client.request(method, path, headers=sue, json=body)
        assert refused.status_code == 403 and refused.json()["error"]["field"] == "role"


@pytest.mark.parametrize("role", ["partner", "case_manager"])
def test_partners_and_case_managers_may_not_manage_users(db: Database, client, role: str,  # noqa: ANN001
                                                         tmp_path: Path) -> None:
    orgs = (an_organization(db, tmp_path),) if role == "partner" else ()
    headers = user_headers(db, client, "someone", role=role, organizations=orgs)
    for method, path in (("GET", "/api/v1/users"), ("GET", "/api/v1/users/1"),
                         ("PATCH", "/api/v1/users/1"), ("GET", "/api/v1/agencies")):
        refused = client.request(method, path, headers=headers, json={})
        assert refused.status_code == 403, (method, path)


def test_anonymous_callers_are_asked_to_sign_in(client) -> None:  # noqa: ANN001
    for method, path in (("GET", "/api/v1/users"), ("POST", "/api/v1/users"),
                         ("PATCH", "/api/v1/users/1"), ("GET", "/api/v1/agencies"),
                         ("POST", "/api/v1/users/1/organizations"),
                         ("DELETE", "/api/v1/users/1/organizations/x")):
        refused = client.request(method, path, json={})
        assert refused.status_code == 401, (method, path)
        assert refused.json()["error"]["field"] == "authorization"
