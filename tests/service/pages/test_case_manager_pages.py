"""The case manager's pages over HTTP: the dashboard, clients and consents, the one-page refer
flow (with and without consent on record), one referral (cancel, stale version, follow-up),
the search for a client with its Refer buttons, printable and plain-text resource lists, and
the map's tile origin in the page policy. Each agency sees only its own clients (404 else)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from indexer.pipeline import load
from service.accounts.service import Principal
from service.clients import service as clients
from service.clients.schemas import ClientCreate, ConsentCreate
from service.clients.tables import client, consent
from service.config import Settings
from service.db import Database
from service.directory.tables import hsds_tables
from service.referrals import service as referrals
from service.referrals.schemas import ReferralCreate
from service.referrals.tables import referral
from tests.factories import directory_package, search_package
from tests.service.accounts.helpers import create_user
from tests.service.pages.helpers import csrf_from, form_post, web_client, web_sign_in

POST_FORM = re.compile(r'<form\b[^>]*method="post"[^>]*>(.*?)</form>', re.S | re.I)


@dataclass
class Office:
    """Two agencies' case managers and a partner over a small directory."""

    db: Database
    casey: Principal  # case manager, North Agency
    sam: Principal  # case manager, South Agency
    ids: dict[str, str]  # the package's ids (org0, sal0, svc0...) -> stored ids

    def client(self, actor: Principal, *, name: str = "Rosa Q. Example",
               born: date | None = date(1984, 6, 2), language: str | None = "es",
               consent_to: str | None = None, is_part2: bool = False) -> int:
        with self.db.session(write=True) as session:
            made, _ = clients.create_client(session, actor=actor, data=ClientCreate(
                name=name, date_of_birth=born, preferred_language=language))
            if consent_to is not None:
                clients.add_consent(session, actor=actor, client_id=made["id"],
                                    data=ConsentCreate(
                                        shares=["identity", "contact", "needs",
                                                "referral_status"],
                                        shared_with_organization_id=self.ids[consent_to],
                                        purpose="referral for groceries", is_part2=is_part2))
        return made["id"]

    def referral(self, actor: Principal, client_id: int, *, site: str = "sal0") -> int:
        with self.db.session(write=True) as session:
            made = referrals.create_referral(session, actor=actor, data=ReferralCreate(
                client_id=client_id, service_at_location_id=self.ids[site], need="food",
                note="Needs groceries", urgency="urgent", send=True))
        return made["id"]

    def count(self, table: Any) -> int:
        with self.db.session() as session:
            return session.execute(select(func.count()).select_from(table)).scalar_one()


def _principal(made: dict[str, Any]) -> Principal:
    return Principal(user_id=made["id"], role=made["role"], username=made["username"],
                     agency_id=made["agency_id"])


def _office(db: Database, tmp_path: Path, package: Any = None) -> Office:
    load(db, (package or directory_package(3)).write(tmp_path / "pkg"), source="city")
    ids: dict[str, str] = {}
    with db.session() as session:
        for name in ("organization", "service", "location", "service_at_location"):
            table = hsds_tables[name]
            ids.update(session.execute(select(table.c.record_source_id, table.c.id)).all())
    casey = create_user(db, username="casey", role="case_manager", agency="North Agency")
    sam = create_user(db, username="sam", role="case_manager", agency="South Agency")
    partner_org = ids.get("org0") or ids["org-pantry-near"]
    create_user(db, username="pat", role="partner", organizations=(partner_org,))
    return Office(db=db, casey=_principal(casey), sam=_principal(sam), ids=ids)


@pytest.fixture
def office(db: Database, tmp_path: Path) -> Office:
    return _office(db, tmp_path)


@pytest.fixture
def web(office: Office, settings: Settings) -> Iterator[TestClient]:
    with web_client(settings) as http:
        web_sign_in(http, "casey")
        yield http


def _text(html: str) -> str:
    """The page's words, tags stripped, whitespace squeezed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _follow(http: TestClient, response: Any) -> Any:
    assert response.status_code == 303, response.text
    return http.get(response.headers["location"])


# --- the refer flow ------------------------------------------------------------------------


def test_refer_without_consent_records_it_with_the_referral_in_one_submit(
        web: TestClient, office: Office) -> None:
    person = office.client(office.casey)
    page = f"/referrals/new?client={person}&service_at_location={office.ids['sal0']}&need=1102"
    shown = web.get(page)
    assert shown.status_code == 200
    words = _text(shown.text)
    assert "Refer RQE to Food Pantry 0" in words
    assert "There is no consent on record to share Rosa Q. Example's information with " \
           "Organization 0" in words
    assert re.search(r'<option value="1102" selected>', shown.text)  # the need, pre-chosen
    assert 'name="consent_given" value="1" required' in shown.text
    assert re.search(r'value="soon" checked', shown.text)

    form = {"client_id": str(person), "service_at_location_id": office.ids["sal0"],
            "need": "1102", "urgency": "soon", "note": "Call after 5pm"}
    refused = form_post(web, page, "/referrals", form)
    assert refused.status_code == 422
    assert "There is no consent on record to share this client's information with " \
           "Organization 0" in _text(refused.text)
    assert office.count(referral) == 0 and office.count(consent) == 0

    sent = form_post(web, page, "/referrals", {
        **form, "consent_given": "1", "shares": ["identity", "contact", "needs"],
        "purpose": "Referral to Food Pantry 0"})
    assert sent.status_code == 303 and sent.headers["location"].startswith("/referrals/")
    shown = _follow(web, sent)
    words = _text(shown.text)
    assert "Referral sent to Organization 0." in words
    assert "Status: Waiting for partner" in words and "Call after 5pm" in words
    with office.db.session() as session:
        recorded = session.execute(select(consent)).mappings().one()
        made = session.execute(select(referral)).mappings().one()
    assert recorded["shared_with_organization_id"] == office.ids["org0"]
    assert recorded["shares"] == ["contact", "identity", "needs"]
    assert made["status"] == "requested" and made["urgency"] == "soon"
    assert made["need_category_id"] == "1102" and made["client_id"] == person


def test_a_consent_on_file_makes_the_refer_page_one_click(web: TestClient,
                                                         office: Office) -> None:
    person = office.client(office.casey, consent_to="org0", is_part2=True)
    page = f"/referrals/new?client={person}&service_at_location={office.ids['sal0']}"
    shown = web.get(page)
    words = _text(shown.text)
    assert "Rosa Q. Example agreed on" in words and "Record the consent" not in words
    assert "42 CFR Part 2:" in words  # the re-disclosure notice travels with the consent
    assert re.search(r'<option value="1102" selected>', shown.text)  # the service's own need
    sent = form_post(web, page, "/referrals", {
        "client_id": str(person), "service_at_location_id": office.ids["sal0"],
        "need": "1102", "urgency": "urgent"})
    assert "Referral sent to Organization 0." in _text(_follow(web, sent).text)
    assert office.count(consent) == 1


def test_refer_without_a_client_offers_the_caseload_most_recent_first(
        web: TestClient, office: Office) -> None:
    older = office.client(office.casey, name="Ana Older", consent_to="org0")
    newer = office.client(office.casey, name="Ben Newer", born=None)
    office.client(office.sam, name="Somebody Else")  # another agency's: never listed
    page = f"/referrals/new?service_at_location={office.ids['sal0']}"
    shown = web.get(page)
    select_box = shown.text[shown.text.index('<select id="client_id"'):]
    select_box = select_box[:select_box.index("</select>")]
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', select_box)
    assert [name.split(" (")[0] for _, name in options] == ["Ben Newer", "Ana Older"]
    assert "Somebody Else" not in shown.text
    assert '<input type="hidden" name="choose" value="1">' in shown.text
    missing = form_post(web, page, "/referrals", {
        "service_at_location_id": office.ids["sal0"], "need": "1102", "urgency": "soon",
        "choose": "1"})
    assert missing.status_code == 422 and "Choose the client to refer." in missing.text
    no_consent = form_post(web, page, "/referrals", {
        "client_id": str(newer), "service_at_location_id": office.ids["sal0"], "need": "1102",
        "choose": "1"})
    assert no_consent.status_code == 422
    assert f'<option value="{newer}" selected>' in no_consent.text  # the choice is kept
    sent = form_post(web, page, "/referrals", {
        "client_id": str(older), "service_at_location_id": office.ids["sal0"], "need": "1102"})
    assert sent.status_code == 303


def test_a_case_manager_never_sees_another_agencys_client(web: TestClient,
                                                         office: Office) -> None:
    theirs = office.client(office.sam, name="Their Client", consent_to="org0")
    their_referral = office.referral(office.sam, theirs)
    for path in (f"/clients/{theirs}", f"/clients/{theirs}/print",
                 f"/referrals/new?client={theirs}&service_at_location={office.ids['sal0']}",
                 f"/referrals/{their_referral}", f"/search?client={theirs}"):
        response = web.get(path)
        assert response.status_code == 404, path
        assert "We couldn't find that page" in response.text and "Their Client" not in \
            response.text
    token = csrf_from(web, "/clients")
    for path, data in ((f"/clients/{theirs}/consents", {"shares": "identity",
                                                        "shared_with_name": "X",
                                                        "purpose": "y"}),
                       (f"/referrals/{their_referral}/transition",
                        {"to": "cancelled", "expected_version": "2", "reason_code": "other",
                         "reason_text": "x"}),
                       ("/referrals", {"client_id": str(theirs), "need": "1102",
                                       "service_at_location_id": office.ids["sal0"]})):
        assert web.post(path, data={**data, "csrf_token": token}).status_code == 404, path
    assert "Their Client" not in web.get("/clients?who=agency").text
    assert "Their Client" not in web.get("/dashboard?who=agency&show=all").text


def test_partners_and_strangers_are_kept_out(office: Office, settings: Settings) -> None:
    with web_client(settings) as http:
        away = http.get("/dashboard")
        assert away.status_code == 303 and away.headers["location"] == "/login?next=%2Fdashboard"
        assert http.get("/search?client=1").headers["location"].startswith("/login?next=")
        web_sign_in(http, "pat")
        for path in ("/dashboard", "/clients", "/referrals/new?service_at_location=x"):
            response = http.get(path)
            assert response.status_code == 403 and "You don't have access" in response.text


def test_every_form_carries_its_csrf_token(web: TestClient, office: Office) -> None:
    person = office.client(office.casey, consent_to="org0")
    made = office.referral(office.casey, person)
    pages = ["/dashboard", "/clients", f"/clients/{person}", f"/referrals/{made}",
             f"/referrals/new?service_at_location={office.ids['sal1']}",
             f"/referrals/new?client={person}&service_at_location={office.ids['sal1']}"]
    for path in pages:
        html = web.get(path).text
        forms = POST_FORM.findall(html)
        assert forms, path
        for body in forms:
            assert re.search(r'<input type="hidden" name="csrf_token" value="[^"]+">', body), \
                (path, body[:200])
    refused = web.post("/referrals", data={"client_id": str(person), "need": "1102",
                                           "service_at_location_id": office.ids["sal1"]})
    assert refused.status_code == 403 and office.count(referral) == 1


# --- clients and consents ------------------------------------------------------------------


def test_a_possible_duplicate_is_shown_before_the_client_is_added(web: TestClient,
                                                                   office: Office) -> None:
    details = {"name": "Maria  Lopez", "date_of_birth": "1990-01-31",
               "preferred_language": "es", "contact_preference": "text"}
    added = form_post(web, "/clients", "/clients", details)
    shown = _follow(web, added)
    assert "Client added." in shown.text and "Maria Lopez" in shown.text
    again = form_post(web, "/clients", "/clients", {**details, "name": "maria lopez"})
    assert again.status_code == 422
    words = _text(again.text)
    assert "A client with the same name and date of birth is already on file" in words
    assert "Maria Lopez, born Jan 31, 1990" in words and "Add as a different person" in words
    assert office.count(client) == 1
    confirmed = form_post(web, "/clients", "/clients",
                          {**details, "name": "maria lopez", "confirm_duplicate": "1"})
    assert confirmed.status_code == 303 and office.count(client) == 2
    bad = form_post(web, "/clients", "/clients", {"name": " ", "preferred_language": "Spanish!"})
    assert bad.status_code == 422
    assert "Give a name or initials." in bad.text and "short code" in bad.text
    listed = web.get("/clients?q=LOPEZ")
    assert "2 clients matching “LOPEZ”" in _text(listed.text)
    assert "No client's name contains" in web.get("/clients?q=zzz").text


def test_consents_are_recorded_and_revoked_on_the_clients_page(web: TestClient,
                                                               office: Office) -> None:
    person = office.client(office.casey)
    page = f"/clients/{person}"
    shown = web.get(page)
    words = _text(shown.text)
    assert "Rosa Q. Example" in words and "Spanish" in words and "age " in words
    assert f'/search?client={person}"' in shown.text
    missing = form_post(web, page, f"{page}/consents", {"shared_with_name": "Organization 0",
                                                        "purpose": ""})
    assert missing.status_code == 422
    assert "Tick what the client agreed to share." in missing.text
    assert "Say what the consent is for." in missing.text
    added = form_post(web, page, f"{page}/consents", {
        "shared_with_name": "organization  0", "shares": ["identity", "needs"],
        "purpose": "food referral", "is_part2": "1"})
    shown = _follow(web, added)
    words = _text(shown.text)
    assert "Consent recorded: sharing with organization 0." in words
    assert "Active" in words and "42 CFR Part 2" in words and "Federal confidentiality" in words
    # the consent names the organization as listed, so it covers a referral there
    refer = web.get(f"/referrals/new?client={person}&service_at_location={office.ids['sal0']}")
    assert "agreed on" in refer.text
    consent_id = re.search(rf'action="[^"]*/clients/{person}/consents/(\d+)/revoke"',
                           shown.text).group(1)
    revoked = form_post(web, page, f"{page}/consents/{consent_id}/revoke", {})
    shown = _follow(web, revoked)
    assert "Consent revoked" in shown.text and "Revoked" in _text(shown.text)
    again = form_post(web, page, f"{page}/consents/{consent_id}/revoke", {})
    assert "already revoked" in _follow(web, again).text


# --- one referral --------------------------------------------------------------------------


def test_cancel_needs_a_reason_and_a_stale_version_says_so(web: TestClient,
                                                           office: Office) -> None:
    person = office.client(office.casey, consent_to="org0")
    made = office.referral(office.casey, person)
    page = f"/referrals/{made}"
    shown = web.get(page)
    words = _text(shown.text)
    assert "Status: Waiting for partner" in words and "No answer yet." in words
    assert "Cancel the referral" in words and "Mark as entered in error" in words
    assert "Draft (not sent) → Waiting for partner" in words  # the timeline
    version = re.search(r'name="expected_version" value="(\d+)"', shown.text).group(1)
    no_reason = form_post(web, page, f"{page}/transition",
                          {"to": "cancelled", "expected_version": version})
    assert no_reason.status_code == 422
    assert 'id="reason-cancelled-error"' in no_reason.text
    stale = form_post(web, page, f"{page}/transition", {
        "to": "cancelled", "expected_version": str(int(version) - 1),
        "reason_code": "client_declined"})
    shown = _follow(web, stale)
    assert "This referral changed since you opened it" in shown.text
    assert "Waiting for partner" in shown.text
    done = form_post(web, page, f"{page}/transition", {
        "to": "cancelled", "expected_version": version, "reason_code": "other",
        "reason_text": "Moved away"})
    words = _text(_follow(web, done).text)
    assert "Status: Cancelled" in words
    assert "Waiting for partner → Cancelled : Other (Moved away)" in words
    assert "casey (case manager)" in words


def test_the_follow_up_is_recorded_and_closes_the_loop(web: TestClient,
                                                       office: Office) -> None:
    person = office.client(office.casey, consent_to="org0")
    made = office.referral(office.casey, person)
    page = f"/referrals/{made}"
    version = re.search(r'name="expected_version" value="(\d+)"', web.get(page).text).group(1)
    unsaid = form_post(web, page, f"{page}/follow-up", {"expected_version": version})
    assert unsaid.status_code == 422 and "Say whether the client got help." in unsaid.text
    done = form_post(web, page, f"{page}/follow-up", {
        "outcome": "got_help", "reason": "Got groceries", "contact_method": "phone",
        "expected_version": version})
    words = _text(_follow(web, done).text)
    assert "Follow-up recorded: the client got help." in words
    assert "Follow-up outcome The client got help" in words
    assert "Follow-up: The client got help (by Phone)" in words and "Got groceries" in words
    stale = form_post(web, page, f"{page}/follow-up",
                      {"outcome": "unknown", "expected_version": version})
    assert "changed since you opened it" in _follow(web, stale).text


def test_the_dashboard_puts_the_work_queue_first_and_filters_by_status(
        web: TestClient, office: Office) -> None:
    person = office.client(office.casey, consent_to="org0")
    overdue = office.referral(office.casey, person)
    fresh = office.referral(office.casey, person)
    with office.db.session(write=True) as session:
        session.execute(update(referral).where(referral.c.id == overdue).values(
            follow_up_due_at=datetime.now(UTC) - timedelta(days=1)))
    theirs = office.client(office.sam, name="Other Agency Person", consent_to="org0")
    office.referral(office.sam, theirs)
    shown = web.get("/dashboard")
    html = shown.text
    queue = html[html.index('id="queue-heading"'):html.index('id="list-heading"')]
    assert f'/referrals/{overdue}"' in queue and f'/referrals/{fresh}"' not in queue
    assert "Follow-up overdue" in _text(queue) and "overdue" in _text(queue)
    listing = html[html.index('id="list-heading"'):]
    assert f'/referrals/{overdue}"' in listing and f'/referrals/{fresh}"' in listing
    assert "Rosa Q. Example" in listing and "Food Pantry 0" in listing
    assert "Organization 0" in listing and "Other Agency Person" not in html
    assert 'aria-current="page">Open<' in html
    closed = web.get("/dashboard?show=closed").text
    closed = closed[closed.index('id="list-heading"'):]
    assert f'/referrals/{overdue}"' not in closed and "No referrals here yet." in closed


# --- search for a client, printable and text lists, the map ----------------------------------


@pytest.fixture
def search_office(sqlite_db: Database, tmp_path: Path) -> Iterator[tuple[Office, Settings]]:
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite",
                        map_tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png",
                        map_tile_attribution="Tiles: Example")
    yield _office(sqlite_db, tmp_path, search_package()), settings


def test_a_search_for_a_client_starts_from_their_profile_and_offers_refer_buttons(
        search_office: tuple[Office, Settings]) -> None:
    office, settings = search_office
    person = office.client(office.casey, born=date(2000, 1, 1), language="es-MX")
    age = str(datetime.now(UTC).year - 2000 - (1 if (datetime.now(UTC).month, datetime.now(
        UTC).day) < (1, 1) else 0))
    with web_client(settings) as web:
        web_sign_in(web, "casey")
        start = web.get(f"/search?client={person}")
        assert f'id="age" name="age" type="text" inputmode="numeric" pattern="[0-9]*" ' \
               f'size="4"\n               value="{age}"' in start.text
        assert 'value="es"' in start.text and f'name="client" value="{person}"' in start.text
        found = web.get(f"/search?client={person}&q=food+pantry&near=20001&age={age}&language=es")
        assert found.status_code == 200
        links = re.findall(r'<a class="button refer-button" href="([^"]+)">Refer RQE'
                           r'<span class="visually-hidden"> to ([^<]+)</span>', found.text)
        assert [name for _, name in links][:1] == ["Capitol Food Pantry"]
        href = unescape(links[0][0])
        assert f"client={person}" in href and "need=1130" in href and "urgency=soon" in href
        assert "sal-pantry-near" not in href and office.ids["sal-pantry-near"] in href
        refer = web.get(href)
        assert refer.status_code == 200
        assert "Refer RQE to Capitol Food Pantry" in _text(refer.text)
        assert '<option value="1130" selected>' in refer.text
        assert "Back to results" in refer.text
        # the map reads the cards' points; the page allows the tiles' origin only
        assert 'data-lat="38.915"' in found.text and 'data-tiles="https://{s}.tiles' in found.text
        policy = found.headers["content-security-policy"]
        assert "img-src 'self' data: https://*.tiles.example.org;" in policy
        assert "script-src 'self';" in policy
        assert "/static/vendor/leaflet/leaflet.js" in found.text
        # print and text links carry the query, never the client
        tools = re.search(r'href="[^"]*(/search/print\?[^"]+)"', found.text).group(1)
        assert "client=" not in tools and "q=food+pantry" in tools
    with web_client(settings) as anonymous:
        public = anonymous.get("/search?q=food+pantry&near=20001")
        assert "refer-button" not in public.text


def test_the_printable_and_text_lists(search_office: tuple[Office, Settings]) -> None:
    office, settings = search_office
    with web_client(settings) as web:
        printed = web.get("/search/print?q=food+pantry&near=20001")
        assert printed.status_code == 200
        words = _text(printed.text)
        assert words.index("Capitol Food Pantry") < words.index("Anacostia Food Pantry")
        assert "202-555-0100" in words and "Daily 24 hours" in words and "mi" in words
        assert "1 Main St, Washington, DC 20001" in words
        assert '<nav' not in printed.text and "Food pantry near" in words
        text = web.get("/search/text?q=food+pantry&near=20001")
        assert text.headers["content-type"].startswith("text/plain")
        lines = text.text.splitlines()
        assert lines[0].startswith("Food pantry near") and lines[1] == "1. Capitol Food Pantry"
        assert lines[2].strip() == "202-555-0100"
        assert lines[3].strip() == "1 Main St, Washington, DC 20001"
        assert len(text.text) < 600
        web_sign_in(web, "casey")
        person = office.client(office.casey, consent_to="org-pantry-near")
        office.referral(office.casey, person, site="sal-pantry-near")
        mine = web.get(f"/clients/{person}/print")
        assert "Capitol Food Pantry" in mine.text and "Rosa" not in mine.text
        assert web.get(f"/clients/{person}/text").text.splitlines()[1] == \
            "1. Capitol Food Pantry"
