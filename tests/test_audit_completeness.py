"""The audit log is complete: every write endpoint that changes something leaves exactly one
entry naming who did it, a refused or failed write leaves none (nothing half-written), every
read of a client record leaves one, and an admin can export the log.

Runs on the access matrix's world (tests/test_access_matrix.py): each write route is called
once, by a caller the matrix lets through, on its own copy of the world.
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.access import RULES
from service.app import create_app
from service.audit.tables import audit_event
from service.config import Settings
from service.db import Database
from tests.test_access_matrix import MATRIX, World, _build_world, _headers, call

# Who makes each write (the first of these the matrix lets through).
PREFERENCE = ("cm_a", "partner0", "supervisor", "admin")
WRITES = sorted(key for key in MATRIX if key.split(" ", 1)[0] in ("POST", "PATCH", "DELETE")
                and key in RULES and not RULES[key].is_public)
# Writes that change nothing of record (signing out revokes a token: audited as one event too).
# The matrix's body for these is refused on purpose (e.g. revert of a pending edit: 409), so
# they show that a refused write leaves no entry.
REFUSED_WITH_MATRIX_BODY = {
    "POST /api/v1/listing-edits/{edit_id}/revert",  # the edit is pending, not applied: 409
    "POST /admin/edits/{edit_id}/revert",
    # partner 0's only organization: a partner speaks for at least one (409)
    "DELETE /api/v1/users/{user_id}/organizations/{organization_id}",
    "POST /admin/users/{user_id}/organizations/remove",
}
# Bodies that change something (the matrix's may ask for no change, e.g. activate an active
# user, which rightly leaves no entry).
CHANGING: dict[str, dict[str, Any]] = {
    "PATCH /api/v1/users/{user_id}": {"is_active": False},
    "POST /admin/users/{user_id}/active": {"is_active": "false"},
    "POST /api/v1/users/{user_id}/organizations": {"organization_id": "{org1}"},
    "POST /admin/users/{user_id}/organizations": {"organization": "{org1}"},
    "POST /api/v1/clients/{client_id}/reassign": {"case_manager_id": "{supervisor_id}"},
    "POST /clients/{client_id}/consents": {"shares": "identity", "shared_with_name": "Org One",
                                           "purpose": "referral"},
    "POST /referrals": {"client_id": "{client_id}",
                        "service_at_location_id": "{service_at_location_id}", "need": "1102",
                        "urgency": "soon"},
    "POST /partner/listings/{service_id}/status": {"status": "temporarily closed",
                                                   "version": "{svc0_version}"},
    "POST /partner/listings/{service_id}/eligibility": {"min_age": "18",
                                                        "version": "{svc0_version}"},
    "POST /partner/listings/{service_id}/capacity": {"site": "{sal0}", "capacity": "waitlist",
                                                     "version": "{svc0_version}"},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _build_world(tmp_path_factory.mktemp("audit"))


@pytest.fixture
def cell(world: World, tmp_path: Path) -> Iterator[tuple[World, TestClient, Database]]:
    path = tmp_path / "cell.db"
    shutil.copy(world.path, path)
    copy = World(path, world.ids, world.users)
    settings = Settings(database_url=f"sqlite:///{path}", environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geo.sqlite", cookie_secure=False)
    db = Database(f"sqlite:///{path}")
    with TestClient(create_app(settings), follow_redirects=False) as http:
        yield copy, http, db
    db.dispose()


def _entries(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(audit_event).order_by(audit_event.c.id)).mappings()]


def _version(http: TestClient, service_id: str) -> str:
    listing = http.get(f"/api/v1/services/{service_id}").json()["service"]
    return str(listing["x_updated_at"])


def _call(world: World, http: TestClient, key: str, caller: str):  # noqa: ANN202
    _, body = MATRIX[key]
    return call(world, http, key, caller, CHANGING.get(key, body),
                supervisor_id=world.users["supervisor"],
                svc0_version=_version(http, world.ids["svc0"]))


@pytest.mark.parametrize("key", WRITES)
def test_each_write_leaves_exactly_one_entry_or_none(
        cell: tuple[World, TestClient, Database], key: str) -> None:
    world, http, db = cell
    allowed, _ = MATRIX[key]
    caller = next(c for c in PREFERENCE if c in allowed)
    before = _entries(db)
    response = _call(world, http, key, caller)
    after = _entries(db)[len(before):]
    writes = [e for e in after if not e["action"].endswith((".read", ".list", ".export"))
              and e["action"] != "report.read"]
    succeeded = response.status_code in (200, 201, 202, 204) or (
        response.status_code == 303 and "error" not in response.headers.get("location", ""))
    if key in REFUSED_WITH_MATRIX_BODY:
        assert response.status_code in (303, 409, 422), (key, response.status_code)
        assert writes == [], (key, [e["action"] for e in writes])
        return
    assert succeeded, (key, caller, response.status_code, response.text[:300])
    changed = [e for e in writes if e["user_id"] == world.users[caller]]
    assert len(changed) >= 1, (key, [e["action"] for e in after])
    # one entry per record changed; a page that does two things at once (a referral sent
    # with its consent) leaves one per thing, each naming the caller
    assert all(e["user_id"] == world.users[caller] for e in writes), (key, writes)
    assert len({(e["action"], e["entity_type"], e["entity_id"]) for e in writes}) == len(writes), \
        (key, [e["action"] for e in writes])


def test_a_refused_write_leaves_nothing(cell: tuple[World, TestClient, Database]) -> None:
    world, http, db = cell
    before = len(_entries(db))
    stale = http.post(f"/api/v1/referrals/{world.ids['referral_id']}/transitions",
                      headers=_headers(world, "cm_a"),
                      json={"to": "cancelled", "expected_version": 1,
                            "reason_code": "client_declined"})
    assert stale.status_code == 409
    other = http.get(f"/api/v1/clients/{world.ids['client_id']}",
                     headers=_headers(world, "cm_b"))
    assert other.status_code == 404
    assert len(_entries(db)) == before


def test_each_client_read_leaves_one_entry(cell: tuple[World, TestClient, Database]) -> None:
    world, http, db = cell
    client_id = str(world.ids["client_id"])
    for caller in ("cm_a", "supervisor", "admin"):
        before = len(_entries(db))
        response = http.get(f"/api/v1/clients/{client_id}", headers=_headers(world, caller))
        assert response.status_code == 200
        new = _entries(db)[before:]
        assert [(e["action"], e["entity_id"], e["user_id"]) for e in new] == [
            ("client.read", client_id, world.users[caller])]


def test_an_admin_exports_the_log(cell: tuple[World, TestClient, Database]) -> None:
    world, http, db = cell
    http.get(f"/api/v1/clients/{world.ids['client_id']}", headers=_headers(world, "cm_a"))
    with db.session() as session:
        total = session.execute(select(func.count()).select_from(audit_event)).scalar_one()
    exported = http.get("/api/v1/audit", params={"format": "csv", "limit": 1000},
                        headers=_headers(world, "admin"))
    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) >= min(total, 1000) - 1 and any(r["action"] == "client.read" for r in rows)
    assert "Rosa" not in exported.text  # names never enter the log
    assert http.get("/api/v1/audit", params={"format": "csv"},
                    headers=_headers(world, "cm_a")).status_code == 403
