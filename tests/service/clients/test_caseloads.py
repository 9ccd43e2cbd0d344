"""Caseloads over real HTTP: a client is on its creator's caseload, a case manager lists their
own, a supervisor sees the agency's counts and reassigns clients within the agency only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, select, update

from service.accounts.tables import agency, app_user
from service.audit.tables import audit_event
from service.clients.tables import client as client_table
from service.db import MIGRATIONS_DIR, Database
from service.referrals.tables import referral
from tests.service.accounts.helpers import create_user, user_headers
from tests.service.referrals.helpers import a_client, make_world, move, refer


def _ids(response) -> list[int]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["items"]]


def test_a_client_is_on_its_creators_caseload_and_mine_lists_it(db: Database, client,  # noqa: ANN001
                                                                tmp_path: Path) -> None:
    world = make_world(db, client, tmp_path)
    carla = user_headers(db, client, "carla", role="case_manager", agency="North Agency")
    casey_id = client.get("/api/v1/auth/me", headers=world.casey).json()["id"]
    first = a_client(client, world, world.casey, consent_to=None)
    second = a_client(client, world, carla, consent_to=None)
    read = client.get(f"/api/v1/clients/{first}", headers=world.casey).json()
    assert read["case_manager_id"] == casey_id

    assert _ids(client.get("/api/v1/clients", params={"mine": True}, headers=world.casey)) == [
        first]
    assert _ids(client.get("/api/v1/clients", params={"mine": True}, headers=carla)) == [
        second]
    # The default stays the agency's list.
    assert _ids(client.get("/api/v1/clients", headers=world.casey)) == [first, second]
    admin = user_headers(db, client, "ada", role="admin")
    refused = client.get("/api/v1/clients", params={"mine": True, "agency_id": 1},
                         headers=admin)
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "mine"


def test_a_supervisor_sees_each_caseloads_counts(db: Database, client,  # noqa: ANN001
                                                 tmp_path: Path) -> None:
    world = make_world(db, client, tmp_path)
    sue = user_headers(db, client, "sue", role="supervisor", agency="North Agency")
    carla = user_headers(db, client, "carla", role="case_manager", agency="North Agency")
    user_headers(db, client, "sam", role="case_manager", agency="South Agency")
    ids = {u["username"]: u["id"] for u in client.get("/api/v1/users", headers=sue
                                                      ).json()["items"]}

    busy, idle = a_client(client, world, world.casey), a_client(client, world, world.casey)
    overdue = refer(client, world, world.casey, busy)  # requested: open
    refer(client, world, world.casey, busy)  # a second open referral
    done = refer(client, world, world.casey, idle)
    done = move(client, world.pat, done, "accepted")
    done = move(client, world.pat, done, "in-progress")
    move(client, world.pat, done, "completed")  # closed: not open, follow-up still due
    a_client(client, world, carla, consent_to=None)
    orphan = a_client(client, world, carla, consent_to=None)
    with db.session(write=True) as session:
        session.execute(update(referral).values(
            follow_up_due_at=datetime.now(UTC) + timedelta(days=5)))
        session.execute(update(referral).where(referral.c.id.in_([overdue["id"], done["id"]]))
                        .values(follow_up_due_at=datetime.now(UTC) - timedelta(days=1)))
        session.execute(update(client_table).where(client_table.c.id == orphan)
                        .values(case_manager_id=None))

    response = client.get("/api/v1/caseloads", headers=sue)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {r["username"]: r for r in body["items"]}
    assert list(rows) == ["carla", "casey", None]  # the agency's case managers, unassigned last
    assert rows["casey"]["user_id"] == ids["casey"]
    assert {k: rows["casey"][k] for k in ("clients", "clients_with_open_referrals",
                                          "open_referrals", "overdue_follow_ups")} == {
        "clients": 2, "clients_with_open_referrals": 1, "open_referrals": 2,
        "overdue_follow_ups": 2}
    assert {k: rows["carla"][k] for k in ("clients", "open_referrals", "overdue_follow_ups")
            } == {"clients": 1, "open_referrals": 0, "overdue_follow_ups": 0}
    assert rows[None]["clients"] == 1 and rows[None]["user_id"] is None
    assert "Rosa" not in response.text  # counts, never a client
    with db.session() as session:
        assert session.execute(select(audit_event.c.entity_id).where(
            audit_event.c.action == "caseload.read")).scalar_one() == str(body["agency_id"])


def test_a_supervisor_reassigns_a_client_within_the_agency(db: Database, client,  # noqa: ANN001
                                                           tmp_path: Path) -> None:
    world = make_world(db, client, tmp_path)
    sue = user_headers(db, client, "sue", role="supervisor", agency="North Agency")
    carla = user_headers(db, client, "carla", role="case_manager", agency="North Agency")
    casey_id = client.get("/api/v1/auth/me", headers=world.casey).json()["id"]
    carla_id = client.get("/api/v1/auth/me", headers=carla).json()["id"]
    client_id = a_client(client, world, world.casey, consent_to=None)

    moved = client.post(f"/api/v1/clients/{client_id}/reassign", headers=sue,
                        json={"case_manager_id": carla_id})
    assert moved.status_code == 200, moved.text
    assert moved.json()["case_manager_id"] == carla_id
    assert _ids(client.get("/api/v1/clients", params={"mine": True}, headers=carla)) == [
        client_id]
    assert _ids(client.get("/api/v1/clients", params={"mine": True}, headers=world.casey)
                ) == []
    with db.session() as session:
        event = session.execute(select(audit_event).where(
            audit_event.c.action == "client.reassign")).mappings().one()
    assert event["entity_id"] == str(client_id) and event["actor_role"] == "supervisor"
    assert event["changes"] == {"case_manager_id": {"old": casey_id, "new": carla_id}}
    # The supervisor may hold clients too; a deactivated case manager may not.
    sue_id = client.get("/api/v1/auth/me", headers=sue).json()["id"]
    assert client.post(f"/api/v1/clients/{client_id}/reassign", headers=sue,
                       json={"case_manager_id": sue_id}).status_code == 200
    with db.session(write=True) as session:
        session.execute(update(app_user).where(app_user.c.id == casey_id)
                        .values(is_active=False))
    gone = client.post(f"/api/v1/clients/{client_id}/reassign", headers=sue,
                       json={"case_manager_id": casey_id})
    assert gone.status_code == 422 and gone.json()["error"]["field"] == "case_manager_id"


def test_reassigning_is_refused_outside_the_supervisors_agency(db: Database, client,  # noqa: ANN001
                                                               tmp_path: Path) -> None:
    world = make_world(db, client, tmp_path)
    sue = user_headers(db, client, "sue", role="supervisor", agency="North Agency")
    south_sup = user_headers(db, client, "stan", role="supervisor", agency="South Agency")
    sam = user_headers(db, client, "sam", role="case_manager", agency="South Agency")
    sam_id = client.get("/api/v1/auth/me", headers=sam).json()["id"]
    pat_id = client.get("/api/v1/auth/me", headers=world.pat).json()["id"]
    casey_id = client.get("/api/v1/auth/me", headers=world.casey).json()["id"]
    north_client = a_client(client, world, world.casey, consent_to=None)
    reassign = f"/api/v1/clients/{north_client}/reassign"

    # Another agency's supervisor: the client does not exist for them.
    foreign = client.post(reassign, headers=south_sup, json={"case_manager_id": sam_id})
    assert foreign.status_code == 404 and foreign.json()["error"]["field"] == "client_id"
    # A case manager of another agency, a partner, nobody: not someone to hold the client.
    for target in (sam_id, pat_id, 999999):
        refused = client.post(reassign, headers=sue, json={"case_manager_id": target})
        assert refused.status_code == 422, target
        assert refused.json()["error"]["field"] == "case_manager_id"
    # Case managers and partners may not reassign, nor read caseloads; nobody anonymous.
    for headers in (world.casey, world.pat):
        refused = client.post(reassign, headers=headers, json={"case_manager_id": casey_id})
        assert refused.status_code == 403 and refused.json()["error"]["field"] == "role"
        assert client.get("/api/v1/caseloads", headers=headers).status_code == 403
    admin = user_headers(db, client, "ada", role="admin")
    assert client.get("/api/v1/caseloads", headers=admin).status_code == 403
    assert client.post(reassign, json={"case_manager_id": casey_id}).status_code == 401
    assert client.get("/api/v1/caseloads").status_code == 401
    with db.session() as session:
        holder = session.execute(select(client_table.c.case_manager_id)
                                 .where(client_table.c.id == north_client)).scalar_one()
        assert holder == casey_id
        assert session.execute(select(audit_event.c.id).where(
            audit_event.c.action == "client.reassign")).first() is None


def test_the_migration_puts_existing_clients_on_their_creators_caseload(db: Database) -> None:
    """Migration 0006 on a database with clients: each goes to its creator when the creator
    still works in the client's agency; the others stay unassigned."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", db.url)

    def migrate(step, revision: str) -> None:  # noqa: ANN001
        with db.engine.connect() as connection:
            config.attributes["connection"] = connection
            step(config, revision)
            connection.commit()

    migrate(command.downgrade, "0005")
    north = create_user(db, username="casey", agency="North Agency")
    south = create_user(db, username="sam", agency="South Agency")
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        north_agency = session.execute(select(agency.c.id).where(
            agency.c.name == "North Agency")).scalar_one()
        session.execute(insert(client_table).values([
            {"id": n, "agency_id": north_agency, "name": "R. E.", "contact_preference": "phone",
             "no_voicemail": False, "do_not_text": False, "created_by": creator,
             "created_at": now, "updated_at": now}
            for n, creator in ((1, north["id"]), (2, south["id"]), (3, None))]))
    migrate(command.upgrade, "head")
    with db.session() as session:
        held = dict(session.execute(select(client_table.c.id, client_table.c.case_manager_id)
                                    .order_by(client_table.c.id)).all())
    assert held == {1: north["id"], 2: None, 3: None}

