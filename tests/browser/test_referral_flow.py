"""A case manager finds a service for a client who already exists and refers them, in a real
headless Chromium against the real app: at most 8 clicks or submits from their home page to the
sent referral (every one saved matters to someone with 80 clients). Then the referral page
closes the loop with a follow-up, and the search page's map draws the results without tiles.

`staff_site` (a live app whose directory is the search tests' one, plus an agency, a case
manager, a partner and two clients) and `staff_page` (a signed-in tab on it) are shared with
`test_accessibility.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from service.accounts.service import Principal
from service.clients import service as clients
from service.clients.schemas import ClientCreate, ConsentCreate
from service.db import Database
from service.directory.tables import organization, service_at_location
from service.referrals import service as referrals
from service.referrals.schemas import ReferralCreate
from tests.browser import live
from tests.service.accounts.helpers import PASSWORD, create_user

pytestmark = pytest.mark.browser

BUDGET = 8  # clicks or submits from the case manager's home to a sent referral


def seed_staff(database_url: str) -> dict[str, Any]:
    """An agency with a case manager (casey) and two clients, and a partner (pat) of the
    Capitol Food Pantry: Rosa has no consent on file yet; Ana has one and a sent referral."""
    db = Database(database_url)
    try:
        with db.session() as session:
            org = session.execute(select(organization.c.id).where(
                organization.c.record_source_id == "org-pantry-near")).scalar_one()
            site = session.execute(select(service_at_location.c.id).where(
                service_at_location.c.record_source_id == "sal-pantry-near")).scalar_one()
        casey = create_user(db, username="casey", role="case_manager", agency="North Agency")
        create_user(db, username="pat", role="partner", organizations=(org,))
        actor = Principal(user_id=casey["id"], role="case_manager", username="casey",
                          agency_id=casey["agency_id"])
        with db.session(write=True) as session:
            rosa, _ = clients.create_client(session, actor=actor, data=ClientCreate(
                name="Rosa Q. Example", date_of_birth=date(1984, 6, 2), preferred_language="es",
                contact_preference="text", no_voicemail=True))
            ana, _ = clients.create_client(session, actor=actor, data=ClientCreate(
                name="Ana Example", date_of_birth=date(1990, 3, 4)))
            clients.add_consent(session, actor=actor, client_id=ana["id"], data=ConsentCreate(
                shares=["identity", "contact", "needs", "referral_status"],
                shared_with_organization_id=org, purpose="food referral"))
            sent = referrals.create_referral(session, actor=actor, data=ReferralCreate(
                client_id=ana["id"], service_at_location_id=site, need="1130",
                urgency="soon", send=True))
    finally:
        db.dispose()
    return {"rosa": rosa["id"], "ana": ana["id"], "referral": sent["id"],
            "service_at_location": site}


@pytest.fixture(scope="session")
def staff_site(chromium_ready: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live app with the search directory and an agency's people (see `seed_staff`)."""
    folder = tmp_path_factory.mktemp("staff")
    url = live.build_directory(folder)
    people = seed_staff(url)
    with live.serve(url, folder) as base:
        yield {"url": base, **people}


def sign_in(tab: Any, username: str) -> None:
    live.sign_in(tab, username, PASSWORD)


@pytest.fixture
def staff_page(browser: Any, staff_site: dict[str, Any],
               problems: list[str]) -> Iterator[Any]:
    """A desktop-sized tab signed in as the case manager; fails the test on any script error,
    dialog or console error (a CSP refusal is one)."""
    context = browser.new_context(base_url=staff_site["url"],
                                  viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    live.watch(tab, problems)
    sign_in(tab, "casey")
    yield tab
    context.close()
    assert problems == [], problems


class Interactions:
    """Counts what the case manager does with the mouse: each click or submit is one."""

    def __init__(self, tab: Any) -> None:
        self.tab = tab
        self.done: list[str] = []

    def click(self, locator: Any, what: str, *, navigates: bool = True) -> None:
        self.done.append(what)
        if navigates:
            with self.tab.expect_navigation():
                locator.click()
        else:
            locator.click()


def test_a_case_manager_refers_an_existing_client_within_the_click_budget(
        staff_page: Any, staff_site: dict[str, Any]) -> None:
    tab = staff_page
    assert tab.url.endswith("/dashboard")  # the case manager's home after signing in
    steps = Interactions(tab)
    steps.click(tab.get_by_role("navigation", name="Main").get_by_role("link", name="Clients"),
                "open the client list")
    steps.click(tab.get_by_role("link", name="Find services for Rosa Q. Example"),
                "find services for the client")
    today = date.today()
    age = today.year - 1984 - ((today.month, today.day) < (6, 2))
    assert tab.locator("#age").input_value() == str(age)  # the client's profile, pre-filled
    assert tab.locator("#language").input_value() == "es"
    tab.get_by_label("What does the client need?").fill("food pantry")  # typing, not clicks
    tab.get_by_label("Near (ZIP, city or address)").fill("20001")
    steps.click(tab.get_by_role("button", name="Search"), "search")
    steps.click(tab.get_by_role("link", name="Refer RQE to Capitol Food Pantry"),
                "refer from the result card")
    assert tab.get_by_role("heading", level=1).inner_text() == \
        "Refer RQE to Capitol Food Pantry"
    assert tab.get_by_label("What the client needs").input_value() == "1130"  # pre-chosen
    assert tab.get_by_label("Soon (follow up in 7 days)").is_checked()
    steps.click(tab.get_by_label("The client agreed to share this with Capitol Food Pantry Inc"),
                "record the client's consent", navigates=False)
    steps.click(tab.get_by_role("button", name="Send referral"), "send")

    assert len(steps.done) <= BUDGET, steps.done
    assert tab.get_by_role("status").first.inner_text() == \
        "Referral sent to Capitol Food Pantry Inc."
    assert tab.get_by_role("heading", level=1).inner_text() == \
        "Referral to Capitol Food Pantry"
    assert "Waiting for partner" in tab.locator(".status-line").inner_text()
    print(f"interactions from home to a sent referral: {len(steps.done)} ({steps.done})")


def test_the_follow_up_closes_the_loop(staff_page: Any, staff_site: dict[str, Any]) -> None:
    tab = staff_page
    tab.goto(f"/referrals/{staff_site['referral']}")
    tab.get_by_label("Yes, the client got help").check()
    tab.get_by_label("How you reached the client").select_option("phone")
    with tab.expect_navigation():
        tab.get_by_role("button", name="Record follow-up").click()
    assert tab.get_by_role("status").first.inner_text() == \
        "Follow-up recorded: the client got help."
    assert "Follow-up: The client got help (by Phone)" in tab.locator(".timeline").inner_text()


def test_the_map_draws_the_results_without_tiles(staff_page: Any) -> None:
    tab = staff_page
    tab.goto("/search?q=food+pantry&near=20001")
    tab.wait_for_function("document.querySelectorAll('#map .leaflet-interactive').length >= 3")
    assert tab.locator("#map").is_visible()
    assert tab.locator("#map img").count() == 0  # no tile was fetched
    assert tab.locator("#map-note").is_visible()
    tab.locator("#map .leaflet-interactive").first.click()
    assert tab.evaluate("document.activeElement.classList.contains('result-link')")


def test_the_search_page_works_without_javascript(browser: Any,
                                                  staff_site: dict[str, Any]) -> None:
    context = browser.new_context(base_url=staff_site["url"], java_script_enabled=False)
    tab = context.new_page()
    try:
        tab.goto("/search?q=food+pantry&near=20001")
        assert tab.locator("ol.cards > li").count() >= 3
        assert not tab.locator("#map").is_visible()  # the list is the page; the map an extra
        tab.get_by_role("link", name="Print list").click()
        assert tab.get_by_role("heading", level=1).inner_text().startswith("Food pantry near")
        assert tab.locator(".resource-list > li").count() >= 3
    finally:
        context.close()

