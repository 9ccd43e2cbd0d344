"""API fuzzing with schemathesis against the app's own OpenAPI document (a small, bounded run
inside `make test`; `make fuzz` runs many more examples).

Every operation is called with generated input as each kind of caller (anonymous, admin,
supervisor, case manager, partner). No response may be a 500, and every response must match
the document: a documented status code, the documented content type, and a body that validates
against the documented schema (errors included: see service/openapi.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import insert, select, update

from indexer.pipeline import load
from service.accounts import security
from service.accounts import service as accounts
from service.accounts.tables import api_token, app_user
from service.app import create_app
from service.audit.service import CLI
from service.config import Settings
from service.db import Database
from service.directory.tables import organization
from tests.factories import search_package

EXAMPLES = int(os.environ.get("SIGNPOST_FUZZ_EXAMPLES", "8"))
# `make fuzz` sets this: each test process appends how many generated calls it made.
REPORT = os.environ.get("SIGNPOST_FUZZ_REPORT")
CALLS = [0]
ROLES = ("anonymous", "admin", "supervisor", "case_manager", "partner")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
PASSWORD = "fuzzy lantern orchard 77"


class Callers:
    """A fresh bearer token per generated call, for each role's user: a fuzzed call may sign
    out (revoking its token), deactivate a user or lock an account, and the next call must
    still speak as its role."""

    def __init__(self, db: Database, users: dict[str, int]) -> None:
        self.db = db
        self.users = users

    def headers(self, role: str) -> dict[str, str]:
        if role == "anonymous":
            return {}
        token = security.new_token()
        now = datetime.now(UTC)
        with self.db.session(write=True) as session:
            session.execute(update(app_user).where(app_user.c.id == self.users[role])
                            .values(is_active=True, locked_until=None, role=role))
            session.execute(insert(api_token).values(
                user_id=self.users[role], token_hash=security.token_hash(token), name="fuzz",
                created_at=now, expires_at=now + timedelta(hours=1)))
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'fuzz.db'}"
    db = Database(url)
    db.migrate()
    load(db, search_package().write(folder / "pkg"), source="city")
    users = {}
    with db.session(write=True) as session:
        org = session.execute(select(organization.c.id).order_by(organization.c.id)).scalar()
        for role in ROLES[1:]:
            made = accounts.create_user(
                session, actor=CLI, username=f"fuzz-{role}", password=PASSWORD, role=role,
                agency_name="Fuzz Agency" if role in ("supervisor", "case_manager") else None,
                organization_ids=(org,) if role == "partner" else ())
            users[role] = made["id"]
    settings_ = Settings(database_url=url, environment="test", demo_notice=False,
                         geocode_cache_path=Path(folder / "geo.sqlite"),
                         hsds_rate_limit_per_minute=0)
    app = create_app(settings_)
    with TestClient(app):  # runs the lifespan: database, search engine, geocoder
        app.state.fuzz_callers = Callers(db, users)
        yield app
    db.dispose()
    if REPORT:
        with open(REPORT, "a", encoding="utf-8") as out:
            out.write(f"{CALLS[0]}\n")


@pytest.fixture(scope="module")
def api_schema(fuzz_app):  # noqa: ANN001, ANN201
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def _operations() -> list[tuple[str, str]]:
    """Every operation of the OpenAPI document (read without starting the app)."""
    document = create_app(Settings(environment="test")).openapi()
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method in item if method in {"get", "post", "put", "patch", "delete"}]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path"), _operations())
def test_every_answer_is_documented_and_none_is_500(fuzz_app, api_schema, method: str,  # noqa: ANN001
                                                    path: str, role: str) -> None:
    operation = api_schema[path][method]
    callers: Callers = fuzz_app.state.fuzz_callers

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # noqa: ANN001
        headers = callers.headers(role)
        if headers:
            case.headers = {**(case.headers or {}), **headers}
        response = case.call()
        CALLS[0] += 1
        case.validate_response(response, checks=CHECKS)

    run()
