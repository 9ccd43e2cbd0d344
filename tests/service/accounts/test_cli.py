"""`signpost users add` through click's CliRunner, and the password policy."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from service.accounts import service as accounts
from service.accounts.tables import agency, app_user, user_organization
from service.audit.service import CLI
from service.audit.tables import audit_event
from service.cli import main
from service.config import get_settings
from service.db import Database
from service.errors import BadRequest
from tests.service.accounts.helpers import PASSWORD, an_organization


@pytest.fixture
def signpost(database_url: str, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """Run `signpost ...` against the test database."""
    monkeypatch.setenv("SIGNPOST_DATABASE_URL", database_url)
    get_settings.cache_clear()

    def run(*args: str):  # noqa: ANN202
        return CliRunner().invoke(main, list(args))

    yield run
    get_settings.cache_clear()


def test_users_add_each_role(signpost, db: Database, tmp_path: Path) -> None:  # noqa: ANN001
    org = an_organization(db, tmp_path)
    runs = [
        signpost("users", "add", "--role", "admin", "--username", "ada", "--password", PASSWORD),
        signpost("users", "add", "--role", "case_manager", "--username", "casey",
                 "--password", PASSWORD, "--agency", "North  Agency"),
        signpost("users", "add", "--role", "supervisor", "--username", "sam",
                 "--password", PASSWORD, "--agency", "North Agency"),
        signpost("users", "add", "--role", "partner", "--username", "pat",
                 "--password", PASSWORD, "--organization", org),
    ]
    for run in runs:
        assert run.exit_code == 0, run.output
    assert "added case_manager casey" in runs[1].output
    with db.session() as session:
        users = {r.username: r for r in session.execute(select(app_user)).all()}
        agencies = session.execute(select(agency.c.name)).scalars().all()
        links = session.execute(select(user_organization)).mappings().all()
        created = session.execute(select(audit_event.c.entity_id, audit_event.c.actor_role)
                                  .where(audit_event.c.action == "user.create")).all()
    assert agencies == ["North Agency"]  # one agency, its name's spaces squashed
    assert users["casey"].agency_id == users["sam"].agency_id is not None
    assert users["ada"].agency_id is None and users["pat"].agency_id is None
    assert [(link["user_id"], link["organization_id"]) for link in links] == [
        (users["pat"].id, org)]
    assert all(u.password_hash.startswith("$argon2id$") for u in users.values())
    assert len(created) == 4 and {role for _, role in created} == {"cli"}


@pytest.mark.parametrize(("args", "field"), [
    (("--role", "case_manager"), "agency"),  # a case manager needs an agency
    (("--role", "admin", "--agency", "North"), "agency"),
    (("--role", "partner"), "organization"),
    (("--role", "partner", "--organization", "no-such-org"), "organization"),
])
def test_users_add_checks_the_role_links(signpost, args: tuple[str, ...], field: str) -> None:  # noqa: ANN001
    run = signpost("users", "add", "--username", "someone", "--password", PASSWORD, *args)
    assert run.exit_code == 1 and f"{field}:" in run.output


def test_users_add_refuses_a_taken_username(signpost) -> None:  # noqa: ANN001
    args = ("users", "add", "--role", "admin", "--username", "ada", "--password", PASSWORD)
    assert signpost(*args).exit_code == 0
    again = signpost(*args)
    assert again.exit_code == 1 and "username: that username is taken" in again.output


@pytest.mark.parametrize("password", [
    "short pass1",  # 11 characters
    "averyordinaryname",  # the username
    "My-averyordinaryname-2",  # contains it
    "Password1234",  # common (any case)
    "aaaaaaaaaaaaaaaa",  # too few different characters
])
def test_password_policy_names_the_field(signpost, db: Database, password: str) -> None:  # noqa: ANN001
    run = signpost("users", "add", "--role", "admin", "--username", "averyordinaryname",
                   "--password", password)
    assert run.exit_code == 1 and "password:" in run.output
    with db.session(write=True) as session, pytest.raises(BadRequest) as refused:
        accounts.create_user(session, actor=CLI, username="averyordinaryname",
                             password=password, role="admin")
    assert refused.value.field == "password" and refused.value.status == 400
