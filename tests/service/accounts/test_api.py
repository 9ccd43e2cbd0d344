"""Sign-in over real HTTP: tokens, one refusal for every reason, lockout, rate limit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from service.accounts import security
from service.accounts.tables import api_token, app_user
from service.audit.tables import audit_event
from service.db import Database
from tests.service.accounts.helpers import PASSWORD, create_user, sign_in


def _token(client, username: str, password: str):  # noqa: ANN001, ANN202
    return client.post("/api/v1/auth/token", json={"username": username, "password": password})


def test_sign_in_gives_a_bearer_token_stored_only_as_its_hash(db: Database, client) -> None:  # noqa: ANN001
    create_user(db, username="casey", role="case_manager", agency="North Agency")
    response = _token(client, "Casey ", PASSWORD)  # usernames ignore case and spaces
    assert response.status_code == 200
    body = response.json()
    token = body["access_token"]
    assert token.startswith("sp_") and body["token_type"] == "bearer"
    assert body["user"]["username"] == "casey" and body["user"]["role"] == "case_manager"
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(hours=11) < expires - datetime.now(UTC) <= timedelta(hours=12)
    with db.session() as session:
        stored = session.execute(select(api_token)).mappings().one()
        password_hash = session.execute(select(app_user.c.password_hash)).scalar_one()
    assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(dict(stored))
    assert password_hash.startswith("$argon2id$") and PASSWORD not in password_hash

    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "casey" and me.json()["agency_id"] is not None
    with db.session() as session:
        assert session.execute(select(api_token.c.last_used_at)).scalar_one() is not None


def test_unknown_user_wrong_password_and_locked_get_the_same_answer(db: Database,
                                                                     client) -> None:  # noqa: ANN001
    create_user(db, username="casey")
    unknown = _token(client, "nobody", PASSWORD)
    wrong = _token(client, "casey", "not the password at all")
    for _ in range(security.MAX_FAILED_LOGINS - 1):
        _token(client, "casey", "not the password at all")
    locked = _token(client, "casey", PASSWORD)  # the right password, but locked now
    create_user(db, username="gone")
    with db.session(write=True) as session:
        session.execute(update(app_user).where(app_user.c.username == "gone")
                        .values(is_active=False))
    inactive = _token(client, "gone", PASSWORD)
    answers = {(r.status_code, r.text) for r in (unknown, wrong, locked, inactive)}
    assert len(answers) == 1
    status, text = answers.pop()
    assert status == 401 and security.LOGIN_REFUSED in text
    assert "locked" not in text.lower() and "unknown" not in text.lower()


def test_five_failures_lock_the_account_for_fifteen_minutes(db: Database, client) -> None:  # noqa: ANN001
    create_user(db, username="casey")
    for attempt in range(1, security.MAX_FAILED_LOGINS + 1):
        assert _token(client, "casey", f"wrong password {attempt}").status_code == 401
    with db.session() as session:
        locked_until = session.execute(select(app_user.c.locked_until)).scalar_one()
        actions = session.execute(select(audit_event.c.action)
                                  .where(audit_event.c.action.like("auth.%"))).scalars().all()
    assert timedelta(minutes=14) < locked_until - datetime.now(UTC) <= timedelta(minutes=15)
    assert actions.count("auth.login_failed") == 5 and "auth.locked" in actions
    assert _token(client, "casey", PASSWORD).status_code == 401

    with db.session(write=True) as session:  # fifteen minutes later
        session.execute(update(app_user).values(locked_until=datetime.now(UTC)
                                                - timedelta(seconds=1)))
    assert _token(client, "casey", PASSWORD).status_code == 200
    with db.session() as session:
        row = session.execute(select(app_user.c.failed_logins, app_user.c.locked_until)).one()
    assert row.failed_logins == 0 and row.locked_until is None


def test_a_success_resets_the_failure_count(db: Database, client) -> None:  # noqa: ANN001
    create_user(db, username="casey")
    for _ in range(security.MAX_FAILED_LOGINS - 1):
        _token(client, "casey", "wrong password here")
    sign_in(client, "casey")
    for _ in range(security.MAX_FAILED_LOGINS - 1):
        _token(client, "casey", "wrong password here")
    assert _token(client, "casey", PASSWORD).status_code == 200


def test_too_many_attempts_from_one_address_are_slowed(db: Database, client) -> None:  # noqa: ANN001
    client.app.state.login_limiter = security.AttemptLimiter(limit=3, window_seconds=60)
    answers = [_token(client, f"user{i}", "whatever it is 1").status_code for i in range(4)]
    assert answers == [401, 401, 401, 429]
    assert client.post("/api/v1/auth/token", json={"username": "x", "password": "y"}
                       ).json()["error"]["code"] == "too_many_requests"


def test_logout_expiry_and_bad_tokens(db: Database, client) -> None:  # noqa: ANN001
    create_user(db, username="casey")
    headers = sign_in(client, "casey")
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/auth/me", headers=headers).status_code == 401

    headers = sign_in(client, "casey")
    with db.session(write=True) as session:
        session.execute(update(api_token).values(expires_at=datetime.now(UTC)
                                                 - timedelta(seconds=1)))
    refused = client.get("/api/v1/auth/me", headers=headers)
    assert refused.status_code == 401 and refused.json()["error"]["field"] == "authorization"
    for value in ("Bearer sp_made-up", "Basic Y2FzZXk6cGFzcw==", "Bearer"):
        assert client.get("/api/v1/auth/me", headers={"Authorization": value}
                          ).status_code == 401
