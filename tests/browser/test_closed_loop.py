"""The closed loop in a real headless Chromium, two people in two browser contexts: a case
manager adds a client, finds a pantry and refers (recording the client's consent); the
pantry's partner accepts, starts and completes from the inbox; the case manager records the
follow-up and sees the loop closed. And a partner edits the pantry's hours, which the search
page shows at once.

`loop_site` (a live app whose directory is the search tests' one, with a case manager, the
pantry's partner, an admin, and one referral already waiting in the inbox) and `partner_tab` (a
tab signed in as the partner) are shared with `test_accessibility.py`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from service.accounts.service import Principal
from service.clients import service as clients
from service.clients.schemas import ClientCreate, ConsentCreate
from service.db import Database
from service.directory.tables import organization, service, service_at_location
from service.referrals import service as referrals
from service.referrals.schemas import ReferralCreate
from tests.browser import live
from tests.service.accounts.helpers import PASSWORD, create_user

pytestmark = pytest.mark.browser


def seed_loop(database_url: str) -> dict[str, Any]:
    """An agency's case manager (cora), the Capitol Food Pantry's partner (penny), an admin
    (adam), and a client (Ana) whose referral to the pantry waits in the partner's inbox."""
    db = Database(database_url)
    try:
        with db.session() as session:
            org = session.execute(select(organization.c.id).where(
                organization.c.record_source_id == "org-pantry-near")).scalar_one()
            svc = session.execute(select(service.c.id).where(
                service.c.record_source_id == "pantry-near")).scalar_one()
            site = session.execute(select(service_at_location.c.id).where(
                service_at_location.c.record_source_id == "sal-pantry-near")).scalar_one()
        cora = create_user(db, username="cora", role="case_manager", agency="Eastside Services")
        create_user(db, username="penny", role="partner", organizations=(org,))
        create_user(db, username="adam", role="admin")
        actor = Principal(user_id=cora["id"], role="case_manager", username="cora",
                          agency_id=cora["agency_id"])
        with db.session(write=True) as session:
            ana, _ = clients.create_client(session, actor=actor, data=ClientCreate(
                name="Ana Example", date_of_birth=date(1990, 3, 4)))
            clients.add_consent(session, actor=actor, client_id=ana["id"], data=ConsentCreate(
                shares=["identity", "contact", "needs", "referral_status"],
                shared_with_organization_id=org, purpose="food referral"))
            waiting = referrals.create_referral(session, actor=actor, data=ReferralCreate(
                client_id=ana["id"], service_at_location_id=site, need="1130",
                urgency="urgent", send=True))
    finally:
        db.dispose()
    return {"service": svc, "referral": waiting["id"]}


@pytest.fixture(scope="session")
def loop_site(chromium_ready: None,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A live app with the search directory, the pantry's partner and an agency (`seed_loop`)."""
    folder = tmp_path_factory.mktemp("loop")
    url = live.build_directory(folder)
    seeded = seed_loop(url)
    with live.serve(url, folder) as base:
        yield {"url": base, **seeded}


def sign_in(tab: Any, username: str) -> None:
    live.sign_in(tab, username, PASSWORD)


def open_tab(browser: Any, site: dict[str, Any], problems: list[str], username: str | None,
             width: int = 1280) -> tuple[Any, Any]:
    """A new browser context (its own cookies: another person) and a tab in it, signed in as
    `username`; script errors, dialogs and console errors (a CSP refusal is one) are noted."""
    context = browser.new_context(base_url=site["url"], viewport={"width": width, "height": 900})
    tab = context.new_page()
    live.watch(tab, problems, who=username or "")
    if username:
        sign_in(tab, username)
    return context, tab


@pytest.fixture
def partner_tab(browser: Any, loop_site: dict[str, Any], problems: list[str]) -> Iterator[Any]:
    """A desktop-sized tab signed in as the pantry's partner."""
    context, tab = open_tab(browser, loop_site, problems, "penny")
    yield tab
    context.close()
    assert problems == [], problems


def click(tab: Any, locator: Any) -> None:
    with tab.expect_navigation():
        locator.click()


def status_text(tab: Any) -> str:
    return tab.get_by_role("status").first.inner_text()


def test_the_whole_loop_in_two_browsers(browser: Any, loop_site: dict[str, Any],
                                        problems: list[str]) -> None:
    staff_context, staff = open_tab(browser, loop_site, problems, "cora")
    partner_context, partner = open_tab(browser, loop_site, problems, "penny")
    try:
        # The case manager adds a client and finds a pantry near them.
        assert staff.url.endswith("/dashboard")
        click(staff, staff.get_by_role("navigation", name="Main").get_by_role(
            "link", name="Clients"))
        staff.get_by_text("New client").click()
        staff.get_by_label("Name or initials").fill("Rosa Q. Example")
        staff.get_by_label("Date of birth (optional)").fill("1984-06-02")
        staff.get_by_label("How to contact them").select_option("text")
        click(staff, staff.get_by_role("button", name="Add client"))
        assert status_text(staff) == "Client added."
        click(staff, staff.get_by_role("link", name="Find services for this client"))
        staff.get_by_label("What does the client need?").fill("food pantry")
        staff.get_by_label("Near (ZIP, city or address)").fill("20001")
        click(staff, staff.get_by_role("button", name="Search"))
        click(staff, staff.get_by_role("link", name="Refer RQE to Capitol Food Pantry"))
        staff.get_by_label("The client agreed to share this with Capitol Food Pantry Inc").check()
        click(staff, staff.get_by_role("button", name="Send referral"))
        assert status_text(staff) == "Referral sent to Capitol Food Pantry Inc."
        referral_id = int(re.search(r"/referrals/(\d+)", staff.url).group(1))
        assert "Waiting for partner" in staff.locator(".status-line").inner_text()

        # The partner, in another browser, sees the minimum and accepts from the inbox.
        partner.goto("/partner")
        card = partner.locator(f"#referral-{referral_id}")
        assert "Rosa (first name only until you accept)" in card.inner_text()
        assert "Example" not in card.inner_text() and "1984" not in card.inner_text()
        click(partner, card.get_by_role("button", name=f"Accept referral {referral_id}"))
        assert status_text(partner) == f"Referral {referral_id} accepted."
        assert partner.locator(f"#referral-{referral_id}").count() == 0  # no longer new

        # The referral's page now shows what the consent shares; start, then complete.
        click(partner, partner.get_by_role("link", name="Accepted"))
        click(partner, partner.get_by_role("link", name=re.compile(
            f"^Referral {referral_id}:")))
        assert partner.locator(".client-name").inner_text() == "Rosa Q. Example"
        click(partner, partner.get_by_role("button", name=f"Start referral {referral_id}"))
        assert status_text(partner) == f"Referral {referral_id} is in progress."
        click(partner, partner.get_by_role("button", name=f"Complete referral {referral_id}"))
        assert status_text(partner) == f"Referral {referral_id} completed."
        timeline = partner.locator(".timeline").inner_text()
        assert "New → Accepted" in timeline and "In progress → Completed" in timeline

        # The case manager sees the partner's answer, records the follow-up: the loop closes.
        staff.reload()
        assert "Completed" in staff.locator(".status-line").inner_text()
        staff.get_by_label("Yes, the client got help").check()
        staff.get_by_label("How you reached the client").select_option("text")
        click(staff, staff.get_by_role("button", name="Record follow-up"))
        assert status_text(staff) == "Follow-up recorded: the client got help."
        assert "The client got help" in staff.locator("dl.facts").inner_text()
        click(staff, staff.get_by_role("navigation", name="Main").get_by_role(
            "link", name="Referrals"))
        click(staff, staff.get_by_role("navigation", name="Referral status").get_by_role(
            "link", name="Closed"))
        closed = staff.locator("tr", has=staff.locator(f'a[href$="/referrals/{referral_id}"]'))
        assert "Completed" in closed.inner_text() and "The client got help" in closed.inner_text()

        # The partner's closed tab has it too.
        partner.goto("/partner?tab=closed")
        assert partner.locator(f"#referral-{referral_id}").is_visible()
    finally:
        staff_context.close()
        partner_context.close()
    assert problems == [], problems


def test_a_partners_hours_edit_shows_on_the_search_page(browser: Any,
                                                        loop_site: dict[str, Any],
                                                        problems: list[str]) -> None:
    visitor_context, visitor = open_tab(browser, loop_site, problems, None)
    partner_context, partner = open_tab(browser, loop_site, problems, "penny")
    try:
        visitor.goto("/search?q=food+pantry&near=20001")
        card = visitor.locator("ol.cards > li", has_text="Capitol Food Pantry")
        assert card.locator(".hours").inner_text() == "Daily 24 hours"

        click(partner, partner.get_by_role("link", name="My listings", exact=True))
        click(partner, partner.get_by_role("link", name="Edit Capitol Food Pantry"))
        hours = partner.locator("form.hours-form").first
        days = [hours.get_by_label(f"Row {i} day").input_value() for i in range(1, 8)]
        assert days == ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
        hours.get_by_label("Row 6 opens").fill("10:00")  # Saturday: mornings only
        hours.get_by_label("Row 6 closes").fill("14:00")
        hours.get_by_label("Row 7 day").select_option("")  # Sunday: closed
        hours.get_by_label("Row 7 opens").fill("")
        hours.get_by_label("Row 7 closes").fill("")
        hours.get_by_label("Row 8 day").select_option("SU")  # ...but a night shift on Sunday
        hours.get_by_label("Row 8 opens").fill("22:00")
        hours.get_by_label("Row 8 closes").fill("06:00")
        click(partner, hours.get_by_role("button", name="Save hours"))
        assert status_text(partner) == "Hours saved. Searches show the change now."

        visitor.reload()
        shown = visitor.locator("ol.cards > li", has_text="Capitol Food Pantry") \
            .locator(".hours").inner_text()
        assert shown != "Daily 24 hours" and "Sat" in shown and "Sun" in shown, shown
    finally:
        visitor_context.close()
        partner_context.close()
    assert problems == [], problems


def test_a_partner_declines_with_a_reason_using_the_keyboard(partner_tab: Any,
                                                             loop_site: dict[str, Any]) -> None:
    tab = partner_tab
    referral_id = loop_site["referral"]
    tab.goto(f"/partner/referrals/{referral_id}")
    summary = tab.locator("summary", has_text="Decline")
    summary.focus()
    tab.keyboard.press("Enter")  # opens the small form
    form = tab.locator("details.answer[open] form")
    form.get_by_label("Reason").select_option("no_capacity")
    form.get_by_label("In a few words").fill("Full until March")
    form.get_by_label("In a few words").focus()
    tab.keyboard.press("Tab")
    with tab.expect_navigation():
        tab.keyboard.press("Enter")
    assert status_text(tab) == f"Referral {referral_id} declined."
    assert "Reason: No capacity: Full until March" in tab.locator(".timeline").inner_text()
