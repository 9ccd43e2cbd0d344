"""`make screenshots`: PNGs of the search and detail pages at phone and desktop widths.

Starts the real app on a free port with the browser tests' directory (tests/factories), drives
Debian's headless Chromium, and writes screenshots/{page}-{width}.png.

    python -m tests.browser.screenshots [--out screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

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
    with tempfile.TemporaryDirectory() as tmp, \
            live.serve(live.build_directory(Path(tmp)), Path(tmp)) as url, \
            sync_playwright() as playwright:
        browser = live.launch(playwright)
        for label, width in WIDTHS.items():
            context = browser.new_context(base_url=url, viewport={"width": width, "height": 900},
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
            context.close()
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
