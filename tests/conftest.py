"""Fixtures: a real, migrated database per test (SQLite always; PostgreSQL when
SIGNPOST_TEST_DATABASE_URL is set), an app, and an HTTP client.

Migrating is done once into a template (a file for SQLite, a template database for
PostgreSQL) that each test copies, so isolation costs milliseconds.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from service.config import Settings
from service.db import Database

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
DATASETS = SHARED / "datasets"
HSDS = SHARED / "hsds"
PG_URL = os.environ.get("SIGNPOST_TEST_DATABASE_URL")
IN_CI = os.environ.get("CI", "").lower() == "true"
_counter = itertools.count()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not SHARED.exists():
        if IN_CI:
            raise pytest.UsageError("../shared is missing; CI must have it beside the project")
        skip = pytest.mark.skip(reason="../shared (datasets) is not beside the project")
        for item in items:
            if "shared" in item.keywords:
                item.add_marker(skip)


# --- database templates -------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    return path


@pytest.fixture(scope="session")
def pg_admin_url() -> str | None:
    if not PG_URL:
        if IN_CI:
            pytest.fail("SIGNPOST_TEST_DATABASE_URL is not set: CI must test PostgreSQL")
        return None
    url = make_url(PG_URL)
    admin = url.set(database="postgres")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
        return None
    finally:
        engine.dispose()
    return admin.render_as_string(hide_password=False)


def _pg_exec(admin_url: str, *statements: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for sql in statements:
                conn.execute(text(sql))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_admin_url: str | None) -> Iterator[str | None]:
    if pg_admin_url is None:
        yield None
        return
    base = make_url(PG_URL).database
    name = f"{base}_tpl_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"  # one per worker
    _pg_exec(pg_admin_url, f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    db = Database(url)
    db.migrate()
    db.dispose()
    yield name
    _pg_exec(pg_admin_url, f"DROP DATABASE IF EXISTS {name}")


def _backends() -> list:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test: SQLite, and PostgreSQL when configured."""
    if request.param == "sqlite":
        path = tmp_path / "signpost.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    template = request.getfixturevalue("pg_template")
    admin = request.getfixturevalue("pg_admin_url")
    if template is None:
        pytest.skip("PostgreSQL not configured (set SIGNPOST_TEST_DATABASE_URL)")
    name = f"{make_url(PG_URL).database}_t{os.getpid()}_{next(_counter)}"
    _pg_exec(admin, f"CREATE DATABASE {name} TEMPLATE {template}")
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    _pg_exec(admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path, sqlite_template: Path) -> Iterator[Database]:
    """SQLite only, for tests of embedded-backend behaviour."""
    path = tmp_path / "signpost.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, environment="test", demo_notice=False,
                    geocode_cache_path=Path(os.devnull))


@pytest.fixture
def client(settings: Settings) -> Iterator:
    from fastapi.testclient import TestClient

    from service.app import create_app

    with TestClient(create_app(settings)) as test_client:
        yield test_client
