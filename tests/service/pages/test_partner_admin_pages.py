"""The partner portal and the admin pages over HTTP: a partner answers referrals from the inbox
and keeps listings current; an admin reads imports, manages users, decides partner edits and
reads the outcome report. Scope holds (another organization's referral or listing is a 404
page), and every form needs its CSRF token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from indexer.pipeline import load
from service.config import Settings
from service.db import Database
from tests.factories import directory_package
from tests.service.accounts.helpers import create_user, sign_in
from tests.service.pages.helpers import form_post, web_client, web_sign_in
from tests.service.referrals.helpers import World, a_client, make_world, move, refer


@pytest.fixture
def world(db: Database, client: TestClient, tmp_path: Path) -> World:
    """org0 (partner pat) and org1 (partner otto), case manager casey, admin ada."""
    found = make_world(db, client, tmp_path)
    create_user(db, username="ada", role="admin")
    return found


@pytest.fixture
def web(settings: Settings, world: World) -> Iterator[TestClient]:
    with web_client(settings) as http:
        yield http


def sent(client: TestClient, world: World, **overrides: Any) -> dict[str, Any]:
    """A referral from casey to org0's pantry, sent (the client consented to org0)."""
    return refer(client, world, world.casey, a_client(client, world, world.casey), **overrides)


def texts(html: str) -> str:
    """The page's text, tags dropped and spaces squeezed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


# --- the partner's inbox --------------------------------------------------------------------


def test_a_partner_accepts_and_completes_from_the_inbox(web: TestClient, client: TestClient,
                                                        world: World) -> None:
    referral = sent(client, world)
    web_sign_in(web, "pat")
    inbox = web.get("/partner")
    assert inbox.status_code == 200
    page = texts(inbox.text)
    assert f"Referral {referral['id']}: Food" in page
    assert "Rosa (first name only until you accept)" in page  # the minimum before accepting
    assert "Example" not in page and "1984" not in page and "groceries" not in page
    assert "Urgent" in page and "Text message" in page and "New (1)" in page

    answer = form_post(web, "/partner", f"/partner/referrals/{referral['id']}/transition",
                       {"to": "accepted", "version": str(referral["version"]),
                        "next": "/partner?tab=new"})
    assert answer.status_code == 303 and answer.headers["location"] == "/partner?tab=new"
    after = web.get("/partner?tab=new")
    assert f"Referral {referral['id']} accepted." in after.text
    assert "No new referrals" in after.text

    detail = web.get(f"/partner/referrals/{referral['id']}")
    page = texts(detail.text)
    assert "Rosa Q. Example" in page  # consent shares identity once accepted
    assert "New → Accepted" in page and "Your organization" in page
    version = int(re.search(r'name="version" value="(\d+)"', detail.text).group(1))
    for to in ("in-progress", "completed"):
        done = form_post(web, f"/partner/referrals/{referral['id']}",
                         f"/partner/referrals/{referral['id']}/transition",
                         {"to": to, "version": str(version)})
        assert done.status_code == 303, done.text
        version += 1
    closed = texts(web.get("/partner?tab=closed").text)
    assert f"Referral {referral['id']}: Food" in closed and "Completed" in closed
    api = client.get(f"/api/v1/referrals/{referral['id']}", headers=world.casey).json()
    assert api["status"] == "completed"
    assert [e["to_status"] for e in api["events"]] == [
        "draft", "requested", "accepted", "in-progress", "completed"]


def test_declining_needs_a_reason(web: TestClient, client: TestClient, world: World) -> None:
    referral = sent(client, world)
    web_sign_in(web, "pat")
    action = f"/partner/referrals/{referral['id']}/transition"
    missing = form_post(web, "/partner", action, {"to": "rejected", "version": "2"})
    assert missing.status_code == 422
    assert "Choose a reason." in missing.text and 'aria-invalid="true"' in missing.text
    other = form_post(web, "/partner", action, {"to": "rejected", "version": "2",
                                                "reason_code": "other"})
    assert other.status_code == 422 and "Say why, in a few words." in other.text
    declined = form_post(web, "/partner", action, {"to": "rejected", "version": "2",
                                                   "reason_code": "no_capacity",
                                                   "reason_text": "Full until March"})
    assert declined.status_code == 303
    api = client.get(f"/api/v1/referrals/{referral['id']}", headers=world.casey).json()
    assert api["status"] == "rejected"
    assert api["events"][-1]["reason_code"] == "no_capacity"
    assert api["events"][-1]["reason_text"] == "Full until March"


def test_a_stale_answer_says_the_referral_changed(web: TestClient, client: TestClient,
                                                  world: World) -> None:
    referral = sent(client, world)
    web_sign_in(web, "pat")
    page = web.get(f"/partner/referrals/{referral['id']}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    cancel = client.post(f"/api/v1/referrals/{referral['id']}/transitions", headers=world.casey,
                         json={"to": "cancelled", "expected_version": 2,
                               "reason_code": "client_declined"})
    assert cancel.status_code == 200
    stale = web.post(f"/partner/referrals/{referral['id']}/transition",
                     data={"to": "accepted", "version": "2", "csrf_token": token})
    assert stale.status_code == 303
    assert stale.headers["location"] == f"/partner/referrals/{referral['id']}"
    reloaded = web.get(stale.headers["location"])
    assert "This referral changed since you opened it" in reloaded.text
    assert "Cancelled by the agency" in reloaded.text
    assert 'name="to" value="accepted"' not in reloaded.text  # nothing left to answer


def test_a_partner_never_sees_another_organizations_referral(
        web: TestClient, client: TestClient, world: World) -> None:
    referral = sent(client, world)
    web_sign_in(web, "otto")
    assert f"Referral {referral['id']}" not in web.get("/partner").text
    assert "(0)" in texts(web.get("/partner").text)
    page = web.get(f"/partner/referrals/{referral['id']}")
    assert page.status_code == 404 and "couldn" in page.text and "Rosa" not in page.text
    answer = form_post(web, "/partner", f"/partner/referrals/{referral['id']}/transition",
                       {"to": "accepted", "version": "2"})
    assert answer.status_code == 404
    api = client.get(f"/api/v1/referrals/{referral['id']}", headers=world.casey).json()
    assert api["status"] == "requested"


def test_partner_pages_need_a_partner(web: TestClient) -> None:
    assert web.get("/partner").headers["location"] == "/login?next=%2Fpartner"
    web_sign_in(web, "casey")
    refused = web.get("/partner")
    assert refused.status_code == 403 and "have access" in refused.text


# --- the admin pages ------------------------------------------------------------------------


def test_an_admin_reads_import_runs_and_every_problem(web: TestClient, db: Database,
                                                      tmp_path: Path) -> None:
    package = directory_package(1, prefix="c")
    package.add("service", id="bad", organization_id="orgc0", name="Bad", status="active",
                minimum_age="abc")
    for i in range(55):
        package.add("phone", id=f"ph-bad{i}", service_id="nowhere", number="202-555-0101")
    run = load(db, package.write(tmp_path / "county"), source="county")
    web_sign_in(web, "ada")
    home = texts(web.get("/admin").text)
    assert f"Run {run.run_id} county" in home
    runs = texts(web.get("/admin/imports").text)
    assert f"Run {run.run_id} county (hsds" in runs and " 56 0" in runs
    page = web.get(f"/admin/imports/{run.run_id}")
    assert page.status_code == 200
    shown = texts(page.text)
    assert "56 problems (page 1 of 2)" in shown
    assert "error services.csv 3 service minimum_age not a number: 'abc' (id bad)" in shown
    assert f'href="/admin/imports/{run.run_id}?page=2"' in page.text
    last = texts(web.get(f"/admin/imports/{run.run_id}?page=2").text)
    assert "ph-bad54" in last and "minimum_age" not in last
    assert web.get("/admin/imports/99999").status_code == 404


def test_an_admin_adds_a_user_under_the_password_policy_and_deactivates_them(
        web: TestClient) -> None:
    web_sign_in(web, "ada")
    new = {"username": "nina", "role": "case_manager", "agency": "North Agency",
           "password": "Password2024!"}
    weak = form_post(web, "/admin/users", "/admin/users", new)
    assert weak.status_code == 422
    assert "too common or too easy to guess" in weak.text
    assert 'id="password" name="password" type="password" required autocomplete="new-password"' \
           ' aria-invalid="true"' in weak.text
    assert 'value="nina"' in weak.text  # the form keeps what was typed (never the password)
    made = form_post(web, "/admin/users", "/admin/users",
                     {**new, "password": "quiet harbor lantern 7"})
    assert made.status_code == 303
    page = web.get(made.headers["location"])
    assert "User nina added." in page.text and "North Agency" in page.text
    with web_client(web.app.state.settings) as other:
        assert web_sign_in(other, "nina", "quiet harbor lantern 7") == "/dashboard"
        off = form_post(web, made.headers["location"], made.headers["location"] + "/active",
                        {"is_active": "false"})
        assert off.status_code == 303
        assert "nina is deactivated" in web.get(off.headers["location"]).text
        assert other.get("/api/v1/auth/me").status_code == 401  # their session ended
    listed = texts(web.get("/admin/users?active=no").text)
    assert "nina Case manager North Agency Deactivated" in listed


def test_an_admin_links_a_partner_to_another_organization(web: TestClient, client: TestClient,
                                                          world: World) -> None:
    referral = sent(client, world)
    otto = client.get("/api/v1/users?role=partner", headers=sign_in(client, "ada")).json()
    otto_id = next(u["id"] for u in otto["items"] if u["username"] == "otto")
    web_sign_in(web, "ada")
    linked = form_post(web, f"/admin/users/{otto_id}", f"/admin/users/{otto_id}/organizations",
                       {"organization": "organization 0"})
    assert linked.status_code == 303
    assert "otto now speaks for Organization 0." in web.get(linked.headers["location"]).text
    unknown = form_post(web, f"/admin/users/{otto_id}", f"/admin/users/{otto_id}/organizations",
                        {"organization": "Nobody Inc"})
    assert "No organization has the id or name" in web.get(unknown.headers["location"]).text
    with web_client(web.app.state.settings) as partner:
        web_sign_in(partner, "otto")
        assert f"Referral {referral['id']}: Food" in partner.get("/partner").text


def test_the_outcome_report_draws_its_chart_on_the_server(web: TestClient, client: TestClient,
                                                          world: World) -> None:
    referral = sent(client, world)
    for to in ("accepted", "in-progress", "completed"):
        referral = move(client, world.pat, referral, to)
    sent(client, world)
    web_sign_in(web, "ada")
    page = web.get("/admin/reports")
    assert page.status_code == 200
    month = texts(page.text)
    assert "Referrals sent 2" in month and "Closed-loop rate 50%" in month
    assert '<svg class="chart"' in page.text and 'role="img"' in page.text
    assert "<script" not in page.text.split("<main", 1)[1] and "style=" not in page.text
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)"', page.text)
    assert len(bars) == 2 and float(bars[0]) > 0  # one month: the rate, and the count sent
    assert "<caption>Closed loop by month sent</caption>" in page.text
    assert 'href="/api/v1/reports/referrals?format=csv"' in page.text
    assert web.get("/api/v1/reports/referrals?format=csv").status_code == 200  # the cookie works
    bad = web.get("/admin/reports?from=2026-02-30")
    assert bad.status_code == 422 and "Give a date as YYYY-MM-DD." in bad.text
    backwards = web.get("/admin/reports?from=2026-03-01&to=2026-01-01")
    assert backwards.status_code == 422 and "must not be before" in backwards.text


def test_the_admin_can_download_the_audit_log(web: TestClient) -> None:
    web_sign_in(web, "ada")
    assert 'href="/api/v1/audit?format=csv"' in web.get("/admin").text
    export = web.get("/api/v1/audit?format=csv")
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")


def test_admin_pages_need_an_admin(web: TestClient) -> None:
    web_sign_in(web, "pat")
    for path in ("/admin", "/admin/users", "/admin/imports", "/admin/reports", "/admin/edits",
                 "/admin/stale"):
        assert web.get(path).status_code == 403, path


# --- my listings ----------------------------------------------------------------------------


def hours_form(rows: list[tuple[str, str, str]], blank: int = 2) -> dict[str, list[str]]:
    """The hours form as a browser posts it: every row, blank ones too."""
    rows = [*rows, *[("", "", "")] * blank]
    return {"day": [r[0] for r in rows], "opens": [r[1] for r in rows],
            "closes": [r[2] for r in rows]}


def version_on(page: str) -> str:
    return re.search(r'name="version" value="([^"]+)"', page).group(1)


def edit_hours(web: TestClient, service_id: str, rows: list[tuple[str, str, str]]):  # noqa: ANN201
    page = web.get(f"/partner/listings/{service_id}")
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return web.post(f"/partner/listings/{service_id}/hours",
                    data={**hours_form(rows), "csrf_token": token,
                          "version": version_on(page.text), "site": ""})


def card_of(search_page: str, name: str) -> str:
    return texts(search_page.split(f">{name}</a>", 1)[1].split("</li>", 1)[0])


def pantry_hours(web: TestClient, db: Database, world: World) -> str:
    """What a case manager reads of Food Pantry 0's hours: its search card (the embedded
    engine; PostgreSQL searches with Elasticsearch, not here), and its detail page."""
    detail = web.get(f"/services/{world.id('svc0')}").text
    shown = texts(detail.split('class="hours"', 1)[1].split("</dd>", 1)[0])
    if db.is_sqlite:
        shown += " | " + card_of(web.get("/search?q=food+pantry&near=20001").text,
                                 "Food Pantry 0")
    return shown


def test_a_partner_confirms_a_listing_in_one_click(web: TestClient, client: TestClient,
                                                   world: World) -> None:
    web_sign_in(web, "pat")
    listings = web.get("/partner/listings")
    assert listings.status_code == 200
    assert "Food Pantry 0" in listings.text and "Food Pantry 1" not in listings.text
    assert "Never due for a check" in texts(listings.text)
    confirmed = form_post(web, "/partner/listings", f"/partner/listings/{world.id('svc0')}/verify",
                          {"next": "/partner/listings"})
    assert confirmed.status_code == 303 and confirmed.headers["location"] == "/partner/listings"
    after = texts(web.get("/partner/listings").text)
    assert "the listing is marked as checked today" in after and "due for a check" not in after
    api = client.get(f"/api/v1/services/{world.id('svc0')}").json()["service"]
    assert api["x_verified_by"] == "pat"


def test_a_partners_hours_edit_shows_in_search_at_once(web: TestClient, db: Database,
                                                      world: World) -> None:
    assert "Mon" in pantry_hours(web, db, world)
    web_sign_in(web, "pat")
    saved = edit_hours(web, world.id("svc0"), [("TU", "08:00", "12:00"),
                                               ("SA", "22:00", "06:00")])
    assert saved.status_code == 303, saved.text
    page = web.get(saved.headers["location"])
    assert "Hours saved. Searches show the change now." in page.text
    assert 'value="22:00"' in page.text and 'value="06:00"' in page.text
    shown = pantry_hours(web, db, world)
    assert shown.count("Tue") == shown.count("Sat") == (2 if db.is_sqlite else 1)
    assert "Mon" not in shown


def test_the_hours_form_explains_what_is_wrong(web: TestClient, world: World) -> None:
    web_sign_in(web, "pat")
    half = edit_hours(web, world.id("svc0"), [("TU", "08:00", "")])
    assert half.status_code == 422
    assert "Row 1: give the day, the opening time and the closing time" in half.text
    same = edit_hours(web, world.id("svc0"), [("TU", "08:00", "08:00")])
    assert same.status_code == 422 and "opens and closes at the same time" in same.text
    assert 'value="08:00"' in same.text  # what was typed is kept


def test_an_edit_against_a_stale_listing_is_refused(web: TestClient, world: World) -> None:
    web_sign_in(web, "pat")
    page = web.get(f"/partner/listings/{world.id('svc0')}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    old = version_on(page.text)
    assert edit_hours(web, world.id("svc0"), [("MO", "09:00", "17:00")]).status_code == 303
    stale = web.post(f"/partner/listings/{world.id('svc0')}/status",
                     data={"status": "temporarily closed", "version": old, "csrf_token": token})
    assert stale.status_code == 303
    assert "This listing changed since you opened it" in web.get(stale.headers["location"]).text
    assert 'value="temporarily closed" selected' not in web.get(
        f"/partner/listings/{world.id('svc0')}").text


def test_a_partner_edits_eligibility_capacity_status_and_details(
        web: TestClient, client: TestClient, world: World) -> None:
    web_sign_in(web, "pat")
    sid = world.id("svc0")
    page = web.get(f"/partner/listings/{sid}").text
    eligibility = form_post(web, f"/partner/listings/{sid}", f"/partner/listings/{sid}/eligibility",
                            {"version": version_on(page), "description": "Adults 18 and over",
                             "min_age": "18", "max_age": "", "documents": "photo_id",
                             "populations": "veterans"})
    assert eligibility.status_code == 303, eligibility.text
    page = web.get(f"/partner/listings/{sid}").text
    capacity = form_post(web, f"/partner/listings/{sid}", f"/partner/listings/{sid}/capacity",
                         {"version": version_on(page), "site": world.id("sal0"),
                          "capacity": "waitlist"})
    assert capacity.status_code == 303
    page = web.get(f"/partner/listings/{sid}").text
    details = form_post(web, f"/partner/listings/{sid}", f"/partner/listings/{sid}/details",
                        {"version": version_on(page), "name": "Food Pantry Zero",
                         "description": "Groceries twice a week", "url": "ftp://nope"})
    assert details.status_code == 422 and "http://" in details.text
    assert 'value="Food Pantry Zero"' in details.text
    details = form_post(web, f"/partner/listings/{sid}", f"/partner/listings/{sid}/details",
                        {"version": version_on(page), "name": "Food Pantry Zero",
                         "description": "Groceries twice a week", "languages": "en, es"})
    assert details.status_code == 303, details.text
    page = web.get(f"/partner/listings/{sid}").text
    status = form_post(web, f"/partner/listings/{sid}", f"/partner/listings/{sid}/status",
                       {"version": version_on(page), "status": "active do not refer"})
    assert status.status_code == 303
    listing = client.get(f"/api/v1/services/{sid}").json()["service"]
    assert listing["name"] == "Food Pantry Zero" and listing["minimum_age"] == 18
    assert listing["x_is_referable"] is False
    assert listing["x_eligibility"]["documents"] == ["photo_id"]
    assert listing["x_eligibility"]["required_populations"] == ["veterans"]
    assert listing["service_at_locations"][0]["x_capacity_status"] == "waitlist"
    assert sorted(lang["code"] for lang in listing["languages"]) == ["en", "es"]


def test_a_partner_never_edits_another_organizations_listing(web: TestClient, db: Database,
                                                              world: World) -> None:
    web_sign_in(web, "otto")
    assert "Food Pantry 0" not in web.get("/partner/listings").text
    page = web.get(f"/partner/listings/{world.id('svc0')}")
    assert page.status_code == 403 and "Organization 0" in page.text
    for section, data in (("hours", hours_form([("MO", "01:00", "02:00")])),
                          ("status", {"status": "temporarily closed"}),
                          ("verify", {})):
        refused = form_post(web, "/partner/listings",
                            f"/partner/listings/{world.id('svc0')}/{section}", data)
        assert refused.status_code == 403, section
    shown = pantry_hours(web, db, world)
    assert "Mon" in shown and "1:00" not in shown
    assert web.get("/partner/listings/no-such-service").status_code == 404


@pytest.fixture
def approving(settings: Settings, world: World) -> Iterator[TestClient]:
    """A web client of an app whose partner edits wait for an admin."""
    with web_client(settings.model_copy(update={"partner_edits_require_approval": True})) \
            as http:
        yield http


def test_an_admin_approves_a_pending_edit(approving: TestClient, db: Database,
                                          world: World) -> None:
    web_sign_in(approving, "pat")
    waiting = edit_hours(approving, world.id("svc0"), [("SU", "10:00", "14:00")])
    assert waiting.status_code == 303
    page = approving.get(waiting.headers["location"]).text
    assert "Hours sent for approval" in page and "Edit 1: hours" in texts(page)
    assert "Sun" not in pantry_hours(approving, db, world)
    with web_client(approving.app.state.settings) as admin:
        web_sign_in(admin, "ada")
        home = texts(admin.get("/admin").text)
        assert "Partner edits waiting for approval (1)" in home
        edits = admin.get("/admin/edits")
        shown = texts(edits.text)
        assert "Edit 1: Food Pantry 0" in shown and "by pat" in shown
        assert "SU 10:00–14:00" in shown and "MO, WE, FR 09:00–17:00" in shown
        empty_reason = form_post(admin, "/admin/edits", "/admin/edits/1/reject", {"reason": ""})
        assert "say why" in admin.get(empty_reason.headers["location"]).text
        approved = form_post(admin, "/admin/edits", "/admin/edits/1/approve", {})
        assert approved.status_code == 303
        assert "Edit 1 to Food Pantry 0 approved." in admin.get("/admin/edits").text
        shown = pantry_hours(admin, db, world)
        assert "Sun" in shown and "Mon" not in shown
        applied = texts(admin.get("/admin/edits?status=applied").text)
        assert "Edit 1: Food Pantry 0" in applied and "Approved by ada" in applied
        reverted = form_post(admin, "/admin/edits?status=applied", "/admin/edits/1/revert",
                             {"reason": "wrong listing"})
        assert reverted.status_code == 303
        shown = pantry_hours(admin, db, world)
        assert "Mon" in shown and "Sun" not in shown


def test_stale_listings_are_listed_for_the_admin(web: TestClient, world: World) -> None:
    web_sign_in(web, "ada")
    page = texts(web.get("/admin/stale").text)
    assert "2 listed services not confirmed in 365 days" in page
    assert "Food Pantry 0 Organization 0 Never" in page


# --- CSRF on every form ---------------------------------------------------------------------


def _forms(prefix: str) -> list[str]:
    from service.access import RULES

    return [key.split(" ", 1)[1] for key in RULES
            if key.startswith(f"POST {prefix}")]


@pytest.mark.parametrize(("who", "prefix"), [("pat", "/partner"), ("ada", "/admin")])
def test_every_form_needs_its_csrf_token(web: TestClient, client: TestClient, world: World,
                                         who: str, prefix: str) -> None:
    referral = sent(client, world)
    web_sign_in(web, who)
    paths = _forms(prefix)
    assert len(paths) >= 5
    values = {"referral_id": str(referral["id"]), "service_id": world.id("svc0"),
              "user_id": "1", "edit_id": "1"}
    for path in paths:
        url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
        refused = web.post(url, data={"to": "accepted", "version": "2", "status": "active",
                                      "is_active": "false"})
        assert refused.status_code == 403, url
        assert "expired or came from another site" in refused.text, url
        forged = web.post(url, data={"to": "accepted", "version": "2", "csrf_token": "x" * 43})
        assert forged.status_code == 403, url
    api = client.get(f"/api/v1/referrals/{referral['id']}", headers=world.casey).json()
    assert api["status"] == "requested"
