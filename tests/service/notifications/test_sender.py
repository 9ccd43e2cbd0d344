"""The SMTP sender against a real SMTP server on 127.0.0.1: delivery, refusals and outages
(retried with backoff), giving up, the background loop, `signpost notify send`, and logs that
hold no address or message."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from service.accounts.tables import app_user
from service.cli import main
from service.config import get_settings
from service.db import Database
from service.notifications import sender
from service.notifications.tables import notification
from tests.service.accounts.helpers import PASSWORD
from tests.service.notifications.smtp import (
    BASE_URL,
    EMAILS,
    Inbox,
    SmtpServer,
    free_port,
    set_emails,
    smtp_config,
)
from tests.service.referrals.helpers import World, a_client, make_world, move, refer

NOTE = "Needs groceries this week"  # the note `refer` sends


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    made = make_world(db, client, tmp_path)
    set_emails(db)
    return made


def _rows(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(notification).order_by(notification.c.id)).mappings().all()]


def _assert_nothing_personal(raw: bytes) -> None:
    # The Message-ID is random digits (make_msgid), which may hold "1984" by chance.
    text = re.sub(r"(?im)^Message-ID:.*$", "Message-ID: <>", raw.decode("utf-8", "replace"))
    assert text.count("Message-ID: <>") == 1
    for secret in ("Rosa", "Example", "1984-06-02", "1984", NOTE, "groceries", "Food", "food",
                   "Organization 0"):
        assert secret not in text, secret


def test_a_sent_referral_reaches_the_partner_by_email(
        db: Database, client, world: World, inbox: Inbox) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)
    report = sender.delivery_pass(db, config=smtp_config(inbox.port), base_url=BASE_URL)
    assert (report.sent, report.failed, report.gave_up) == (1, 0, 0)

    [mail] = inbox.received
    assert mail.rcpt_tos == [EMAILS["pat"]]
    assert mail.mail_from == "signpost@north.example"
    message = mail.message
    assert message["To"] == EMAILS["pat"] and message["Subject"] == "New referral on Signpost"
    assert message["Auto-Submitted"] == "auto-generated"
    body = message.get_content().replace("\r\n", "\n")
    assert body.startswith("You have a new referral on Signpost. Sign in to see it: "
                           f"{BASE_URL}/referrals/{sent['id']}\n")
    _assert_nothing_personal(mail.raw)

    [row] = _rows(db)
    assert row["sent_at"] is not None and row["attempts"] == 1
    assert row["last_error"] is None and row["next_attempt_at"] is None
    # Nothing more to send: the next pass sends nothing again.
    again = sender.delivery_pass(db, config=smtp_config(inbox.port), base_url=BASE_URL)
    assert again.sent == 0 and len(inbox.received) == 1

    # The partner answers: the case manager hears, with the same nothing-personal message.
    move(client, world.pat, sent, "accepted")
    assert sender.delivery_pass(db, config=smtp_config(inbox.port)).sent == 1
    answer = inbox.received[-1]
    assert answer.rcpt_tos == [EMAILS["casey"]]
    assert answer.message["Subject"] == "Referral update on Signpost"
    _assert_nothing_personal(answer.raw)


def test_a_refusing_server_leaves_the_message_pending_then_it_goes(
        db: Database, client, world: World, inbox: Inbox,  # noqa: ANN001
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)
    inbox.refuse = f"451 4.3.0 <{EMAILS['pat']}>: mailbox busy, try later"
    now = datetime.now(UTC)
    report = sender.delivery_pass(db, config=smtp_config(inbox.port), now=now)
    assert (report.sent, report.failed) == (0, 1)
    assert inbox.received == []
    [row] = _rows(db)
    assert row["sent_at"] is None and row["attempts"] == 1
    assert "451" in row["last_error"] and "mailbox busy" in row["last_error"]
    assert EMAILS["pat"] not in row["last_error"]  # the echoed address is blanked out
    assert row["next_attempt_at"] == now + sender.retry_delay(1)

    # Not due yet: a pass right away leaves it alone.
    assert sender.delivery_pass(db, config=smtp_config(inbox.port), now=now).failed == 0
    inbox.refuse = None
    later = now + timedelta(minutes=2)
    assert sender.delivery_pass(db, config=smtp_config(inbox.port), now=later).sent == 1
    [mail] = inbox.received
    assert mail.rcpt_tos == [EMAILS["pat"]]
    [row] = _rows(db)
    assert row["sent_at"] == later and row["attempts"] == 2 and row["last_error"] is None

    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # not the peer's
    logged = "".join(f"{r.getMessage()} {r.args}" for r in ours)
    assert "notification" in logged  # the capture works
    for secret in (*EMAILS.values(), "mailbox busy", "New referral", "Sign in", "Rosa"):
        assert secret not in logged, secret


def test_a_server_that_is_down_is_tried_again_with_backoff(
        db: Database, client, world: World, smtp_server: SmtpServer) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)
    config = smtp_config(smtp_server.inbox.port)  # nothing listens there yet
    now = datetime.now(UTC)
    assert sender.delivery_pass(db, config=config, now=now).failed == 1
    [row] = _rows(db)
    assert row["last_error"].startswith("ConnectionRefusedError")
    assert row["sent_at"] is None and row["next_attempt_at"] == now + timedelta(minutes=1)
    second = now + timedelta(minutes=1)
    assert sender.delivery_pass(db, config=config, now=second).failed == 1
    assert _rows(db)[0]["next_attempt_at"] == second + timedelta(minutes=2)  # doubled

    smtp_server.start()
    third = second + timedelta(minutes=2)
    assert sender.delivery_pass(db, config=config, now=third).sent == 1
    assert [m.rcpt_tos for m in smtp_server.inbox.received] == [[EMAILS["pat"]]]
    assert _rows(db)[0]["attempts"] == 3


def test_the_sender_gives_up_after_a_day_of_tries(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)
    config = smtp_config(free_port())
    now = datetime.now(UTC)
    waited = timedelta()
    for attempt in range(1, sender.MAX_ATTEMPTS + 1):
        report = sender.delivery_pass(db, config=config, now=now + waited)
        assert (report.failed, report.gave_up) == ((1, 0) if attempt < sender.MAX_ATTEMPTS
                                                   else (0, 1))
        waited += sender.retry_delay(attempt)
    assert timedelta(hours=18) < waited - sender.retry_delay(sender.MAX_ATTEMPTS) < timedelta(
        hours=30)
    [row] = _rows(db)
    assert row["next_attempt_at"] is None and row["sent_at"] is None
    assert row["last_error"].startswith(f"gave up after {sender.MAX_ATTEMPTS} attempts")
    assert sender.delivery_pass(db, config=config, now=now + waited).failed == 0  # left alone
    status = client.get("/api/v1/notifications", headers=world.pat).json()["items"][0]
    assert status["status"] == "not_sent"


def test_the_background_loop_delivers(db: Database, client, world: World,  # noqa: ANN001
                                      inbox: Inbox) -> None:
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)
    loop = sender.DeliveryLoop(db, smtp_config(inbox.port), base_url=BASE_URL, interval=0.05)
    loop.start()
    try:
        deadline = time.monotonic() + 20
        while not inbox.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        loop.stop()
    assert [m.rcpt_tos for m in inbox.received] == [[EMAILS["pat"]]]
    assert _rows(db)[0]["sent_at"] is not None


@pytest.fixture
def signpost(database_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Run `signpost ...` against the test database."""
    monkeypatch.setenv("SIGNPOST_DATABASE_URL", database_url)
    get_settings.cache_clear()

    def run(*args: str, env: dict[str, str] | None = None):  # noqa: ANN202
        return CliRunner().invoke(main, list(args), env=env)

    yield run
    get_settings.cache_clear()


def test_notify_send_runs_one_pass(db: Database, client, world: World, inbox: Inbox,  # noqa: ANN001
                                   signpost) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)
    refused = signpost("notify", "send")
    assert refused.exit_code == 1 and "SIGNPOST_SMTP_HOST is not set" in refused.output
    get_settings.cache_clear()
    done = signpost("notify", "send", env={
        "SIGNPOST_SMTP_HOST": "127.0.0.1", "SIGNPOST_SMTP_PORT": str(inbox.port),
        "SIGNPOST_SMTP_STARTTLS": "false", "SIGNPOST_SMTP_FROM": "signpost@north.example"})
    assert done.exit_code == 0, done.output
    assert "sent 1," in done.output
    assert [m.rcpt_tos for m in inbox.received] == [[EMAILS["pat"]]]


def test_users_add_takes_an_email(db: Database, signpost) -> None:  # noqa: ANN001
    added = signpost("users", "add", "--role", "admin", "--username", "ada", "--password",
                     PASSWORD, "--email", "ada@signpost.example")
    assert added.exit_code == 0, added.output
    bad = signpost("users", "add", "--role", "admin", "--username", "bea", "--password",
                   PASSWORD, "--email", "not an address")
    assert bad.exit_code == 1 and "email" in bad.output
    with db.session() as session:
        emails = dict(session.execute(select(app_user.c.username, app_user.c.email)).all())
    assert emails == {"ada": "ada@signpost.example"}
