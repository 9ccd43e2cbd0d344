"""`make screenshots`: PNGs of the main pages at phone and desktop widths (the search and detail
pages, and the case manager's, partner's and admin's pages signed in).

Starts the real app on a free port with the browser tests' directory (tests/factories), drives
Debian's headless Chromium, and writes screenshots/{page}-{width}.png.

    python -m tests.browser.screenshots [--out screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.browser import live

WIDTHS = {"phone": 390, "desktop": 1280}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args(argv)
    reason = live.missing()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    from tests.browser.test_closed_loop import seed_loop
    from tests.browser.test_referral_flow import seed_staff

    with tempfile.TemporaryDirectory() as tmp:
        database = live.build_directory(Path(tmp))
        people = seed_staff(database)  # an agency's case manager and clients: signed-in pages
        loop = seed_loop(database)  # a partner with a referral waiting, and an admin
        with live.serve(database, Path(tmp)) as url, sync_playwright() as playwright:
            browser = live.launch(playwright)
            for label, width in WIDTHS.items():
                context = browser.new_context(base_url=url,
                                              viewport={"width": width, "height": 900},
                                              device_scale_factor=2 if label == "phone" else 1)
                page = context.new_page()
                page.goto("/search?q=food+pantry&near=20001")
                path = args.out / f"search-{label}.png"
                page.screenshot(path=str(path), full_page=True)
                print(path)
                page.get_by_role("link", name="Capitol Food Pantry").click()
                page.wait_for_load_state()
                path = args.out / f"service-{label}.png"
                page.screenshot(path=str(path), full_page=True)
                print(path)
                _case_manager_pages(page, people, args.out, label)
                context.close()
                _partner_and_admin_pages(browser, url, loop, args.out, label, width)
            browser.close()
    return 0


def _case_manager_pages(page: Any, people: dict[str, Any], out: Path, label: str) -> None:
    """The case manager's pages, signed in: dashboard, clients, a client, the refer page, a
    referral, the search for a client, and the printable list."""
    from tests.browser.test_referral_flow import sign_in

    sign_in(page, "casey")
    site = people["service_at_location"]
    for name, path in (
            ("dashboard", "/dashboard"), ("clients", "/clients"),
            ("client", f"/clients/{people['ana']}"),
            ("refer", f"/referrals/new?client={people['rosa']}&service_at_location={site}"
                      "&need=1130"),
            ("referral", f"/referrals/{people['referral']}"),
            ("search-for-client", f"/search?client={people['rosa']}&q=food+pantry&near=20001"),
            ("print-list", "/search/print?q=food+pantry&near=20001")):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        target = out / f"{name}-{label}.png"
        page.screenshot(path=str(target), full_page=True)
        print(target)



def _partner_and_admin_pages(browser: Any, url: str, loop: dict[str, Any], out: Path,
                             label: str, width: int) -> None:
    """The partner's inbox, a referral, their listings and a listing's edit page; the admin's
    overview, partner edits, imports, users and the outcome report: each signed in, in its own
    browser context."""
    from tests.browser.test_closed_loop import sign_in

    for username, pages in (
            ("penny", (("partner-inbox", "/partner"),
                       ("partner-referral", f"/partner/referrals/{loop['referral']}"),
                       ("partner-listings", "/partner/listings"),
                       ("partner-listing-edit", f"/partner/listings/{loop['service']}"))),
            ("adam", (("admin", "/admin"), ("admin-edits", "/admin/edits"),
                      ("admin-imports", "/admin/imports"), ("admin-import", "/admin/imports/1"),
                      ("admin-users", "/admin/users"), ("admin-report", "/admin/reports")))):
        context = browser.new_context(base_url=url, viewport={"width": width, "height": 900},
                                      device_scale_factor=2 if label == "phone" else 1)
        page = context.new_page()
        sign_in(page, username)
        for name, path in pages:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            target = out / f"{name}-{label}.png"
            page.screenshot(path=str(target), full_page=True)
            print(target)
        context.close()

if __name__ == "__main__":
    sys.exit(main())
