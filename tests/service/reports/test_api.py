"""The referral report over real HTTP, against numbers worked out by hand.

The scenario (North Agency's case manager casey; pat answers for org0 at loc0, ZIP 20001; otto
for org1 at loc1, ZIP moved to 20002 here), times in UTC, hours to the partner's first answer:

    R1 A food    org0 2026-01-10 10:00 accepted +2h, started, completed; follow-up got_help
    R2 A housing org1 2026-01-15 08:00 rejected +10h (not eligible)
    R3 B food    org0 2026-01-20 12:00 cancelled by casey (no partner answer)
    R4 B food    org1 2026-02-03 09:00 accepted +4h, started, failed
    R5 C food    org0 2026-02-10 09:00 no answer; follow-up did_not_get_help
    R6 C housing org0 2026-02-14 09:00 rejected +30h (no capacity)
    R7 A food    org0 never sent (a draft): in no report
    R8 South Agency's client, org0, 2026-02-20 09:00, accepted +6h: not North Agency's
    R9 C food    org1 2026-03-05 10:00 entered in error by casey
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from service.audit.tables import audit_event
from service.db import Database
from service.directory.tables import hsds_tables
from service.referrals.tables import referral, referral_event
from tests.service.accounts.helpers import user_headers
from tests.service.referrals.helpers import World, a_client, make_world, move, refer

address = hsds_tables["address"]


def at(text_: str) -> datetime:
    return datetime.fromisoformat(text_).replace(tzinfo=UTC)


def rewrite_history(db: Database, referral_id: int, *, sent: datetime,
                    first_answer: timedelta | None = None) -> None:
    """Move a referral into the past: sent at `sent`, the first event after sending at
    `sent + first_answer` (else an hour later), each later event an hour after the one before.
    referral_event is append-only, so its triggers are lifted for this test database only."""
    with db.session(write=True) as session:
        if db.is_sqlite:
            triggers = session.execute(text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                "AND tbl_name = 'referral_event'")).all()
            for name, _ in triggers:
                session.execute(text(f"DROP TRIGGER {name}"))
        else:
            session.execute(text("ALTER TABLE referral_event DISABLE TRIGGER USER"))
        events = session.execute(select(referral_event.c.id, referral_event.c.to_status,
                                        referral_event.c.kind)
                                 .where(referral_event.c.referral_id == referral_id)
                                 .order_by(referral_event.c.seq)).all()
        when, after_sending = sent - timedelta(minutes=5), False
        for event in events:
            if after_sending:
                when += first_answer if first_answer and when == sent else timedelta(hours=1)
            elif event.kind == "transition" and event.to_status == "requested":
                when, after_sending = sent, True
            session.execute(update(referral_event).where(referral_event.c.id == event.id)
                            .values(at=when))
        session.execute(update(referral).where(referral.c.id == referral_id).values(
            sent_at=sent, created_at=sent - timedelta(minutes=5), updated_at=when))
        if db.is_sqlite:
            for _, sql in triggers:
                session.execute(text(sql))
        else:
            session.execute(text("ALTER TABLE referral_event ENABLE TRIGGER USER"))


def follow_up(http, headers: dict[str, str], ref: dict[str, Any], outcome: str) -> None:  # noqa: ANN001
    response = http.post(f"/api/v1/referrals/{ref['id']}/follow-ups", headers=headers,
                         json={"outcome": outcome, "contact_method": "phone"})
    assert response.status_code == 201, response.text


def consent_also_to(http, world: World, headers: dict[str, str], client_id: int,  # noqa: ANN001
                    org: str) -> None:
    response = http.post(f"/api/v1/clients/{client_id}/consents", headers=headers, json={
        "shares": ["identity"], "shared_with_organization_id": world.id(org),
        "purpose": "referrals"})
    assert response.status_code == 201, response.text


def build(db: Database, http, world: World) -> dict[str, Any]:  # noqa: ANN001
    """The scenario above; the referral ids by name, and the other users' headers."""
    with db.session(write=True) as session:
        session.execute(update(address).where(address.c.location_id == world.id("loc1"))
                        .values(postal_code="20002"))
    casey, pat, otto = world.casey, world.pat, world.otto
    a, b, c = (a_client(http, world, casey) for _ in range(3))
    for person in (a, b, c):
        consent_also_to(http, world, casey, person, "org1")
    ids: dict[str, int] = {}

    def send(name: str, person: int, need: str, site: str, when: str,
             first_answer: timedelta | None, *moves: tuple[dict[str, str], str, dict]) -> None:
        ref = refer(http, world, casey, person, need=need, service_at_location_id=site)
        for headers, to, extra in moves:
            ref = move(http, headers, ref, to, **extra)
        ids[name] = ref["id"]
        rewrite_history(db, ref["id"], sent=at(when), first_answer=first_answer)

    send("R1", a, "food", "sal0", "2026-01-10T10:00", timedelta(hours=2),
         (pat, "accepted", {}), (pat, "in-progress", {}), (pat, "completed", {}))
    send("R2", a, "housing", "sal1", "2026-01-15T08:00", timedelta(hours=10),
         (otto, "rejected", {"reason_code": "not_eligible"}))
    send("R3", b, "food", "sal0", "2026-01-20T12:00", None,
         (casey, "cancelled", {"reason_code": "client_declined"}))
    send("R4", b, "food", "sal1", "2026-02-03T09:00", timedelta(hours=4),
         (otto, "accepted", {}), (otto, "in-progress", {}),
         (otto, "failed", {"reason_code": "could_not_contact"}))
    send("R5", c, "food", "sal0", "2026-02-10T09:00", None)
    send("R6", c, "housing", "sal0", "2026-02-14T09:00", timedelta(hours=30),
         (pat, "rejected", {"reason_code": "no_capacity"}))
    send("R9", c, "food", "sal1", "2026-03-05T10:00", None,
         (casey, "entered-in-error", {}))
    refer(http, world, casey, a, send=False)  # R7: a draft
    # Follow-ups last (they are not answers): their events come after the rewritten ones.
    follow_up(http, casey, {"id": ids["R1"]}, "got_help")
    follow_up(http, casey, {"id": ids["R5"]}, "did_not_get_help")

    sol = user_headers(db, http, "sol", role="case_manager", agency="South Agency")
    south = a_client(http, world, sol)
    send_south = refer(http, world, sol, south)
    move(http, pat, send_south, "accepted")
    ids["R8"] = send_south["id"]
    rewrite_history(db, ids["R8"], sent=at("2026-02-20T09:00"), first_answer=timedelta(hours=6))
    return {"ids": ids, "sol": sol, "ada": user_headers(db, http, "ada", role="admin")}


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    return make_world(db, client, tmp_path)


def _by_key(items: list[dict[str, Any]]) -> dict[str, int]:
    return {i["key"]: i["count"] for i in items}


def test_the_report_for_a_case_manager(db: Database, client, world: World) -> None:  # noqa: ANN001
    build(db, client, world)
    response = client.get("/api/v1/reports/referrals", headers=world.casey)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["from"] is None and report["to"] is None
    assert report["referrals_sent"] == 7  # R1-R6 and R9: not the draft, not South's
    assert _by_key(report["by_status"]) == {
        "completed": 1, "rejected": 2, "cancelled": 1, "failed": 1, "requested": 1,
        "entered-in-error": 1}
    assert report["by_status"][0] == {"key": "rejected", "name": "rejected", "count": 2}
    assert report["by_need"] == [{"key": "1102", "name": "Food", "count": 5},
                                 {"key": "1103", "name": "Housing", "count": 2}]
    assert report["by_partner"] == [
        {"key": world.id("org0"), "name": "Organization 0", "count": 4},
        {"key": world.id("org1"), "name": "Organization 1", "count": 3}]
    assert report["by_month"] == [{"key": "2026-01", "name": "2026-01", "count": 3},
                                  {"key": "2026-02", "name": "2026-02", "count": 3},
                                  {"key": "2026-03", "name": "2026-03", "count": 1}]
    # Answers after 2, 10, 4 and 30 hours: the median is (4 + 10) / 2.
    assert report["response"] == {"responded": 4, "awaiting": 1, "median_hours": 7.0}
    assert report["closed_loop_by_month"] == [
        {"key": "2026-01", "sent": 3, "left_out": 1, "counted": 2, "closed": 1, "rate": 0.5,
         "partner_closed": 1, "client_got_help": 1},
        {"key": "2026-02", "sent": 3, "left_out": 0, "counted": 3, "closed": 1,
         "rate": 0.3333, "partner_closed": 0, "client_got_help": 0},
        {"key": "2026-03", "sent": 1, "left_out": 1, "counted": 0, "closed": 0, "rate": None,
         "partner_closed": 0, "client_got_help": 0}]
    assert report["closed_loop"] == {"key": "all", "sent": 7, "left_out": 2, "counted": 5,
                                     "closed": 2, "rate": 0.4, "partner_closed": 1,
                                     "client_got_help": 1}
    # A's housing (rejected at loc1), B's food (cancelled, then failed at loc1), C's housing
    # (rejected at loc0). A's food was met; C's food is still open (R9 does not count).
    assert report["unmet_needs"] == [
        {"need_id": "1102", "need_name": "Food", "area": "20002", "count": 1},
        {"need_id": "1103", "need_name": "Housing", "area": "20001", "count": 1},
        {"need_id": "1103", "need_name": "Housing", "area": "20002", "count": 1}]
    assert "Rosa" not in response.text  # counts only

    february = client.get("/api/v1/reports/referrals", headers=world.casey,
                          params={"from": "2026-02-01", "to": "2026-02-28"}).json()
    assert (february["from"], february["to"]) == ("2026-02-01", "2026-02-28")
    assert february["referrals_sent"] == 3
    assert february["response"] == {"responded": 2, "awaiting": 1, "median_hours": 17.0}
    assert [m["key"] for m in february["closed_loop_by_month"]] == ["2026-02"]
    january_15th = client.get("/api/v1/reports/referrals", headers=world.casey,
                              params={"from": "2026-01-15", "to": "2026-01-15"}).json()
    assert january_15th["referrals_sent"] == 1  # the last day is included

    with db.session() as session:
        reads = session.execute(select(func.count()).select_from(audit_event)
                                .where(audit_event.c.action == "report.referrals")).scalar_one()
    assert reads == 3


def test_the_report_as_csv(db: Database, client, world: World) -> None:  # noqa: ANN001
    build(db, client, world)
    response = client.get("/api/v1/reports/referrals", headers=world.casey,
                          params={"format": "csv", "from": "2026-01-01"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["dimension", "key", "label", "measure", "value"]
    for expected in (["period", "from", "", "date", "2026-01-01"],
                     ["period", "to", "", "date", ""],
                     ["referrals", "all", "", "sent", "7"],
                     ["status", "completed", "completed", "count", "1"],
                     ["need", "1102", "Food", "count", "5"],
                     ["partner", world.id("org1"), "Organization 1", "count", "3"],
                     ["month", "2026-03", "2026-03", "count", "1"],
                     ["response", "all", "", "median_hours", "7.0"],
                     ["closed_loop", "2026-01", "", "rate", "0.5"],
                     ["closed_loop", "2026-03", "", "rate", ""],
                     ["closed_loop", "all", "", "client_got_help", "1"],
                     ["unmet_need", "1103/20001", "Housing in 20001", "count", "1"]):
        assert expected in rows, expected
    assert all(len(r) == 5 for r in rows)


def test_each_role_sees_its_own_referrals(db: Database, client, world: World) -> None:  # noqa: ANN001
    made = build(db, client, world)

    def report(headers: dict[str, str]) -> dict[str, Any]:
        response = client.get("/api/v1/reports/referrals", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    everything = report(made["ada"])
    assert everything["referrals_sent"] == 8  # both agencies
    assert _by_key(everything["by_partner"]) == {world.id("org0"): 5, world.id("org1"): 3}
    # R1 2h, R2 10h, R4 4h, R6 30h, R8 6h: the median is 6.
    assert everything["response"]["median_hours"] == 6.0
    south = report(made["sol"])
    assert south["referrals_sent"] == 1 and _by_key(south["by_status"]) == {"accepted": 1}
    org0 = report(world.pat)  # sent to org0, from either agency
    assert org0["referrals_sent"] == 5
    assert _by_key(org0["by_partner"]) == {world.id("org0"): 5}
    assert _by_key(org0["by_status"]) == {"completed": 1, "cancelled": 1, "requested": 1,
                                          "rejected": 1, "accepted": 1}
    org1 = report(world.otto)
    assert org1["referrals_sent"] == 3
    assert _by_key(org1["by_status"]) == {"rejected": 1, "failed": 1, "entered-in-error": 1}
    assert client.get("/api/v1/reports/referrals").status_code == 401


def test_a_period_that_ends_before_it_starts_is_refused(db: Database, client) -> None:  # noqa: ANN001
    casey = user_headers(db, client, "casey", role="case_manager")
    refused = client.get("/api/v1/reports/referrals", headers=casey,
                         params={"from": "2026-03-01", "to": "2026-02-01"})
    assert refused.status_code == 400 and refused.json()["error"]["field"] == "to"
    malformed = client.get("/api/v1/reports/referrals", headers=casey,
                           params={"from": "March"})
    assert malformed.status_code == 422 and malformed.json()["error"]["field"] == "from"
    empty = client.get("/api/v1/reports/referrals", headers=casey).json()
    assert empty["referrals_sent"] == 0 and empty["response"]["median_hours"] is None
    assert empty["closed_loop"]["rate"] is None and empty["unmet_needs"] == []
