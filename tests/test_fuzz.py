"""API fuzzing with schemathesis against the app's own OpenAPI document (a small, bounded run
inside `make test`; `make fuzz` runs many more examples).

Every operation is called with generated input, anonymously: no response may be a 500. (Runs
authenticated as each role are the next step; see the hardening issue.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from tests.factories import search_package

EXAMPLES = int(os.environ.get("SIGNPOST_FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    folder = tmp_path_factory.mktemp("fuzz")
    db = Database(f"sqlite:///{folder / 'fuzz.db'}")
    db.migrate()
    load(db, search_package().write(folder / "pkg"), source="city")
    db.dispose()
    settings_ = Settings(database_url=f"sqlite:///{folder / 'fuzz.db'}", environment="test",
                         demo_notice=False, geocode_cache_path=Path(folder / "geo.sqlite"),
                         hsds_rate_limit_per_minute=0)
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: database, search engine, geocoder
        yield app


@pytest.fixture(scope="module")
def api_schema(fuzz_app):  # noqa: ANN001, ANN201
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def _operations() -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document (read without starting the app)."""
    document = create_app(Settings(environment="test")).openapi()
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in {"get", "post", "put", "patch", "delete"}]


@pytest.mark.parametrize(("method", "path"), _operations())
def test_no_operation_answers_500(api_schema, method: str, path: str) -> None:  # noqa: ANN001
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # noqa: ANN001
        response = case.call()
        assert response.status_code < 500, (method, path, response.text[:300])

    run()
