"""The whole loop over real HTTP (a uvicorn server on 127.0.0.1): search, a client and their
consent, a referral, the partner's answers, the case manager's follow-up, and the report that
counts it as closed; then the same loop with every log record captured, none of which may
hold the client's name, date of birth or the referral's note.

The embedded search engine serves SQLite records; on PostgreSQL (without Elasticsearch) search
answers 503, and the loop picks the service from the directory listing instead.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from service.notifications import sender
from tests.factories import directory_package
from tests.service.notifications.smtp import (
    EMAILS,
    Inbox,
    SmtpServer,
    free_port,
    set_emails,
    smtp_config,
)
from tests.service.referrals.helpers import World, make_world

NAME, DOB = "Zebediah Quackenbush-Oyelaran", "1987-03-14"
NOTE = "Prefers the Thursday pantry; her brother Ignatius drives her there"
SECRETS = (NAME, *NAME.split(), DOB, "1987, 3, 14", "14/03/1987", "03/14/1987", NOTE,
           "Ignatius", "Thursday pantry")


@pytest.fixture
def server_url(db: Database, settings: Settings, tmp_path: Path) -> Iterator[str]:
    """The app served by uvicorn on a free port, over a loaded directory. uvicorn's own
    logging setup is off (log_config=None), so its records reach the test's capture."""
    load(db, directory_package(2).write(tmp_path / "pkg"), source="city")
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=free_port(),
                            log_config=None, access_log=True, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture
def http(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60) as client:
        yield client


@pytest.fixture
def world(db: Database, http: httpx.Client, tmp_path: Path) -> World:
    return make_world(db, http, tmp_path)  # the directory is loaded already: a no-op there


@dataclass
class Loop:
    referral_id: int
    report: dict[str, Any]


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


def the_loop(http: httpx.Client, world: World, db: Database) -> Loop:
    """Search, refer, the partner's answers, the follow-up, the report."""
    casey, pat = world.casey, world.pat
    found = http.get("/api/v1/search", params={"q": "food pantry", "near": "20001"})
    if db.is_sqlite:
        results = ok(found)["results"]
        [pick] = [r for r in results if r["organization"] == "Organization 0"]
        target = {"service_at_location_id": pick["service_at_location_id"]}
    else:  # no embedded search over PostgreSQL: the directory's listing instead
        assert found.status_code == 503, found.text
        listing = ok(http.get("/api/v1/services"))["items"]
        [pick] = [s for s in listing if s["organization_name"] == "Organization 0"]
        target = {"service_id": pick["id"]}

    created = ok(http.post("/api/v1/clients", headers=casey, json={
        "name": NAME, "date_of_birth": DOB, "preferred_language": "es",
        "contact_preference": "phone", "no_voicemail": True}), 201)
    client_id = created["client"]["id"]
    ok(http.post(f"/api/v1/clients/{client_id}/consents", headers=casey, json={
        "shares": ["identity", "contact", "demographics", "needs", "referral_status", "notes"],
        "shared_with_organization_id": world.id("org0"),
        "purpose": f"refer {NAME} for groceries"}), 201)
    ok(http.get(f"/api/v1/clients/{client_id}", headers=casey))

    sent = ok(http.post("/api/v1/referrals", headers=casey, json={
        **target, "client_id": client_id, "need": "food", "note": NOTE, "urgency": "soon",
        "send": True}), 201)
    assert sent["status"] == "requested"
    referral_id = sent["id"]

    inbox = ok(http.get("/api/v1/referrals", headers=pat))
    assert [r["id"] for r in inbox["items"]] == [referral_id]
    seen = ok(http.get(f"/api/v1/referrals/{referral_id}", headers=pat))
    current = seen
    for to in ("accepted", "in-progress", "completed"):
        current = ok(http.post(f"/api/v1/referrals/{referral_id}/transitions", headers=pat,
                               json={"to": to, "expected_version": current["version"]}))
    assert current["status"] == "completed" and current["note"] == NOTE  # consent: notes
    ok(http.get(f"/api/v1/referrals/{referral_id}/fhir", headers=pat))
    ok(http.get("/api/v1/notifications", headers=pat))

    followed = ok(http.post(f"/api/v1/referrals/{referral_id}/follow-ups", headers=casey,
                            json={"outcome": "got_help", "contact_method": "phone",
                                  "reason": f"{NAME} picked up groceries",
                                  "expected_version": current["version"]}), 201)
    assert followed["follow_up_outcome"] == "got_help"
    ok(http.get(f"/api/v1/referrals/{referral_id}/fhir", headers=casey))
    report = ok(http.get("/api/v1/reports/referrals", headers=casey))
    exported = http.get("/api/v1/reports/referrals", headers=casey, params={"format": "csv"})
    assert exported.status_code == 200 and "closed_loop,all,,closed,1" in exported.text
    return Loop(referral_id=referral_id, report=report)


def test_the_report_counts_the_closed_loop(db: Database, http: httpx.Client,
                                           world: World) -> None:
    loop = the_loop(http, world, db)
    month = datetime.now(UTC).strftime("%Y-%m")
    report = loop.report
    assert report["referrals_sent"] == 1
    assert report["by_status"] == [{"key": "completed", "name": "completed", "count": 1}]
    assert report["by_need"] == [{"key": "1102", "name": "Food", "count": 1}]
    assert report["by_partner"] == [{"key": world.id("org0"), "name": "Organization 0",
                                     "count": 1}]
    assert report["response"]["responded"] == 1 and report["response"]["awaiting"] == 0
    assert 0 <= report["response"]["median_hours"] < 1
    closed = {"sent": 1, "left_out": 0, "counted": 1, "closed": 1, "rate": 1.0,
              "partner_closed": 1, "client_got_help": 1}
    assert report["closed_loop"] == {"key": "all", **closed}
    assert report["closed_loop_by_month"] == [{"key": month, **closed}]
    assert report["unmet_needs"] == []
    # The partner's report sees the same referral; the other partner's sees none.
    assert ok(http.get("/api/v1/reports/referrals", headers=world.pat))["closed_loop"][
        "closed"] == 1
    assert ok(http.get("/api/v1/reports/referrals", headers=world.otto))["referrals_sent"] == 0


def test_the_loop_logs_no_personal_data(db: Database, http: httpx.Client, world: World,
                                        caplog: pytest.LogCaptureFixture) -> None:
    set_emails(db)
    smtp = SmtpServer(Inbox(port=free_port()))
    smtp.start()
    caplog.set_level(logging.DEBUG)  # every logger, through the root
    for name in ("service", "signpost", "uvicorn", "uvicorn.error", "uvicorn.access",
                 "fastapi", "httpx2", "httpcore", "sqlalchemy.pool", "sqlalchemy.orm",
                 "sqlalchemy.dialects", "alembic"):
        caplog.set_level(logging.DEBUG, logger=name)
    # SQL statements, parameters hidden by the engine; at DEBUG SQLAlchemy also logs result
    # rows, which service/db.py filters out.
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")
    try:
        the_loop(http, world, db)
        delivered = sender.delivery_pass(db, config=smtp_config(smtp.inbox.port))
    finally:
        smtp.stop()
    assert delivered.sent == 3  # the partner's new referral; two answers to the case manager

    records = [r for r in caplog.records if not r.name.startswith("mail.log")]  # SMTP peer
    names = {r.name for r in records}
    assert {"uvicorn.access", "sqlalchemy.engine.Engine",
            "service.notifications.sender"} <= names, names
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.args!r} {r.exc_text or ''}"
                       for r in records)
    tokens = [h["Authorization"].split()[1] for h in (world.casey, world.pat, world.otto)]
    for secret in (*SECRETS, *tokens, *EMAILS.values()):
        assert secret not in logged, secret
    for raw in (m.raw.decode("utf-8", "replace") for m in smtp.inbox.received):
        for secret in (*SECRETS, "Food", "groceries"):
            assert secret not in raw, secret
