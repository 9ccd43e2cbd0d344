"""Partner listing updates over real HTTP: partners edit and confirm their listings, searches see
the edit at once, admins approve, reject and revert; every forbidden path is refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from indexer.pipeline import load
from service.app import create_app
from service.audit.tables import audit_event
from service.config import Settings
from service.db import Database
from service.directory.tables import hsds_tables, listing_edit, service
from tests.factories import directory_package
from tests.service.accounts.helpers import user_headers
from tests.service.referrals.helpers import World, make_world

WRITERS = 8
SATURDAY = [{"days": ["SA"], "opens_at": "10:00", "closes_at": "14:00"}]


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    return make_world(db, client, tmp_path)


@pytest.fixture
def admin(db: Database, client) -> dict[str, str]:  # noqa: ANN001
    return user_headers(db, client, "ada", role="admin")


@pytest.fixture
def approving(settings: Settings) -> Iterator[TestClient]:
    """An app whose partners' edits wait for an admin's approval."""
    strict = settings.model_copy(update={"partner_edits_require_approval": True})
    with TestClient(create_app(strict)) as http:
        yield http


def patch(http, world: World, headers: dict[str, str], body: dict[str, Any], *,  # noqa: ANN001
          service: str = "svc0", status: int = 200, if_match: str | None = None,
          ) -> dict[str, Any]:
    if if_match is not None:
        headers = {**headers, "If-Match": if_match}
    response = http.patch(f"/api/v1/services/{world.id(service)}", headers=headers, json=body)
    assert response.status_code == status, response.text
    return response.json()


def listing(http, world: World, service: str = "svc0") -> dict[str, Any]:  # noqa: ANN001
    response = http.get(f"/api/v1/services/{world.id(service)}")
    assert response.status_code == 200, response.text
    return response.json()["service"]


def search(http, q: str) -> list[dict[str, Any]]:  # noqa: ANN001
    response = http.get("/api/v1/search", params={"q": q, "near": "20001", "per_page": 50})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def audit_events(db: Database, action: str, entity_id: str) -> list[dict[str, Any]]:
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(audit_event).where(audit_event.c.action == action)
            .where(audit_event.c.entity_id == entity_id)
            .order_by(audit_event.c.id)).mappings()]


def fields(edit: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {c["field"]: (c["old"], c["new"]) for c in edit["changes"]}


# --- edits show at once ---------------------------------------------------------------------------


def test_an_edit_shows_in_search_at_once(db: Database, client, world: World) -> None:  # noqa: ANN001
    if not db.is_sqlite:
        pytest.skip("the embedded search index lives in SQLite; PostgreSQL searches through "
                    "Elasticsearch (see the conformance suite)")
    svc0, sal0 = world.id("svc0"), world.id("sal0")
    assert search(client, "diapers") == []
    before = next(r for r in search(client, "food pantry") if r["service_id"] == svc0)
    assert before["name"] == "Food Pantry 0" and "Mon" in before["hours"]

    patch(client, world, world.pat, {"name": "Riverside Diaper Bank", "hours": SATURDAY})
    [found] = search(client, "diapers")
    assert found["service_id"] == svc0 and found["name"] == "Riverside Diaper Bank"
    assert "Sat" in found["hours"] and "Mon" not in found["hours"]

    # A site's own hours take over from the service's for that site.
    patch(client, world, world.pat, {"sites": [{"service_at_location_id": sal0, "hours": [
        {"days": ["TU", "TH"], "opens_at": "22:00", "closes_at": "06:00"}]}]})
    [found] = search(client, "diapers")
    assert "Tue" in found["hours"] and "Sat" not in found["hours"]

    # A reverted edit leaves search as it was before.
    edits = client.get("/api/v1/listing-edits", headers=world.pat).json()["items"]
    admin = user_headers(db, client, "ada", role="admin")
    for edit in edits:  # newest first
        response = client.post(f"/api/v1/listing-edits/{edit['id']}/revert", headers=admin)
        assert response.status_code == 200, response.text
    assert search(client, "diapers") == []
    again = next(r for r in search(client, "food pantry") if r["service_id"] == svc0)
    assert again["name"] == "Food Pantry 0" and again["hours"] == before["hours"]


def test_a_partner_edits_their_listing_and_the_edit_is_kept_and_audited(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    svc0, sal0 = world.id("svc0"), world.id("sal0")
    result = patch(client, world, world.pat, {
        "description": "Diapers and wipes, Saturdays",
        "fees_description": "Free",
        "url": "https://example.org/pantry",
        "languages": ["en", "es"],
        "status": "active do not refer",
        "eligibility": {"description": "Parents of babies", "min_age": 18,
                        "genders": ["female"], "documents": ["photo_id"]},
        "sites": [{"service_at_location_id": sal0, "capacity_status": "waitlist"}],
    })
    edit = result["edit"]
    assert edit["status"] == "applied" and edit["created_by"] == "pat"
    assert edit["organization_name"] == "Organization 0" and edit["service_id"] == svc0
    changed = fields(edit)
    assert changed["description"] == ("Groceries once a week", "Diapers and wipes, Saturdays")
    assert changed["is_referable"] == (True, False)
    assert changed["eligibility.min_age"] == (None, 18)
    assert changed[f"sites.{sal0}.capacity_status"] == (None, "waitlist")

    doc = listing(client, world)
    assert doc["description"] == "Diapers and wipes, Saturdays"
    assert doc["status"] == "active" and doc["x_is_referable"] is False
    assert doc["minimum_age"] == 18 and doc["eligibility_description"] == "Parents of babies"
    assert doc["x_eligibility"]["genders"] == ["female"]
    assert doc["x_eligibility"]["gender_kind"] == "restriction"
    assert doc["x_eligibility"]["documents"] == ["photo_id"]
    assert sorted(lang["code"] for lang in doc["languages"]) == ["en", "es"]
    [site] = doc["service_at_locations"]
    assert site["x_capacity_status"] == "waitlist" and site["x_capacity_updated_at"]

    # The edit is kept, listed for its organization, and audited with its diff.
    page = client.get("/api/v1/listing-edits", headers=world.pat).json()
    assert page["total"] == 1 and page["items"][0]["id"] == edit["id"]
    assert client.get("/api/v1/listing-edits", headers=world.otto).json()["total"] == 0
    [event] = audit_events(db, "listing.edit", svc0)
    assert event["changes"]["description"] == {"old": "Groceries once a week",
                                               "new": "Diapers and wipes, Saturdays"}
    assert event["changes"]["listing_edit_id"]["new"] == edit["id"]

    # Sending the same values again changes nothing and records nothing.
    same = patch(client, world, world.pat, {"description": "Diapers and wipes, Saturdays"})
    assert same["edit"] is None and same["updated_at"] == result["updated_at"]


def test_partner_edits_survive_a_reimport_of_the_unchanged_feed(
        db: Database, client, world: World, tmp_path: Path) -> None:  # noqa: ANN001
    patch(client, world, world.pat, {"name": "Riverside Diaper Bank", "hours": SATURDAY,
                                     "languages": ["es"]})
    load(db, tmp_path / "pkg", source="city")  # the same export again
    doc = listing(client, world)
    assert doc["name"] == "Riverside Diaper Bank"
    assert [(s["byday"], s["opens_at"]) for s in doc["schedules"]] == [("SA", "10:00")]
    assert [lang["code"] for lang in doc["languages"]] == ["es"]


# --- optimistic concurrency -----------------------------------------------------------------------


def test_a_stale_version_is_refused(db: Database, client, world: World) -> None:  # noqa: ANN001
    [mine] = client.get("/api/v1/partner/listings", headers=world.pat).json()["items"]
    read_at = mine["updated_at"]
    first = client.patch(f"/api/v1/services/{world.id('svc0')}", headers=world.pat,
                         json={"name": "Pantry A", "expected_updated_at": read_at})
    assert first.status_code == 200, first.text
    assert first.json()["updated_at"] != read_at
    # Someone else read the same version: their edit would overwrite the first one.
    stale = patch(client, world, world.pat, {"name": "Pantry B", "expected_updated_at": read_at},
                  status=409)
    assert stale["error"]["field"] == "expected_updated_at"
    stale = patch(client, world, world.pat, {"name": "Pantry B"}, status=409,
                  if_match=f'"{read_at}"')
    assert stale["error"]["field"] == "if-match"
    assert listing(client, world)["name"] == "Pantry A"
    # The ETag of the last answer is the version to send next.
    fresh = patch(client, world, world.pat, {"name": "Pantry B"},
                  if_match=first.headers["ETag"])
    assert fresh["edit"]["status"] == "applied"
    assert listing(client, world)["name"] == "Pantry B"


def test_concurrent_edits_of_one_version_let_exactly_one_through(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    [mine] = client.get("/api/v1/partner/listings", headers=world.pat).json()["items"]
    barrier = threading.Barrier(WRITERS, timeout=60)
    statuses: list[int] = []

    def write(n: int) -> None:
        barrier.wait()
        response = client.patch(f"/api/v1/services/{world.id('svc0')}", headers=world.pat,
                                 json={"name": f"Pantry {n}",
                                       "expected_updated_at": mine["updated_at"]})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [200] + [409] * (WRITERS - 1)
    with db.session() as session:
        [edit] = session.execute(select(listing_edit)).mappings().all()
    assert edit["changes"][0]["new"] == listing(client, world)["name"]


# --- forbidden paths ------------------------------------------------------------------------------


def test_forbidden_paths_are_refused(db: Database, client, world: World) -> None:  # noqa: ANN001
    body = {"name": "Taken over"}
    # Another organization's listing: refused, naming it (listings are public: no secret kept).
    refused = patch(client, world, world.otto, body, status=403)
    assert "Organization 0" in refused["error"]["message"]
    assert refused["error"]["field"] == "service_id"
    assert client.post(f"/api/v1/services/{world.id('svc0')}/verify",
                       headers=world.otto).status_code == 403
    assert client.patch(f"/api/v1/locations/{world.id('loc0')}", headers=world.otto,
                        json={"name": "Mine now"}).status_code == 403
    # A case manager edits no listing; nobody edits anonymously.
    assert patch(client, world, world.casey, body, status=403)["error"]["field"] == "role"
    assert patch(client, world, {}, body, status=401)["error"]["field"] == "authorization"
    assert client.get("/api/v1/partner/listings", headers=world.casey).status_code == 403
    assert client.get("/api/v1/listings/stale").status_code == 401
    # A partner decides no edit.
    assert client.post("/api/v1/listing-edits/1/approve", headers=world.pat).status_code == 403
    assert listing(client, world)["name"] == "Food Pantry 0"
    # No such listing.
    assert client.patch("/api/v1/services/nope", headers=world.pat,
                        json=body).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"hours": [{"days": ["MO"], "opens_at": "25:00", "closes_at": "17:00"}]},
     "hours.0.opens_at"),
    ({"hours": [{"days": ["MO"], "opens_at": "09:00", "closes_at": "09:00"}]},
     "hours.0.closes_at"),
    ({"hours": [{"days": ["XX"], "opens_at": "09:00", "closes_at": "17:00"}]}, "hours.0.days.0"),
    ({"sites": [{"service_at_location_id": "sal0", "capacity_status": "plenty"}]},
     "sites.0.capacity_status"),
    ({"sites": [{"service_at_location_id": "sal1", "capacity_status": "waitlist"}]},
     "sites.0.service_at_location_id"),
    ({"status": "closed forever"}, "status"),
    ({"name": None}, "name"),
    ({"email": "not an address"}, "email"),
    ({"eligibility": {"min_age": 30, "max_age": 20}}, "eligibility.max_age"),
    ({"eligibility": {"genders": ["martian"]}}, "eligibility.genders.0"),
    ({"nmae": "typo"}, "nmae"),
])
def test_an_invalid_value_is_refused_naming_the_field(
        db: Database, client, world: World, body: dict[str, Any], field: str) -> None:  # noqa: ANN001
    for site in body.get("sites", []):
        site["service_at_location_id"] = world.id(site["service_at_location_id"])
    error = patch(client, world, world.pat, body, status=422)["error"]
    assert error["field"] == field, error
    assert error["code"] == "invalid"
    assert listing(client, world)["name"] == "Food Pantry 0"


# --- verification and stale listings --------------------------------------------------------------


def test_still_accurate_sets_verified_at_and_leaves_the_stale_list(
        db: Database, client, world: World, admin: dict[str, str]) -> None:  # noqa: ANN001
    svc0, svc1 = world.id("svc0"), world.id("svc1")
    stale = client.get("/api/v1/listings/stale", headers=admin).json()
    assert stale["stale_after_days"] == 365
    assert {i["service_id"] for i in stale["items"]} == {svc0, svc1}
    assert all(i["verified_at"] is None for i in stale["items"])

    before = datetime.now(UTC)
    response = client.post(f"/api/v1/services/{svc0}/verify", headers=world.pat)
    assert response.status_code == 200, response.text
    verified = response.json()
    assert verified["verified_by"] == "pat"
    assert verified["verification_method"] == "partner confirmed"
    assert datetime.fromisoformat(verified["verified_at"]) >= before
    assert listing(client, world)["x_verified_by"] == "pat"
    [event] = audit_events(db, "listing.verify", svc0)
    assert event["changes"]["verified_by"] == {"old": None, "new": "pat"}

    stale = client.get("/api/v1/listings/stale", headers=admin).json()
    assert [i["service_id"] for i in stale["items"]] == [svc1]
    [mine] = client.get("/api/v1/partner/listings", headers=world.pat).json()["items"]
    assert mine["is_stale"] is False


def test_stale_listings_oldest_first_and_only_the_partners_own(
        db: Database, client, world: World, admin: dict[str, str], tmp_path: Path) -> None:  # noqa: ANN001
    load(db, directory_package(4, prefix="x").write(tmp_path / "more"), source="county")
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        for source_id, days in (("svc0", 400), ("svc1", 500), ("svcx0", 10), ("svcx1", 800)):
            session.execute(update(service).where(service.c.id == world.id(source_id) if
                                                  source_id in world.ids else
                                                  service.c.record_source_id == source_id)
                            .values(verified_at=now - timedelta(days=days)))
    page = client.get("/api/v1/listings/stale", headers=admin, params={"per_page": 2}).json()
    assert page["total"] == 5  # svcx2 and svcx3 never verified; svcx0 is recent
    assert page["items"][0]["verified_at"] is None and page["items"][1]["verified_at"] is None
    rest = client.get("/api/v1/listings/stale", headers=admin,
                      params={"per_page": 2, "page": 2}).json()["items"]
    assert [i["name"] for i in rest] == ["Food Pantry x1", "Food Pantry 1"]
    assert rest[0]["days_since_verified"] == 800
    mine = client.get("/api/v1/listings/stale", headers=world.pat).json()
    assert [(i["service_id"], i["organization_name"]) for i in mine["items"]] == [
        (world.id("svc0"), "Organization 0")]


def test_the_partner_portal_lists_the_partners_listings(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    page = client.get("/api/v1/partner/listings", headers=world.pat).json()
    assert page["total"] == 1
    [item] = page["items"]
    assert item["service_id"] == world.id("svc0") and item["status"] == "active"
    assert item["organization_name"] == "Organization 0" and item["pending_edits"] == 0
    assert item["is_stale"] is True and item["verified_at"] is None
    [site] = item["sites"]
    assert site["service_at_location_id"] == world.id("sal0")
    assert site["location_name"] == "Site 0" and site["capacity_status"] is None


# --- approval, rejection, revert ------------------------------------------------------------------


def test_with_approval_required_a_partners_edit_waits_for_an_admin(
        db: Database, approving: TestClient, world: World) -> None:
    http = approving
    admin = user_headers(db, http, "ada", role="admin")
    proposed = patch(http, world, world.pat, {"name": "Diaper Bank"}, status=202)
    assert proposed["edit"]["status"] == "pending"
    assert listing(http, world)["name"] == "Food Pantry 0"  # untouched until approved
    [mine] = http.get("/api/v1/partner/listings", headers=world.pat).json()["items"]
    assert mine["pending_edits"] == 1
    queue = http.get("/api/v1/listing-edits", headers=admin, params={"status": "pending"}).json()
    assert [e["id"] for e in queue["items"]] == [proposed["edit"]["id"]]
    assert http.get("/api/v1/listing-edits", headers=world.otto,
                    params={"status": "pending"}).json()["total"] == 0
    assert audit_events(db, "listing.propose", world.id("svc0"))

    edit_id = proposed["edit"]["id"]
    approved = http.post(f"/api/v1/listing-edits/{edit_id}/approve", headers=admin)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "applied" and approved.json()["decided_by"] == "ada"
    assert listing(http, world)["name"] == "Diaper Bank"
    again = http.post(f"/api/v1/listing-edits/{edit_id}/approve", headers=admin)
    assert again.status_code == 409

    # A rejection needs a reason, and leaves the listing alone.
    second = patch(http, world, world.pat, {"description": "Diapers"}, status=202)["edit"]
    no_reason = http.post(f"/api/v1/listing-edits/{second['id']}/reject", headers=admin,
                          json={})
    assert no_reason.status_code == 422 and no_reason.json()["error"]["field"] == "reason"
    rejected = http.post(f"/api/v1/listing-edits/{second['id']}/reject", headers=admin,
                         json={"reason": "We only list the pantry here"}).json()
    assert rejected["status"] == "rejected"
    assert rejected["decision_reason"] == "We only list the pantry here"
    assert listing(http, world)["description"] == "Groceries once a week"

    # An admin's own edits apply at once; a pending edit of a field changed since is refused.
    third = patch(http, world, world.pat, {"name": "Diaper Depot"}, status=202)["edit"]
    patch(http, world, admin, {"name": "Diaper Bank of Riverside"})
    conflict = http.post(f"/api/v1/listing-edits/{third['id']}/approve", headers=admin)
    assert conflict.status_code == 409 and conflict.json()["error"]["field"] == "name"
    assert listing(http, world)["name"] == "Diaper Bank of Riverside"


def test_an_admin_reverts_an_edit_unless_its_fields_changed_again(
        db: Database, client, world: World, admin: dict[str, str]) -> None:  # noqa: ANN001
    sal0 = world.id("sal0")
    first = patch(client, world, world.pat, {
        "name": "Diaper Bank", "hours": SATURDAY,
        "sites": [{"service_at_location_id": sal0, "capacity_status": "no_capacity"}]})["edit"]
    reverted = client.post(f"/api/v1/listing-edits/{first['id']}/revert", headers=admin,
                           json={"reason": "Sent by mistake"})
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["status"] == "reverted" and reverted.json()["reverted_by"] == "ada"
    doc = listing(client, world)
    assert doc["name"] == "Food Pantry 0"
    assert [(s["byday"], s["opens_at"]) for s in doc["schedules"]] == [("MO,WE,FR", "09:00")]
    assert "x_capacity_status" not in doc["service_at_locations"][0]
    assert audit_events(db, "listing.revert", world.id("svc0"))
    assert client.post(f"/api/v1/listing-edits/{first['id']}/revert",
                       headers=admin).status_code == 409

    second = patch(client, world, world.pat, {"name": "Diaper Bank", "description": "Diapers"})
    patch(client, world, world.pat, {"name": "Diaper Bank Riverside"})
    refused = client.post(f"/api/v1/listing-edits/{second['edit']['id']}/revert", headers=admin)
    assert refused.status_code == 409
    assert refused.json()["error"]["field"] == "name"
    assert "name" in refused.json()["error"]["message"]
    assert listing(client, world)["description"] == "Diapers"


# --- locations ------------------------------------------------------------------------------------


def test_a_partner_edits_their_location(db: Database, client, world: World) -> None:  # noqa: ANN001
    loc0 = world.id("loc0")
    response = client.patch(f"/api/v1/locations/{loc0}", headers=world.pat, json={
        "name": "Riverside Site",
        "addresses": [{"address_1": "1 Capitol St NE", "city": "Washington",
                       "state_province": "DC", "postal_code": "20002"}],
        "phones": [{"number": "202-555-0199", "description": "intake"}],
        "accessibility": [{"description": "Step-free entrance"}],
    })
    assert response.status_code == 200, response.text
    edit = response.json()["edit"]
    assert edit["entity_type"] == "location" and edit["location_id"] == loc0
    changed = fields(edit)
    assert {"name", "addresses", "phones", "accessibility", "latitude"} <= set(changed)
    site = listing(client, world)["service_at_locations"][0]["location"]
    assert site["name"] == "Riverside Site"
    assert [a["postal_code"] for a in site["addresses"]] == ["20002"]
    assert [p["number"] for p in site["phones"]] == ["202-555-0199"]
    assert site["accessibility"][0]["description"] == "Step-free entrance"
    assert site["x_geocode_precision"] in ("zip", "address", "exact")
    assert audit_events(db, "listing.edit", loc0)

    missing = client.patch(f"/api/v1/locations/{loc0}", headers=world.pat,
                           json={"latitude": 38.9})
    assert missing.status_code == 422 and missing.json()["error"]["field"] == "longitude"


def test_the_listing_edit_table_keeps_who_when_and_what(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    patch(client, world, world.pat, {"name": "Diaper Bank"})
    with db.session() as session:
        [row] = session.execute(select(listing_edit)).mappings().all()
        sal = session.execute(select(hsds_tables["service_at_location"])).mappings().first()
    assert row["status"] == "applied" and row["created_at"] is not None
    assert row["service_id"] == world.id("svc0") and row["organization_id"] == world.id("org0")
    assert [(c["field"], c["old"], c["new"]) for c in row["changes"]] == [
        ("name", "Food Pantry 0", "Diaper Bank")]
    assert sal is not None
