"""The outbox: who gets a message when a referral moves, what it says (nothing about the client),
and each user's own list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from service.accounts import service as accounts
from service.accounts.tables import app_user
from service.audit.service import CLI
from service.db import Database
from service.notifications import service as notifications
from service.notifications.tables import notification
from service.referrals.tables import referral
from tests.service.accounts.helpers import PASSWORD, sign_in
from tests.service.notifications.smtp import BASE_URL, EMAILS, set_emails
from tests.service.referrals.helpers import World, a_client, make_world, move, refer

SECRETS = ("Rosa", "Example", "1984", "groceries", "Groceries", "Food", "food", "urgent")


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    made = make_world(db, client, tmp_path)
    set_emails(db)
    return made


def _outbox(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        rows = session.execute(
            select(notification, app_user.c.username)
            .join(app_user, app_user.c.id == notification.c.recipient_user_id)
            .order_by(notification.c.id)).mappings().all()
    return [dict(r) for r in rows]


def _who(db: Database) -> list[tuple[str, str]]:
    return [(r["username"], r["kind"]) for r in _outbox(db)]


def test_sending_tells_the_partners_and_answers_tell_the_sender(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    draft = refer(client, world, world.casey, client_id, send=False)
    assert _outbox(db) == []  # a draft tells nobody
    sent = move(client, world.casey, draft, "requested")
    assert _who(db) == [("pat", "referral_sent")]  # not otto: another organization

    first = _outbox(db)[0]
    link = f"{BASE_URL}/referrals/{sent['id']}"
    assert first["recipient_address"] == EMAILS["pat"]
    assert first["referral_id"] == sent["id"]
    assert first["subject"] == "New referral on Signpost"
    assert first["body"].startswith(
        f"You have a new referral on Signpost. Sign in to see it: {link}\n")
    assert first["sent_at"] is None and first["attempts"] == 0
    assert first["next_attempt_at"] is not None  # pending for the sender

    accepted = move(client, world.pat, sent, "accepted")
    started = move(client, world.pat, accepted, "in-progress")  # not an answer: no message
    held = move(client, world.pat, started, "on-hold", reason_code="no_capacity")
    move(client, world.pat, held, "failed", reason_code="could_not_contact")
    assert _who(db) == [("pat", "referral_sent"), ("casey", "referral_answered"),
                        ("casey", "referral_answered"), ("casey", "referral_answered")]
    answered = _outbox(db)[1]
    assert answered["recipient_address"] == EMAILS["casey"]
    assert answered["subject"] == "Referral update on Signpost"
    assert link in answered["body"]
    for row in _outbox(db):
        for secret in SECRETS:
            assert secret not in row["subject"] + row["body"], secret


def test_rejections_and_completions_reach_the_sender_cancelling_tells_nobody(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    rejected = refer(client, world, world.casey, client_id)
    move(client, world.pat, rejected, "rejected", reason_code="not_eligible")
    done = refer(client, world, world.casey, client_id)
    done = move(client, world.pat, done, "accepted")
    done = move(client, world.pat, done, "in-progress")
    move(client, world.pat, done, "completed")
    cancelled = refer(client, world, world.casey, client_id)
    move(client, world.casey, cancelled, "cancelled", reason_code="duplicate")
    assert _who(db) == [("pat", "referral_sent"), ("casey", "referral_answered"),
                        ("pat", "referral_sent"), ("casey", "referral_answered"),
                        ("casey", "referral_answered"), ("pat", "referral_sent")]


def test_a_logged_referral_notifies_nobody(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey, consent_to=None)
    logged = refer(client, world, world.casey, client_id, is_logged=True)
    move(client, world.casey, logged, "accepted")  # the agency records the provider's answer
    assert _outbox(db) == []


def test_partners_limited_to_other_sites_and_inactive_users_hear_nothing(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    with db.session(write=True) as session:
        for username, sites in (("sid", [world.id("loc0")]), ("una", None)):
            accounts.create_user(session, actor=CLI, username=username, password=PASSWORD,
                                 role="partner", organization_ids=[world.id("org0")],
                                 location_ids=sites or (), email=f"{username}@org0.example")
        session.execute(update(app_user).where(app_user.c.username == "una")
                        .values(is_active=False))
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id)  # to the site loc0
    assert _who(db) == [("pat", "referral_sent"), ("sid", "referral_sent")]
    # The service with no site named: only partners of the whole organization see it.
    refer(client, world, world.casey, client_id, service_at_location_id=None,
          service_id="svc0")
    assert _who(db)[2:] == [("pat", "referral_sent")]


def test_a_user_without_an_address_reads_it_on_signpost(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    with db.session(write=True) as session:
        session.execute(update(app_user).where(app_user.c.username == "pat").values(email=None))
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)
    row = _outbox(db)[0]
    assert row["recipient_address"] is None and row["next_attempt_at"] is None
    assert row["last_error"] == notifications.NO_ADDRESS  # the sender will not try it

    mine = client.get("/api/v1/notifications", headers=world.pat)
    assert mine.status_code == 200, mine.text
    body = mine.json()
    assert body["total"] == 1
    item = body["items"][0]
    assert item["kind"] == "referral_sent" and item["referral_id"] == sent["id"]
    assert item["status"] == "not_sent" and item["sent_at"] is None
    assert f"{BASE_URL}/referrals/{sent['id']}" in item["body"]
    assert "recipient_address" not in item
    # Nobody else's: the case manager and the other partner have none.
    assert client.get("/api/v1/notifications", headers=world.casey).json()["total"] == 0
    assert client.get("/api/v1/notifications", headers=world.otto).json()["total"] == 0
    assert client.get("/api/v1/notifications").status_code == 401


def test_follow_ups_due_are_queued_once_per_due_date(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)
    refer(client, world, world.casey, client_id)  # not due yet
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        session.execute(update(referral).where(referral.c.id == sent["id"])
                        .values(follow_up_due_at=now - timedelta(hours=1)))
    with db.session(write=True) as session:
        assert notifications.queue_follow_ups_due(session, base_url=BASE_URL, now=now) == 1
    with db.session(write=True) as session:
        assert notifications.queue_follow_ups_due(session, base_url=BASE_URL, now=now) == 0
    reminder = _outbox(db)[-1]
    assert (reminder["username"], reminder["kind"]) == ("casey", "follow_up_due")
    assert reminder["subject"] == "Follow-up due on Signpost"

    # "unknown" schedules another follow-up: announced again once that one falls due.
    current = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.casey).json()
    followed = client.post(f"/api/v1/referrals/{sent['id']}/follow-ups", headers=world.casey,
                           json={"outcome": "unknown", "expected_version": current["version"]})
    assert followed.status_code == 201, followed.text
    later = datetime.fromisoformat(followed.json()["follow_up_due_at"]) + timedelta(minutes=1)
    with db.session(write=True) as session:
        assert notifications.queue_follow_ups_due(session, base_url=BASE_URL, now=now) == 0
        assert notifications.queue_follow_ups_due(session, base_url=BASE_URL, now=later) == 2


def test_users_get_an_email_address(db: Database, client) -> None:  # noqa: ANN001
    with db.session(write=True) as session:
        accounts.create_user(session, actor=CLI, username="cam", password=PASSWORD,
                             role="case_manager", agency_name="North Agency",
                             email="  cam@north.example ")
        for bad in ("cam", "cam@", "@north.example", "cam@localhost", "c am@north.example"):
            with pytest.raises(accounts.BadRequest) as refused:
                accounts.create_user(session, actor=CLI, username="cam2", password=PASSWORD,
                                     role="case_manager", agency_name="North Agency",
                                     email=bad)
            assert refused.value.field == "email"
    with db.session() as session:
        assert session.execute(select(app_user.c.email).where(app_user.c.username == "cam")
                               ).scalar() == "cam@north.example"
    sign_in(client, "cam")
