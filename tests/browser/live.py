"""A real Signpost on a real port, and a real headless Chromium: shared by the browser tests and
`make screenshots` (`python -m tests.browser.screenshots`).

Chromium comes from Debian (`apt-get install chromium`), never from Playwright's own download.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path(os.environ.get("SIGNPOST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
HOSTILE_NAME = "<script>alert(1)</script>"


def missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    return None


def build_directory(folder: Path) -> str:
    """A migrated SQLite database holding `tests.factories.search_package()` plus one hostile
    listing (markup in its name, organization and description); its URL."""
    from indexer.pipeline import load
    from service.db import Database
    from tests.factories import search_package

    package = search_package()
    package.add("organization", id="org-hostile", name='"><img src=x onerror=alert(2)>',
                description="Provider")
    package.add("service", id="hostile", organization_id="org-hostile", name=HOSTILE_NAME,
                description="Warm winter coats <b onmouseover=alert(3)>free</b>",
                status="active", x_categories="", x_is_referable="true")
    package.add("location", id="loc-hostile", organization_id="org-hostile", name=HOSTILE_NAME,
                location_type="physical", latitude=38.930, longitude=-77.040)
    package.add("service_at_location", id="sal-hostile", service_id="hostile",
                location_id="loc-hostile")
    package.add("phone", id="ph-hostile", service_id="hostile", number="202-555-0199",
                type="voice")
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'signpost.db'}"
    db = Database(url)
    try:
        db.migrate()
        load(db, package.write(folder / "pkg"), source="city")
    finally:
        db.dispose()
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(database_url: str, folder: Path) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1, in a background thread; yields its base URL."""
    import uvicorn

    from service.app import create_app
    from service.config import Settings

    settings = Settings(database_url=database_url, environment="test", demo_notice=False,
                        geocode_cache_path=folder / "geocode.sqlite")
    port = free_port()
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="signpost-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start under uvicorn")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def launch(playwright: Any) -> Any:
    """Debian's Chromium, headless."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                      args=CHROMIUM_ARGS)


def watch(tab: Any, problems: list[str], who: str = "") -> None:
    """Note every script error, dialog and console error (a CSP refusal is one) of `tab` in
    `problems`, which the test then asserts empty."""
    prefix = f"{who}: " if who else ""
    tab.on("pageerror", lambda exc: problems.append(f"{prefix}script error: {exc}"))
    tab.on("dialog", lambda dialog: (problems.append(f"{prefix}dialog: {dialog.message}"),
                                     dialog.dismiss()))
    tab.on("console", lambda msg: problems.append(f"{prefix}console {msg.type}: {msg.text}")
           if msg.type == "error" else None)


def sign_in(tab: Any, username: str, password: str) -> None:
    """Sign in through the page, as a person would."""
    tab.goto("/login")
    tab.get_by_label("Username").fill(username)
    tab.get_by_label("Password").fill(password)
    with tab.expect_navigation():
        tab.get_by_role("button", name="Sign in").click()
