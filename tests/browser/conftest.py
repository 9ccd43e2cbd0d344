"""Browser fixtures: one live app and one headless Chromium per session.

Without Chromium (or playwright) the browser tests skip with the reason on a developer machine;
under CI (CI=true) they fail instead, since `.ci/run` installs Chromium.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import live

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def chromium_ready() -> None:
    reason = live.missing()
    if reason:
        if IN_CI:
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def live_url(chromium_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a real app on a free port, serving the search test directory."""
    folder = tmp_path_factory.mktemp("live")
    with live.serve(live.build_directory(folder), folder) as url:
        yield url


@pytest.fixture(scope="session")
def browser(chromium_ready: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = live.launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def problems() -> list[str]:
    """What went wrong in the tab: script errors, dialogs, console errors (a test that expects
    one, e.g. a 400 page, removes it)."""
    return []


@pytest.fixture
def page(browser: Any, live_url: str, problems: list[str]) -> Iterator[Any]:
    """A fresh desktop-sized tab; fails the test on any script error, dialog or console error."""
    context = browser.new_context(base_url=live_url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    live.watch(tab, problems)
    yield tab
    context.close()
    assert problems == [], problems
