"""Fixtures: a real SMTP server on 127.0.0.1, and settings whose links point at BASE_URL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import Settings
from tests.service.notifications.smtp import BASE_URL, Inbox, SmtpServer, free_port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A stopped server on a free port (start it in the test)."""
    server = SmtpServer(Inbox(port=free_port()))
    yield server
    server.stop()


@pytest.fixture
def inbox(smtp_server: SmtpServer) -> Inbox:
    """A running server's inbox."""
    smtp_server.start()
    return smtp_server.inbox


@pytest.fixture
def settings(database_url: str) -> Settings:
    """The shared settings, with links in messages pointing at BASE_URL."""
    return Settings(database_url=database_url, environment="test", demo_notice=False,
                    geocode_cache_path=Path(os.devnull), public_base_url=BASE_URL)
