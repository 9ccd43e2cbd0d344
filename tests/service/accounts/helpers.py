"""Build users and sign them in (used by the accounts, clients, audit and access tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from indexer.pipeline import load
from service.accounts import service as accounts
from service.audit.service import CLI
from service.db import Database
from service.directory.tables import organization
from tests.factories import directory_package

PASSWORD = "plum tractor velvet 42"


def create_user(db: Database, *, username: str, role: str = "case_manager",
                agency: str | None = "North Agency", organizations: tuple[str, ...] = (),
                password: str = PASSWORD) -> dict[str, Any]:
    """A user, created the way `signpost users add` does it."""
    if role not in ("case_manager", "supervisor"):
        agency = None
    with db.session(write=True) as session:
        return accounts.create_user(session, actor=CLI, username=username, password=password,
                                    role=role, agency_name=agency,
                                    organization_ids=organizations)


def sign_in(client, username: str, password: str = PASSWORD) -> dict[str, str]:  # noqa: ANN001
    """Authorization headers for the user."""
    response = client.post("/api/v1/auth/token", json={"username": username,
                                                       "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def user_headers(db: Database, client, username: str, **kwargs: Any) -> dict[str, str]:  # noqa: ANN001
    """Create a user and sign them in."""
    create_user(db, username=username, **kwargs)
    return sign_in(client, username)


def an_organization(db: Database, tmp_path: Path) -> str:
    """Load a tiny directory; the id of one of its organizations."""
    load(db, directory_package(2).write(tmp_path / "pkg"), source="city")
    with db.session() as session:
        return session.execute(select(organization.c.id).order_by(organization.c.id)).scalar()
