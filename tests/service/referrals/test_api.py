"""Referrals over real HTTP: the loop from case manager to partner and back, and every refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from service.accounts import service as accounts
from service.audit.service import CLI
from service.audit.tables import audit_event
from service.clients.service import PART2_NOTICE
from service.db import Database
from service.referrals.service import TRANSITIONS
from service.referrals.tables import referral, referral_event
from tests.service.accounts.helpers import PASSWORD, sign_in, user_headers
from tests.service.referrals.helpers import World, a_client, make_world, move, refer


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    return make_world(db, client, tmp_path)


def _audit(db: Database, action: str, referral_id: int) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(audit_event)
                               .where(audit_event.c.action == action)
                               .where(audit_event.c.entity_id == str(referral_id))).scalar_one()


def test_the_whole_loop(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)
    assert sent["status"] == "requested" and sent["version"] == 2
    assert sent["organization_id"] == world.id("org0")
    assert sent["location_id"] == world.id("loc0")
    assert sent["service_id"] == world.id("svc0") and sent["need"] == {"id": "1102", "name": "Food"}
    due = datetime.fromisoformat(sent["follow_up_due_at"])
    assert timedelta(days=1, hours=23) < due - datetime.now(UTC) <= timedelta(days=2)
    assert sent["client"]["name"] == "Rosa Q. Example"  # the agency sees its own client

    inbox = client.get("/api/v1/referrals", headers=world.pat).json()
    assert inbox["total"] == 1 and inbox["items"][0]["id"] == sent["id"]
    assert inbox["items"][0]["client_id"] is None
    seen = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.pat).json()
    assert seen["client"] == {"name": "Rosa", "name_is_partial": True,
                              "contact_preference": "text", "date_of_birth": None,
                              "preferred_language": None, "no_voicemail": None,
                              "do_not_text": None}
    assert seen["urgency"] == "urgent" and seen["need"]["name"] == "Food"
    assert seen["note"] is None  # the consent does not share notes
    assert seen["redisclosure_notice"] is None

    accepted = move(client, world.pat, seen, "accepted")
    assert accepted["client"]["name"] == "Rosa Q. Example"
    assert accepted["client"]["date_of_birth"] == "1984-06-02"
    assert accepted["client"]["no_voicemail"] is True
    started = move(client, world.pat, accepted, "in-progress")
    done = move(client, world.pat, started, "completed")
    assert done["status"] == "completed" and done["version"] == 5

    followed = client.post(f"/api/v1/referrals/{sent['id']}/follow-ups", headers=world.casey,
                           json={"outcome": "got_help", "reason": "picked up groceries",
                                 "contact_method": "phone", "expected_version": 5})
    assert followed.status_code == 201, followed.text
    final = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.casey).json()
    assert final["version"] == 6 and final["follow_up_outcome"] == "got_help"
    assert final["follow_up_due_at"] is None
    events = final["events"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [(e["kind"], e["from_status"], e["to_status"]) for e in events] == [
        ("created", None, "draft"), ("transition", "draft", "requested"),
        ("transition", "requested", "accepted"), ("transition", "accepted", "in-progress"),
        ("transition", "in-progress", "completed"), ("follow_up", "completed", "completed")]
    assert [e["actor_role"] for e in events] == ["case_manager"] * 2 + ["partner"] * 3 + [
        "case_manager"]
    assert events[-1]["detail"] == {"outcome": "got_help", "contact_method": "phone"}
    ats = [e["at"] for e in events]
    assert ats == sorted(ats)
    # one audit event per change, the personal text redacted
    assert _audit(db, "referral.create", sent["id"]) == 1
    assert _audit(db, "referral.transition", sent["id"]) == 4
    assert _audit(db, "referral.follow_up", sent["id"]) == 1
    assert _audit(db, "referral.read", sent["id"]) == 2
    with db.session() as session:
        changes = session.execute(select(audit_event.c.changes).where(
            audit_event.c.action == "referral.follow_up")).scalar_one()
    assert changes["reason"]["new"] == "[redacted]"
    # the partner sees that the case manager checked back, and the outcome; not what the
    # client said nor how they were reached
    theirs = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.pat).json()
    follow_up = theirs["events"][-1]
    assert follow_up["kind"] == "follow_up" and follow_up["reason_text"] is None
    assert follow_up["detail"] == {"outcome": "got_help"}
    assert "picked up groceries" not in str(theirs)


def test_part2_consent_carries_the_notice_and_notes_follow_consent(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey, shares=("needs", "notes"), is_part2=True)
    sent = refer(client, world, world.casey, client_id)
    seen = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.pat).json()
    assert seen["redisclosure_notice"] == PART2_NOTICE
    assert seen["note"] == "Needs groceries this week"
    accepted = move(client, world.pat, seen, "accepted")
    # accepted, but the consent shares neither identity nor demographics
    assert accepted["client"]["name"] == "Rosa" and accepted["client"]["date_of_birth"] is None


def test_a_consent_by_name_covers_the_organization(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey, consent_to=None)
    response = client.post(f"/api/v1/clients/{client_id}/consents", headers=world.casey, json={
        "shares": ["needs"], "shared_with_name": "organization  0", "purpose": "referral"})
    assert response.status_code == 201
    assert refer(client, world, world.casey, client_id)["status"] == "requested"


def test_sending_needs_consent_unless_logged(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey, consent_to="org1")  # another organization
    refused = refer(client, world, world.casey, client_id, status=400)
    assert refused["error"]["field"] == "consent"
    with db.session() as session:  # nothing was kept
        assert session.execute(select(func.count()).select_from(referral)).scalar_one() == 0
    draft = refer(client, world, world.casey, client_id, send=False)
    assert draft["status"] == "draft" and draft["follow_up_due_at"] is None
    assert move(client, world.casey, draft, "requested", status=400)["error"]["field"] == \
        "consent"
    # the partner never sees a draft
    assert client.get(f"/api/v1/referrals/{draft['id']}", headers=world.pat).status_code == 404
    logged = refer(client, world, world.casey, client_id, is_logged=True)
    assert logged["status"] == "requested" and logged["is_logged"] is True
    # a logged referral has no partner inbox; the agency records the provider's answer
    assert client.get("/api/v1/referrals", headers=world.pat).json()["total"] == 0
    assert move(client, world.casey, logged, "accepted")["status"] == "accepted"


def test_revoked_consent_stops_sharing(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)
    accepted = move(client, world.pat, sent, "accepted")
    assert accepted["client"]["name_is_partial"] is False
    consent_id = client.get(f"/api/v1/clients/{client_id}",
                            headers=world.casey).json()["consents"][0]["id"]
    assert client.post(f"/api/v1/clients/{client_id}/consents/{consent_id}/revoke",
                       headers=world.casey).status_code == 200
    seen = client.get(f"/api/v1/referrals/{sent['id']}", headers=world.pat).json()
    assert seen["client"]["name"] == "Rosa" and seen["client"]["date_of_birth"] is None


def test_least_privilege_reads(db: Database, client, world: World) -> None:  # noqa: ANN001
    sent = refer(client, world, world.casey, a_client(client, world, world.casey))
    path = f"/api/v1/referrals/{sent['id']}"
    south = user_headers(db, client, "sol", role="case_manager", agency="South Agency")
    for headers in (world.otto, south):
        missing = client.get(path, headers=headers)
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["field"] == "referral_id"
        assert client.get("/api/v1/referrals", headers=headers).json()["total"] == 0
        assert move(client, headers, sent, "cancelled", status=404,
                    reason_code="duplicate")["error"]["field"] == "referral_id"
    assert client.post(f"{path}/follow-ups", headers=south,
                       json={"outcome": "unknown"}).status_code == 404
    admin = user_headers(db, client, "ada", role="admin")
    assert client.get(path, headers=admin).status_code == 200
    assert client.get("/api/v1/referrals", headers=admin).json()["total"] == 1
    assert client.get(path).status_code == 401
    # partners may not follow up nor make referrals (the route's rule)
    assert client.post(f"{path}/follow-ups", headers=world.pat,
                       json={"outcome": "unknown"}).status_code == 403
    assert client.post("/api/v1/referrals", headers=world.pat, json={
        "client_id": 1, "service_id": "svc0", "need": "food"}).status_code == 403
    # another agency's client cannot be referred
    assert refer(client, world, south, sent["client_id"] or 1, status=404)["error"]["field"] == \
        "client_id"


def test_a_partner_limited_to_sites(db: Database, client, world: World) -> None:  # noqa: ANN001
    with db.session(write=True) as session:
        accounts.create_user(session, actor=CLI, username="sitey", password=PASSWORD,
                             role="partner", organization_ids=[world.id("org0")],
                             location_ids=[world.id("loc0")])
        session.execute(text("INSERT INTO location (id, organization_id, name, record_source, "
                             "record_source_id, row_hash, is_active, created_at, updated_at, "
                             "is_confidential) VALUES ('locx', :org, 'Other site', 'city', "
                             "'locx', 'x', true, :now, :now, false)"),
                        {"now": datetime.now(UTC), "org": world.id("org0")})
        session.execute(text("INSERT INTO service_at_location (id, service_id, location_id, "
                             "record_source, record_source_id, row_hash, is_active, created_at,"
                             " updated_at) VALUES ('salx', :svc, 'locx', 'city', 'salx', 'x',"
                             " true, :now, :now)"), {"now": datetime.now(UTC),
                                                     "svc": world.id("svc0")})
    sitey = sign_in(client, "sitey")
    client_id = a_client(client, world, world.casey)
    here = refer(client, world, world.casey, client_id)
    elsewhere = refer(client, world, world.casey, client_id, service_at_location_id="salx")
    whole = refer(client, world, world.casey, client_id, service_at_location_id=None,
                  service_id="svc0")
    listed = {r["id"] for r in client.get("/api/v1/referrals", headers=sitey).json()["items"]}
    assert listed == {here["id"]}
    assert client.get(f"/api/v1/referrals/{elsewhere['id']}", headers=sitey).status_code == 404
    assert client.get(f"/api/v1/referrals/{whole['id']}", headers=sitey).status_code == 404
    everything = client.get("/api/v1/referrals", headers=world.pat).json()
    assert everything["total"] == 3


def test_refused_transitions(db: Database, client, world: World) -> None:  # noqa: ANN001
    sent = refer(client, world, world.casey, a_client(client, world, world.casey))
    out_of_order = move(client, world.pat, sent, "completed", status=409)
    assert out_of_order["error"]["code"] == "invalid_transition"
    assert out_of_order["error"]["field"] == "to"
    no_reason = move(client, world.pat, sent, "rejected", status=400)
    assert no_reason["error"]["field"] == "reason_code"
    other = move(client, world.pat, sent, "rejected", status=400, reason_code="other")
    assert other["error"]["field"] == "reason_text"
    # a partner may not cancel: that is the case manager's move
    forbidden = move(client, world.pat, sent, "cancelled", status=403,
                     reason_code="duplicate")
    assert forbidden["error"]["field"] == "role"
    # nor may the case manager accept for the partner
    assert move(client, world.casey, sent, "accepted", status=403)["error"]["field"] == "role"
    stale = move(client, world.pat, {**sent, "version": 1}, "accepted", status=409)
    assert stale["error"]["code"] == "conflict"
    assert stale["error"]["field"] == "expected_version"
    rejected = move(client, world.pat, sent, "rejected", reason_code="no_capacity",
                    reason_text="full until March")
    assert rejected["events"][-1]["reason_code"] == "no_capacity"
    assert rejected["events"][-1]["reason_text"] == "full until March"
    # a second answer on the old version loses, never overwrites
    late = move(client, world.pat, sent, "accepted", status=409)
    assert late["error"]["field"] == "expected_version"
    cancel = move(client, world.casey, rejected, "cancelled", status=409,
                  reason_code="duplicate")
    assert cancel["error"]["code"] == "invalid_transition"
    assert move(client, world.casey, rejected, "entered-in-error")["status"] == \
        "entered-in-error"
    with db.session() as session:
        seqs = session.execute(select(referral_event.c.seq).where(
            referral_event.c.referral_id == sent["id"]).order_by(referral_event.c.seq)
        ).scalars().all()
    assert seqs == [1, 2, 3, 4]
    assert _audit(db, "referral.transition", sent["id"]) == 3


def test_bad_requests_name_their_field(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    assert refer(client, world, world.casey, client_id, need="astrology",
                 status=400)["error"]["field"] == "need"
    assert refer(client, world, world.casey, client_id, service_at_location_id="nope",
                 status=400)["error"]["field"] == "service_at_location_id"
    assert refer(client, world, world.casey, client_id, service_at_location_id="sal0",
                 service_id="svc1", status=400)["error"]["field"] == "service_at_location_id"
    assert refer(client, world, world.casey, client_id, service_at_location_id=None,
                 status=422)["error"]["code"] == "invalid"


def test_the_transition_table_is_the_one_in_the_issue() -> None:
    partner = {k for k, side in TRANSITIONS.items() if side == "partner"}
    assert partner == {("requested", "accepted"), ("requested", "rejected"),
                       ("accepted", "in-progress"), ("accepted", "on-hold"),
                       ("accepted", "rejected"), ("in-progress", "on-hold"),
                       ("in-progress", "completed"), ("in-progress", "failed"),
                       ("on-hold", "in-progress"), ("on-hold", "failed")}
    agency = {k for k, side in TRANSITIONS.items() if side == "agency"}
    assert ("draft", "requested") in agency
    assert all(to in ("requested", "cancelled", "entered-in-error") for _, to in agency)


def test_referral_events_are_append_only(db: Database, client, world: World) -> None:  # noqa: ANN001
    refer(client, world, world.casey, a_client(client, world, world.casey))
    for statement in (update(referral_event).values(reason_text="x"),
                      referral_event.delete()):
        with pytest.raises(Exception, match="append-only"), db.session(write=True) as session:
            session.execute(statement)


def test_the_work_queue(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    quiet = refer(client, world, world.casey, client_id, urgency="routine")
    due = refer(client, world, world.casey, client_id, urgency="soon")
    fresh = refer(client, world, world.casey, client_id)
    move(client, world.pat, due, "accepted")
    long_ago = datetime.now(UTC) - timedelta(days=20)
    with db.session(write=True) as session:
        session.execute(update(referral).where(referral.c.id == quiet["id"])
                        .values(sent_at=long_ago, follow_up_due_at=long_ago
                                + timedelta(days=30)))
        session.execute(update(referral).where(referral.c.id == due["id"])
                        .values(follow_up_due_at=long_ago))
    queue = client.get("/api/v1/referrals/work-queue", headers=world.casey)
    assert queue.status_code == 200, queue.text
    body = queue.json()
    assert body["follow_up_days"] == {"urgent": 2, "soon": 7, "routine": 14}
    by_id = {i["id"]: i["reasons"] for i in body["items"]}
    assert by_id == {due["id"]: ["follow_up_overdue"], quiet["id"]: ["no_partner_response"]}
    assert fresh["id"] not in by_id
    # an unknown outcome schedules another follow-up; a known one closes it
    unknown = client.post(f"/api/v1/referrals/{due['id']}/follow-ups", headers=world.casey,
                          json={"outcome": "unknown", "contact_method": "text"})
    assert unknown.status_code == 201 and unknown.json()["follow_up_due_at"] is not None
    queue = client.get("/api/v1/referrals/work-queue", headers=world.casey).json()
    assert {i["id"] for i in queue["items"]} == {quiet["id"]}
    south = user_headers(db, client, "sol", role="supervisor", agency="South Agency")
    assert client.get("/api/v1/referrals/work-queue", headers=south).json()["items"] == []
    assert client.get("/api/v1/referrals/work-queue", headers=world.pat).status_code == 403


def test_list_filters_by_status(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    refer(client, world, world.casey, client_id, send=False)
    sent = refer(client, world, world.casey, client_id)
    listed = client.get("/api/v1/referrals", params={"status": "requested"},
                        headers=world.casey).json()
    assert [r["id"] for r in listed["items"]] == [sent["id"]]
    assert client.get("/api/v1/referrals", headers=world.casey).json()["total"] == 2
    assert client.get("/api/v1/referrals", params={"status": "nonsense"},
                      headers=world.casey).status_code == 422
