"""The audit log: append-only in the database, written with the change, admins read it."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from service.audit import service as audit
from service.audit.service import CLI
from service.audit.tables import audit_event
from service.clients import service as clients
from service.clients.schemas import ClientCreate
from service.clients.tables import client as client_table
from service.db import Database
from tests.service.accounts.helpers import create_user, user_headers


def _principal(db: Database, username: str = "casey"):  # noqa: ANN202
    from service.accounts.service import Principal

    user = create_user(db, username=username)
    return Principal(user_id=user["id"], role=user["role"], username=user["username"],
                     agency_id=user["agency_id"], client_ip="10.0.0.1")


@pytest.mark.parametrize("statement", [
    update(audit_event).values(action="nothing.happened"),
    delete(audit_event),
])
def test_the_database_refuses_to_change_or_delete_events(db: Database, statement) -> None:  # noqa: ANN001
    with db.session(write=True) as session:
        audit.record(session, actor=CLI, action="test.event", entity_type="test", entity_id=1)
    with pytest.raises(DBAPIError, match="append-only"), db.session(write=True) as session:
        session.execute(statement)
    with db.session() as session:
        assert session.execute(select(audit_event.c.action)).scalars().all() == ["test.event"]


def test_postgres_refuses_truncate_too(db: Database) -> None:
    if db.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE")
    with pytest.raises(DBAPIError, match="append-only"), db.session(write=True) as session:
        session.execute(text("TRUNCATE audit_event"))


def test_the_event_is_in_the_same_transaction_as_the_change(
        db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    actor = _principal(db)

    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(audit, "record", broken)
    with pytest.raises(RuntimeError), db.session(write=True) as session:
        clients.create_client(session, actor=actor, data=ClientCreate(name="A. B."))
    with db.session() as session:  # no audit, no change
        assert session.execute(select(func.count()).select_from(client_table)).scalar_one() == 0


def test_changes_are_diffs_without_personal_values(db: Database) -> None:
    actor = _principal(db)
    with db.session(write=True) as session:
        row, _ = clients.create_client(session, actor=actor, data=ClientCreate(
            name="Quintessa Varga", date_of_birth=date(1990, 2, 3), preferred_language="hu",
            do_not_text=True))
    with db.session() as session:
        event = session.execute(select(audit_event).where(
            audit_event.c.action == "client.create")).mappings().one()
    assert event["entity_id"] == str(row["id"]) and event["client_ip"] == "10.0.0.1"
    assert event["user_id"] == actor.user_id and event["actor_role"] == "case_manager"
    changes = event["changes"]
    assert changes["name"] == {"old": None, "new": audit.REDACTED}
    assert changes["date_of_birth"] == {"old": None, "new": audit.REDACTED}
    assert changes["preferred_language"] == {"old": None, "new": "hu"}
    assert changes["do_not_text"] == {"old": None, "new": True}
    assert "Quintessa" not in str(changes) and "1990" not in str(changes)


def test_only_admins_read_the_log_and_export_it(db: Database, client) -> None:  # noqa: ANN001
    staff = user_headers(db, client, "casey", role="case_manager")
    created = client.post("/api/v1/clients", json={"name": "Q. V."}, headers=staff).json()
    assert client.get("/api/v1/audit", headers=staff).status_code == 403
    assert client.get("/api/v1/audit").status_code == 401
    admin = user_headers(db, client, "ada", role="admin")

    page = client.get("/api/v1/audit", params={"entity_type": "client"}, headers=admin)
    assert page.status_code == 200
    [event] = page.json()["items"]
    assert event["action"] == "client.create"
    assert event["entity_id"] == str(created["client"]["id"])

    export = client.get("/api/v1/audit", params={"format": "csv"}, headers=admin)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert tuple(rows[0]) == audit.CSV_COLUMNS
    actions = [r["action"] for r in rows]
    assert {"user.create", "auth.login", "client.create", "audit.read"} <= set(actions)
    assert "Q. V." not in export.text
    # Reading the log is itself recorded.
    assert client.get("/api/v1/audit", params={"action": "audit.export"},
                      headers=admin).json()["total"] == 1


def test_no_route_changes_the_log(client) -> None:  # noqa: ANN001
    paths = {getattr(r, "path", "") for r in client.app.routes}
    methods = {m for r in client.app.routes if "audit" in getattr(r, "path", "")
               for m in getattr(r, "methods", ())}
    assert methods <= {"GET", "HEAD"}, paths


def test_csv_cells_never_start_a_formula() -> None:
    out = audit.to_csv([{"id": 1, "occurred_at": None, "user_id": None, "actor_role": None,
                         "action": "=HYPERLINK(1)", "entity_type": "x", "entity_id": "+1",
                         "client_ip": None, "changes": None}])
    row = list(csv.reader(io.StringIO(out)))[1]
    assert row[4] == "'=HYPERLINK(1)" and row[6] == "'+1"
