"""No client name, date of birth or token reaches the logs, whatever the level."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select

from service.audit.tables import audit_event
from service.db import Database
from tests.service.accounts.helpers import an_organization, create_user, sign_in

NAME, DOB = "Zebediah Quackenbush-Oyelaran", "1987-03-14"


def _client_flows(db: Database, client, tmp_path: Path,  # noqa: ANN001
                  caplog: pytest.LogCaptureFixture, *, loggers: tuple[str, ...],
                  level: int = logging.DEBUG) -> None:
    """Every client flow, with all logging captured at DEBUG; nothing personal in it."""
    org = an_organization(db, tmp_path)
    create_user(db, username="casey")
    create_user(db, username="sol", agency="South Agency")
    create_user(db, username="ada", role="admin")
    caplog.set_level(logging.DEBUG)
    for name in loggers:
        caplog.set_level(level, logger=name)

    north, south, admin = (sign_in(client, u) for u in ("casey", "sol", "ada"))
    body = {"name": NAME, "date_of_birth": DOB, "contact_preference": "do_not_contact"}
    created = client.post("/api/v1/clients", json=body, headers=north).json()
    client_id = created["client"]["id"]
    assert client.post("/api/v1/clients", json=body, headers=north).json()["warnings"]
    client.get(f"/api/v1/clients/{client_id}", headers=north)
    client.get(f"/api/v1/clients/{client_id}", headers=south)  # 404
    client.get(f"/api/v1/clients/{client_id}", headers=admin)
    client.get("/api/v1/clients", headers=north)
    client.post("/api/v1/clients", json={**body, "date_of_birth": "3000-01-01"}, headers=north)
    client.post("/api/v1/clients", json={**body, "date_of_birth": f"{DOB}x"}, headers=north)
    consent = client.post(f"/api/v1/clients/{client_id}/consents", headers=north, json={
        "shares": ["identity", "substance_use_treatment"], "shared_with_organization_id": org,
        "purpose": f"referral of {NAME}, born {DOB}", "is_part2": True}).json()
    client.post(f"/api/v1/clients/{client_id}/consents/{consent['id']}/revoke", headers=north)
    client.get("/api/v1/audit", params={"format": "csv"}, headers=admin)
    client.post("/api/v1/auth/token", json={"username": NAME, "password": DOB + DOB})

    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert caplog.records, "nothing was logged: the capture is not working"
    tokens = [h["Authorization"].split()[1] for h in (north, south, admin)]
    for secret in (NAME, *NAME.split(), DOB, "1987", *tokens):
        assert secret not in logged, secret
    with db.session() as session:  # the audit log holds ids, never the name or the date
        events = session.execute(select(audit_event)).mappings().all()
    assert len(events) > 10
    for secret in (NAME, *NAME.split(), DOB):
        assert secret not in str([dict(e) for e in events]), secret


def test_client_flows_log_no_personal_data(db: Database, client, tmp_path: Path,  # noqa: ANN001
                                           caplog: pytest.LogCaptureFixture) -> None:
    _client_flows(db, client, tmp_path, caplog,
                  loggers=("service", "signpost", "httpx", "httpx2", "uvicorn", "fastapi"))


def test_sql_statement_log_shows_no_parameters(db: Database, client, tmp_path: Path,  # noqa: ANN001
                                               caplog: pytest.LogCaptureFixture) -> None:
    """SQLAlchemy's INFO level (what echo=True shows) must not carry client data. (Its DEBUG
    level prints result rows by design: never for production.)"""
    _client_flows(db, client, tmp_path, caplog, loggers=("sqlalchemy.engine",),
                  level=logging.INFO)
