"""Accessibility smoke check: axe-core (vendored, injected through the DevTools protocol so the
page's own CSP stays strict) finds no serious or critical violation on the main pages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_closed_loop import loop_site, open_tab, partner_tab  # noqa: F401
from tests.browser.test_referral_flow import staff_page, staff_site  # noqa: F401 - fixtures

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def violations(page: Any) -> list[str]:
    page.evaluate(AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.nodes.length} nodes: `
                        + v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ") + ")");
    }""")
    return found


@pytest.mark.parametrize("width", [390, 1280])
def test_search_and_detail_pages_have_no_serious_violations(page: Any, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    page.goto("/search")
    assert violations(page) == []
    page.goto("/search?q=food+pantry&near=20001")
    assert violations(page) == []
    page.get_by_role("link", name="Capitol Food Pantry").click()
    page.wait_for_load_state()
    assert violations(page) == []


@pytest.mark.parametrize("width", [390, 1280])
def test_case_manager_pages_have_no_serious_violations(staff_page: Any,  # noqa: F811
                                                       staff_site: dict[str, Any],  # noqa: F811
                                                       width: int) -> None:
    site = staff_site
    staff_page.set_viewport_size({"width": width, "height": 900})
    for path in ("/dashboard", "/clients", f"/clients/{site['ana']}",
                 f"/referrals/{site['referral']}",
                 f"/referrals/new?client={site['rosa']}"
                 f"&service_at_location={site['service_at_location']}&need=1130",
                 f"/referrals/new?service_at_location={site['service_at_location']}",
                 f"/search?client={site['rosa']}&q=food+pantry&near=20001",
                 "/search/print?q=food+pantry&near=20001"):
        staff_page.goto(path)
        assert violations(staff_page) == [], path


@pytest.mark.parametrize("width", [390, 1280])
def test_partner_pages_have_no_serious_violations(partner_tab: Any,  # noqa: F811
                                                  loop_site: dict[str, Any],  # noqa: F811
                                                  width: int) -> None:
    partner_tab.set_viewport_size({"width": width, "height": 900})
    for path in ("/partner", f"/partner/referrals/{loop_site['referral']}",
                 "/partner?tab=closed", "/partner/listings",
                 f"/partner/listings/{loop_site['service']}"):
        partner_tab.goto(path)
        assert violations(partner_tab) == [], path
    for summary in partner_tab.locator("details > summary").all():  # the folded forms too
        summary.click()
    assert violations(partner_tab) == [], "listing page with every section open"
    partner_tab.goto(f"/partner/referrals/{loop_site['referral']}")
    for summary in partner_tab.locator("details > summary").all():
        summary.click()
    assert violations(partner_tab) == [], "referral page with every answer open"


@pytest.mark.parametrize("width", [390, 1280])
def test_admin_pages_have_no_serious_violations(browser: Any, loop_site: dict[str, Any],  # noqa: F811
                                                problems: list[str], width: int) -> None:
    context, tab = open_tab(browser, loop_site, problems, "adam", width=width)
    try:
        for path in ("/admin", "/admin/edits", "/admin/edits?status=applied", "/admin/stale",
                     "/admin/imports", "/admin/imports/1", "/admin/users", "/admin/users/1",
                     "/admin/reports"):
            tab.goto(path)
            assert violations(tab) == [], path
    finally:
        context.close()
    assert problems == [], problems
