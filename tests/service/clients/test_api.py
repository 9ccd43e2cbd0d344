"""Clients and consents over real HTTP: agency scope, refusals, duplicates, consents, audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from service.audit.tables import audit_event
from service.clients.service import PART2_NOTICE
from service.db import Database
from tests.service.accounts.helpers import an_organization, user_headers

NEW_CLIENT = {"name": "Rosa Q. Example", "date_of_birth": "1984-06-02",
              "preferred_language": "es", "contact_preference": "text", "no_voicemail": True}


@pytest.fixture
def north(db: Database, client) -> dict[str, str]:  # noqa: ANN001
    """A case manager of North Agency, signed in."""
    return user_headers(db, client, "casey", role="case_manager", agency="North Agency")


def _create(client, headers: dict[str, str], **overrides: object) -> dict:  # noqa: ANN001
    response = client.post("/api/v1/clients", json={**NEW_CLIENT, **overrides}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _audit_count(db: Database, action: str, entity_id: object = None) -> int:
    query = select(func.count()).select_from(audit_event).where(audit_event.c.action == action)
    if entity_id is not None:
        query = query.where(audit_event.c.entity_id == str(entity_id))
    with db.session() as session:
        return session.execute(query).scalar_one()


def test_create_and_read_a_client(db: Database, client, north) -> None:  # noqa: ANN001
    created = _create(client, north)
    assert created["warnings"] == []
    person = created["client"]
    assert person["name"] == "Rosa Q. Example" and person["date_of_birth"] == "1984-06-02"
    assert person["contact_preference"] == "text" and person["no_voicemail"] is True
    assert person["do_not_text"] is False
    read = client.get(f"/api/v1/clients/{person['id']}", headers=north)
    assert read.status_code == 200
    assert read.json()["consents"] == [] and read.json()["name"] == "Rosa Q. Example"


def test_each_read_writes_exactly_one_audit_event(db: Database, client, north) -> None:  # noqa: ANN001
    client_id = _create(client, north)["client"]["id"]
    for expected in (1, 2, 3):
        assert client.get(f"/api/v1/clients/{client_id}", headers=north).status_code == 200
        assert _audit_count(db, "client.read", client_id) == expected
    with db.session() as session:
        event = session.execute(select(audit_event).where(
            audit_event.c.action == "client.read")).mappings().first()
    assert event["entity_type"] == "client" and event["actor_role"] == "case_manager"
    assert event["user_id"] is not None and event["client_ip"]
    assert client.get("/api/v1/clients", headers=north).status_code == 200
    assert _audit_count(db, "client.list") == 1


def test_another_agency_cannot_see_the_client(db: Database, client, north) -> None:  # noqa: ANN001
    client_id = _create(client, north)["client"]["id"]
    south = user_headers(db, client, "sol", role="supervisor", agency="South Agency")
    missing = client.get(f"/api/v1/clients/{client_id}", headers=south)
    never = client.get("/api/v1/clients/999999", headers=south)
    assert missing.status_code == never.status_code == 404
    assert missing.json()["error"]["field"] == "client_id"
    assert missing.json()["error"]["message"].replace(str(client_id), "N") == \
        never.json()["error"]["message"].replace("999999", "N")
    consent = {"shares": ["contact"], "shared_with_name": "Food Bank", "purpose": "referral"}
    assert client.post(f"/api/v1/clients/{client_id}/consents", json=consent,
                       headers=south).status_code == 404
    listed = client.get("/api/v1/clients", headers=south).json()
    assert listed["total"] == 0 and listed["items"] == []
    north_agency = client.get(f"/api/v1/clients/{client_id}", headers=north).json()["agency_id"]
    assert client.get("/api/v1/clients", params={"agency_id": north_agency},
                      headers=south).status_code == 404
    assert _audit_count(db, "client.read", client_id) == 1  # only the north read


def test_a_supervisor_of_the_agency_sees_its_clients(db: Database, client, north) -> None:  # noqa: ANN001
    client_id = _create(client, north)["client"]["id"]
    boss = user_headers(db, client, "sam", role="supervisor", agency="North Agency")
    assert client.get(f"/api/v1/clients/{client_id}", headers=boss).status_code == 200
    assert client.get("/api/v1/clients", headers=boss).json()["total"] == 1


def test_partners_and_anonymous_get_no_client_routes(db: Database, client, north,  # noqa: ANN001
                                                     tmp_path: Path) -> None:
    client_id = _create(client, north)["client"]["id"]
    org = an_organization(db, tmp_path)
    partner = user_headers(db, client, "pat", role="partner", organizations=(org,))
    consent = {"shares": ["contact"], "shared_with_name": "Food Bank", "purpose": "referral"}
    calls = [("post", "/api/v1/clients", NEW_CLIENT), ("get", "/api/v1/clients", None),
             ("get", f"/api/v1/clients/{client_id}", None),
             ("post", f"/api/v1/clients/{client_id}/consents", consent),
             ("post", f"/api/v1/clients/{client_id}/consents/1/revoke", None)]
    for method, url, body in calls:
        kwargs = {"json": body} if body is not None else {}
        assert client.request(method, url, headers=partner, **kwargs).status_code == 403, url
        anonymous = client.request(method, url, **kwargs)
        assert anonymous.status_code == 401, url
        assert "Rosa" not in anonymous.text
    assert _audit_count(db, "client.read") == 0


def test_admins_read_for_oversight_but_do_not_write(db: Database, client, north) -> None:  # noqa: ANN001
    client_id = _create(client, north)["client"]["id"]
    admin = user_headers(db, client, "ada", role="admin")
    read = client.get(f"/api/v1/clients/{client_id}", headers=admin)
    assert read.status_code == 200
    assert client.post("/api/v1/clients", json=NEW_CLIENT, headers=admin).status_code == 403
    no_agency = client.get("/api/v1/clients", headers=admin)
    assert no_agency.status_code == 400 and no_agency.json()["error"]["field"] == "agency_id"
    huge = client.get("/api/v1/clients", params={"agency_id": 2**63}, headers=admin)
    assert huge.status_code == 422 and huge.json()["error"]["field"] == "agency_id"  # was a 500
    listed = client.get("/api/v1/clients", params={"agency_id": read.json()["agency_id"]},
                        headers=admin)
    assert listed.json()["total"] == 1
    with db.session() as session:
        roles = session.execute(select(audit_event.c.actor_role).where(
            audit_event.c.action.in_(["client.read", "client.list"]))).scalars().all()
    assert roles == ["admin", "admin"]


def test_a_possible_duplicate_is_a_warning(db: Database, client, north) -> None:  # noqa: ANN001
    first = _create(client, north)["client"]["id"]
    again = _create(client, north, name="  rosa q.   EXAMPLE ")
    assert again["client"]["id"] != first
    [warning] = again["warnings"]
    assert warning["code"] == "possible_duplicate" and warning["client_ids"] == [first]
    assert "Rosa" not in warning["message"] and "1984" not in warning["message"]
    assert _create(client, north, date_of_birth="1984-06-03")["warnings"] == []
    assert _create(client, north, date_of_birth=None)["warnings"] == []
    south = user_headers(db, client, "sol", role="case_manager", agency="South Agency")
    assert _create(client, south)["warnings"] == []  # other agencies are not searched


@pytest.mark.parametrize(("overrides", "status", "field"), [
    ({"date_of_birth": "2999-01-01"}, 400, "date_of_birth"),
    ({"contact_preference": "text", "do_not_text": True}, 400, "do_not_text"),
    ({"contact_preference": "carrier pigeon"}, 422, "contact_preference"),
    ({"name": "   "}, 422, "name"),
    ({"preferred_language": "not a tag!"}, 422, "preferred_language"),
])
def test_bad_clients_name_the_field(client, north, overrides: dict, status: int,  # noqa: ANN001
                                    field: str) -> None:
    response = client.post("/api/v1/clients", json={**NEW_CLIENT, **overrides}, headers=north)
    assert response.status_code == status and response.json()["error"]["field"] == field


def test_consent_create_revoke_and_expire(db: Database, client, north,  # noqa: ANN001
                                          tmp_path: Path) -> None:
    client_id = _create(client, north)["client"]["id"]
    org = an_organization(db, tmp_path)
    url = f"/api/v1/clients/{client_id}/consents"
    given = client.post(url, headers=north, json={
        "shares": ["contact", "needs", "contact"], "shared_with_organization_id": org,
        "purpose": "referral for food assistance",
        "expires_at": (datetime.now(UTC) + timedelta(days=90)).isoformat()})
    assert given.status_code == 201, given.text
    consent = given.json()
    assert consent["status"] == "active" and consent["shares"] == ["contact", "needs"]
    assert consent["shared_with_name"].startswith("Organization ")  # the directory's name
    assert consent["redisclosure_notice"] is None and consent["is_part2"] is False

    revoked = client.post(f"{url}/{consent['id']}/revoke", headers=north)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert revoked.json()["revoked_at"] is not None
    again = client.post(f"{url}/{consent['id']}/revoke", headers=north)
    assert again.status_code == 409 and again.json()["error"]["field"] == "consent_id"
    assert _audit_count(db, "consent.revoke", consent["id"]) == 1

    now = datetime.now(UTC)
    lapsed = client.post(url, headers=north, json={
        "shares": ["identity"], "shared_with_name": "Clinic", "purpose": "intake",
        "given_at": (now - timedelta(days=30)).isoformat(),
        "expires_at": (now - timedelta(days=1)).isoformat()}).json()
    assert lapsed["status"] == "expired"

    part2 = client.post(url, headers=north, json={
        "shares": ["substance_use_treatment"], "shared_with_name": "Recovery Center",
        "purpose": "care coordination", "is_part2": True}).json()
    assert part2["status"] == "active" and part2["redisclosure_notice"] == PART2_NOTICE
    assert "42 CFR part 2" in part2["redisclosure_notice"]

    detail = client.get(f"/api/v1/clients/{client_id}", headers=north).json()
    assert [c["status"] for c in detail["consents"]] == ["revoked", "expired", "active"]
    assert client.post(f"/api/v1/clients/{client_id}/consents/{part2['id'] + 99}/revoke",
                       headers=north).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ({"given_at": "2999-01-01T00:00:00Z"}, "given_at"),
    ({"shared_with_name": None}, "shared_with_name"),
    ({"shared_with_organization_id": "no-such-org"}, "shared_with_organization_id"),
    ({"shares": []}, "shares"),
    ({"shares": ["everything"]}, "shares.0"),
    ({"expires_at": "2030-01-01T00:00:00"}, "expires_at"),  # no time zone
])
def test_bad_consents_name_the_field(client, north, body: dict, field: str) -> None:  # noqa: ANN001
    client_id = _create(client, north)["client"]["id"]
    consent = {"shares": ["contact"], "shared_with_name": "Food Bank", "purpose": "referral",
               **body}
    response = client.post(f"/api/v1/clients/{client_id}/consents", json=consent, headers=north)
    assert response.status_code in (400, 422) and response.json()["error"]["field"] == field
