"""The embedded engine's test directory (`tests.factories.search_package`) and an app on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from tests.factories import search_package


@pytest.fixture
def directory(sqlite_db: Database, tmp_path: Path) -> Database:
    load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    return sqlite_db


@pytest.fixture
def api(directory: Database, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=str(directory.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with TestClient(create_app(settings)) as client:
        yield client
