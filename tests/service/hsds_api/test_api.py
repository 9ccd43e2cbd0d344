"""The HSDS 3.1 API over real HTTP, on SQLite and PostgreSQL: every answer validated against the
HSDS 3.1 schemas (3.1.1 patch overlaid), filters with known answers, paging, visibility rules,
the token, the rate limit and conditional requests."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from sqlalchemy import select, update

from indexer.pipeline import load
from service.config import Settings
from service.db import Database
from service.directory.edits import apply_local_edit
from service.directory.tables import hsds_tables
from service.hsds_api.guard import RateLimiter
from tests.conftest import DATASETS, HSDS
from tests.factories import Package, directory_package
from tests.hsds_schema import errors as object_errors

SCHEMA = HSDS / "v3.1" / "schema"
PATCH = HSDS / "v3.1" / "patch-3.1.1" / "schema"
COMPILED = ("service_list", "organization_list", "service_at_location_list")

# Which schema each list's items (plain, and with full=true) and each single object follow.
LISTS = {
    "/hsds/services": ("service_list", "service"),
    "/hsds/service_at_locations": ("service_at_location_list", "service_at_location"),
    "/hsds/organizations": ("organization_list", "organization"),
    "/hsds/taxonomies": ("taxonomy", None),
    "/hsds/taxonomy_terms": ("taxonomy_term", None),
}
SINGLE = {
    "/hsds/services": "service",
    "/hsds/service_at_locations": "service_at_location",
    "/hsds/organizations": "organization",
    "/hsds/taxonomies": "taxonomy",
    "/hsds/taxonomy_terms": "taxonomy_term",
}


# --- the validator -------------------------------------------------------------------------


@lru_cache
def _compiled(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA / "compiled" / f"{name}.json").read_text(encoding="utf-8"))


@lru_cache
def _openapi() -> dict[str, Any]:
    return json.loads((PATCH / "openapi.json").read_text(encoding="utf-8"))


@lru_cache
def _validator(name: str) -> Draft202012Validator:
    if name == "Page":
        return Draft202012Validator(_openapi()["components"]["schemas"]["Page"])
    if name == "root":
        return Draft202012Validator(_openapi()["paths"]["/"]["get"]["responses"]["200"][
            "content"]["application/json"]["schema"])
    return Draft202012Validator(_compiled(name))


def _errors(name: str, instance: Any) -> list[str]:
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in _validator(name).iter_errors(instance)]


def schema_errors(name: str, instance: Any) -> list[str]:
    """Errors of one HSDS object against a compiled list schema or an object schema."""
    if name in COMPILED:
        return _errors(name, instance)
    return object_errors(name, instance)


def page_errors(body: Any, item_schema: str) -> list[str]:
    """Errors of a page: the openapi Page envelope (`empty` required, 3.1.1) and every item."""
    found = _errors("Page", body)
    if not isinstance(body.get("contents"), list):
        return [*found, "contents: missing"]
    for i, item in enumerate(body["contents"]):
        found += [f"contents/{i}/{e}" for e in schema_errors(item_schema, item)]
    return found


def root_errors(body: Any) -> list[str]:
    """Errors of the root document against the openapi '/' response schema."""
    return _errors("root", body) + ([] if body.get("version") == "3.1" else ["version"])


def check_everything(client: TestClient, *, sample: int = 5) -> int:
    """Validate every list (every page), its full variant, ndjson, and single reads of
    `sample` ids per type; returns how many objects were checked."""
    root = client.get("/hsds/")
    assert root.status_code == 200 and root_errors(root.json()) == []
    assert client.get(root.json()["profile"]).status_code == 200
    checked = 0
    for path, (item_schema, full_schema) in LISTS.items():
        ids = []
        for body in walk(client, path, per_page=1000):
            assert page_errors(body, item_schema) == [], path
            ids += [i["id"] for i in body["contents"]]
            checked += body["size"]
        if full_schema:
            body = get_ok(client, path, full="true", per_page=100)
            assert page_errors(body, full_schema) == [], path
            checked += body["size"]
        lines = client.get(path, params={"format": "ndjson"}).text.splitlines()
        assert [json.loads(line)["id"] for line in lines] == ids
        for item_id in ids[:sample]:
            doc = get_ok(client, f"{path}/{item_id}")
            assert schema_errors(SINGLE[path], doc) == [], f"{path}/{item_id}"
            checked += 1
    body = get_ok(client, "/hsds/services", minimal="true", per_page=1000)
    assert page_errors(body, "service_list") == []
    for org_id in [o["id"] for o in get_ok(client, "/hsds/organizations",
                                            per_page=sample)["contents"]]:
        assert schema_errors("organization", get_ok(client, f"/hsds/organizations/{org_id}",
                                                    full_service="true")) == []
    return checked


# --- data and helpers ----------------------------------------------------------------------


def package() -> Package:
    """12 DC services (tests.factories), with every visibility case and filter answer:

    svc1 hidden, svc2 inactive, svc3 defunct; loc4 confidential; loc0 at ZIP 20001's centroid,
    loc10 ~8 km away; adr9 and adr10 in 20002 and svc11's service area covers 20002; a second
    taxonomy: svc0 is tagged 'shelter' (a child of 'housing'), svc9 'housing'.
    """
    p = directory_package(12)
    rows = {table: {r["id"]: r for r in found} for table, found in p.rows.items()}
    rows["service"]["svc1"]["x_is_hidden"] = "true"
    rows["service"]["svc2"]["status"] = "inactive"
    rows["service"]["svc3"]["status"] = "defunct"
    rows["location"]["loc4"]["x_is_confidential"] = "true"
    rows["location"]["loc0"].update(latitude="38.9105", longitude="-77.0180")
    rows["location"]["loc10"].update(latitude="38.9500", longitude="-77.1000")
    for key in ("adr9", "adr10"):
        rows["address"][key]["postal_code"] = "20002"
    p.add("service_area", id="area11", service_id="svc11", name="20002")
    p.add("taxonomy", id="tx2", name="Local needs", description="Our own terms")
    p.add("taxonomy_term", id="housing", code="H", name="Housing", description="Housing",
          taxonomy_id="tx2", taxonomy="Local needs")
    p.add("taxonomy_term", id="shelter", code="H-1", name="Shelter",
          description="Emergency beds", parent_id="housing", taxonomy_id="tx2",
          taxonomy="Local needs")
    p.add("attribute", id="at-shelter", link_id="svc0", taxonomy_term_id="shelter",
          link_type="need", link_entity="service")
    p.add("attribute", id="at-housing", link_id="svc9", taxonomy_term_id="housing",
          link_type="need", link_entity="service")
    return p


def directory_ids(db: Database) -> dict[str, str]:
    """Source id -> directory id, over the tables the API serves."""
    found = {}
    with db.session() as session:
        for table in ("organization", "service", "location", "service_at_location",
                      "taxonomy", "taxonomy_term"):
            t = hsds_tables[table]
            found.update(dict(session.execute(select(t.c.record_source_id, t.c.id)).all()))
    return found


@pytest.fixture
def ids(db: Database, tmp_path: Path) -> dict[str, str]:
    """The package loaded, then: svc5 a duplicate of svc6, svc7 and org7 and loc8 inactive."""
    report = load(db, package().write(tmp_path / "pkg"), source="city")
    assert report.status == "done", report.problems
    found = directory_ids(db)
    service, organization = hsds_tables["service"], hsds_tables["organization"]
    location = hsds_tables["location"]
    with db.session(write=True) as session:
        session.execute(update(service).where(service.c.id == found["svc5"])
                        .values(duplicate_of=found["svc6"]))
        session.execute(update(service).where(service.c.id == found["svc7"])
                        .values(is_active=False))
        session.execute(update(organization).where(organization.c.id == found["org7"])
                        .values(is_active=False))
        session.execute(update(location).where(location.c.id == found["loc8"])
                        .values(is_active=False))
    return found


def app_client(settings: Settings, **changes: Any) -> TestClient:
    """A client of an app built with these settings changed."""
    from service.app import create_app
    return TestClient(create_app(settings.model_copy(update=changes)))


def get_ok(client: TestClient, path: str, **params: Any) -> Any:
    """The JSON body of a 200 answer."""
    response = client.get(path, params=params)
    assert response.status_code == 200, (path, params, response.text)
    return response.json()


def walk(client: TestClient, path: str, **params: Any) -> Iterator[dict[str, Any]]:
    """Every page of a list, checking the envelope's flags on the way."""
    number = 1
    while True:
        body = get_ok(client, path, page=number, **params)
        assert body["page_number"] == number and body["first_page"] == (number == 1)
        assert body["size"] == len(body["contents"])
        assert body["last_page"] == (number >= body["total_pages"])
        yield body
        if body["last_page"]:
            return
        number += 1


def source_ids(client: TestClient, path: str, **params: Any) -> list[str]:
    """The x_source_id of every item of the first page (per_page 1000)."""
    return [i["x_source_id"] for i in get_ok(client, path, per_page=1000,
                                              **params)["contents"]]


VISIBLE_SERVICES = ["svc0", "svc4", "svc6", "svc8", "svc9", "svc10", "svc11"]
VISIBLE_SITES = ["sal0", "sal4", "sal6", "sal9", "sal10", "sal11"]


# --- schemas -------------------------------------------------------------------------------


def test_every_answer_validates_against_hsds(ids: dict[str, str], client: TestClient) -> None:
    assert check_everything(client, sample=20) > 60


def test_the_validator_rejects_a_missing_required_field(ids: dict[str, str],
                                                        client: TestClient) -> None:
    body = get_ok(client, "/hsds/services")
    assert page_errors(body, "service_list") == []
    item = {k: v for k, v in body["contents"][0].items() if k != "name"}
    assert any("'name' is a required property" in e for e in schema_errors("service_list", item))
    assert page_errors({k: v for k, v in body.items() if k != "empty"}, "service_list")
    full = get_ok(client, f"/hsds/services/{ids['svc0']}")
    del full["status"]
    assert any("'status' is a required property" in e for e in schema_errors("service", full))
    term = get_ok(client, f"/hsds/taxonomy_terms/{ids['food']}")
    del term["description"]
    assert schema_errors("taxonomy_term", term)
    site = get_ok(client, "/hsds/service_at_locations")["contents"][0]
    del site["location"]["location_type"]
    assert schema_errors("service_at_location_list", site)


@pytest.mark.shared
@pytest.mark.slow
def test_the_miami_211_import_validates(sqlite_db: Database, tmp_path: Path) -> None:
    report = load(sqlite_db, DATASETS / "hsds_open211_miami", source="miami_211")
    assert report.status == "done"
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with app_client(settings) as client:
        assert check_everything(client, sample=10) > 10000
        near = get_ok(client, "/hsds/service_at_locations", postcode="33130", proximity="2000",
                      full="true", per_page=50)
        assert near["total_items"] > 0 and page_errors(near, "service_at_location") == []


@pytest.mark.slow
def test_the_bundled_demo_directory_validates(sqlite_db: Database, tmp_path: Path) -> None:
    from indexer.demo import DEMO_DIR, manifest

    # The DC-area lists of the demo (the national ones are the same loaders at larger size).
    for entry in manifest()["files"]:
        if entry["source"].startswith(("dc_dhs", "usda_snap")):
            report = load(sqlite_db, DEMO_DIR / entry["path"],
                          format=f"flat:{entry['source']}", source=entry["source"])
            assert report.status == "done"
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=True,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with app_client(settings) as client:
        assert check_everything(client, sample=10) > 1000


def test_the_root_links_the_profile(client: TestClient) -> None:
    body = get_ok(client, "/hsds/")
    assert body["version"] == "3.1" and root_errors(body) == []
    assert body["openapi_url"].endswith("/openapi.json")
    profile = client.get(body["profile"])
    assert profile.status_code == 200 and profile.headers["content-type"].startswith(
        "text/markdown")
    assert "x_is_confidential" in profile.text
    assert "/hsds/services" in client.get(body["openapi_url"]).json()["paths"]


# --- filters -------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "params", "expected"), [
    ("/hsds/services", {}, VISIBLE_SERVICES),
    ("/hsds/services", {"search": "pantry 1"}, ["svc10", "svc11"]),
    ("/hsds/services", {"search": "FOOD   pantry 0"}, ["svc0", "svc10"]),
    ("/hsds/services", {"search": "groceries weekly"}, []),
    ("/hsds/services", {"search": "100%"}, []),
    ("/hsds/services", {"search": " \r\t"}, VISIBLE_SERVICES),  # only spaces: no filter
    ("/hsds/services", {"taxonomy_term_id": "food"}, VISIBLE_SERVICES),
    ("/hsds/services", {"taxonomy_term_id": "shelter"}, ["svc0"]),
    ("/hsds/services", {"taxonomy_id": "tx2"}, ["svc0", "svc9"]),
    ("/hsds/services", {"taxonomy_id": "tx2", "taxonomy_term_id": "housing"}, ["svc9"]),
    ("/hsds/services", {"taxonomy_term_id": "no-such-term"}, []),
    ("/hsds/services", {"organization_id": "org4"}, ["svc4"]),
    ("/hsds/services", {"organization_id": "org1"}, []),
    ("/hsds/services", {"modified_after": "2000-01-01T00:00:00Z"}, VISIBLE_SERVICES),
    ("/hsds/services", {"modified_after": "2999-01-01"}, []),
    ("/hsds/service_at_locations", {}, VISIBLE_SITES),
    ("/hsds/service_at_locations", {"search": "site 1"}, ["sal10", "sal11"]),
    ("/hsds/service_at_locations", {"taxonomy_term_id": "shelter"}, ["sal0"]),
    ("/hsds/service_at_locations", {"taxonomy_id": "tx2"}, ["sal0", "sal9"]),
    ("/hsds/service_at_locations", {"organization_id": "org6"}, ["sal6"]),
    ("/hsds/service_at_locations", {"postcode": "20001"}, ["sal0", "sal4", "sal6", "sal11"]),
    ("/hsds/service_at_locations", {"postcode": "20002"}, ["sal9", "sal10", "sal11"]),
    ("/hsds/service_at_locations", {"postcode": "20002-1234"}, ["sal9", "sal10", "sal11"]),
    ("/hsds/service_at_locations", {"postcode": "90210"}, []),
    ("/hsds/service_at_locations", {"postcode": "20001", "proximity": "500"}, ["sal0"]),
    ("/hsds/service_at_locations", {"postcode": "20001", "proximity": "1900"},
     ["sal0", "sal4", "sal6", "sal9"]),
    ("/hsds/service_at_locations", {"postcode": "20001", "proximity": "3000"},
     ["sal0", "sal4", "sal6", "sal9", "sal11"]),
    ("/hsds/service_at_locations", {"postcode": "20001", "proximity": "20000"},
     ["sal0", "sal4", "sal6", "sal9", "sal11", "sal10"]),
    ("/hsds/organizations", {}, [f"org{i}" for i in range(12) if i != 7]),
    ("/hsds/organizations", {"search": "organization 1"}, ["org1", "org10", "org11"]),
    ("/hsds/organizations", {"taxonomy_term_id": "shelter"}, ["org0"]),
    ("/hsds/organizations", {"taxonomy_id": "tx2"}, ["org0", "org9"]),
    ("/hsds/taxonomies", {}, ["tx", "tx2"]),
    ("/hsds/taxonomies", {"search": "local"}, ["tx2"]),
    ("/hsds/taxonomy_terms", {}, ["food", "housing", "shelter"]),
    ("/hsds/taxonomy_terms", {"taxonomy_id": "tx2"}, ["housing", "shelter"]),
    ("/hsds/taxonomy_terms", {"parent_id": "housing"}, ["shelter"]),
    ("/hsds/taxonomy_terms", {"top_only": "true"}, ["food", "housing"]),
    ("/hsds/taxonomy_terms", {"search": "h-1"}, ["shelter"]),
])
def test_filters_have_known_answers(ids: dict[str, str], client: TestClient, path: str,
                                    params: dict[str, str], expected: list[str]) -> None:
    params = {k: ids.get(v, v) if k.endswith("_id") else v for k, v in params.items()}
    found = source_ids(client, path, **params)
    if "proximity" in params:
        assert found == expected  # nearest first
    else:
        assert sorted(found) == sorted(expected)
        assert found == [k for k in sorted(found, key=lambda k: ids[k])]  # by id


def test_minimal_and_full_services(ids: dict[str, str], client: TestClient) -> None:
    minimal = get_ok(client, "/hsds/services", minimal="true")["contents"]
    assert {tuple(sorted(i)) for i in minimal} == {("id", "modified_date", "name", "status")}
    assert all(i["modified_date"].endswith("Z") for i in minimal)
    full = get_ok(client, "/hsds/services", full="true")["contents"]
    assert [i["id"] for i in full] == [i["id"] for i in minimal]
    assert all("service_at_locations" in i and "phones" in i for i in full)
    org = get_ok(client, f"/hsds/organizations/{ids['org0']}")
    assert [s["id"] for s in org["services"]] == [ids["svc0"]]
    assert "phones" not in org["services"][0]
    org_full = get_ok(client, f"/hsds/organizations/{ids['org0']}", full_service="true")
    assert org_full["services"][0]["phones"][0]["number"] == "202-555-0100"
    assert get_ok(client, f"/hsds/organizations/{ids['org1']}")["services"] == []  # hidden
    term = get_ok(client, f"/hsds/taxonomy_terms/{ids['shelter']}")
    assert term["taxonomy_detail"]["name"] == "Local needs"


@pytest.mark.parametrize(("query", "status", "field"), [
    ("proximity=1000", 400, "proximity"),
    ("postcode=20001&proximity=far", 400, "proximity"),
    ("postcode=20001&proximity=-5", 400, "proximity"),
    ("postcode=not-a-place-at-all&proximity=1000", 400, "postcode"),
    ("page=0", 422, "page"),
    ("per_page=1001", 422, "per_page"),
    ("modified_after=yesterday", 422, "modified_after"),
    ("format=xml", 422, "format"),
])
def test_bad_parameters_name_the_field(client: TestClient, query: str, status: int,
                                       field: str) -> None:
    response = client.get(f"/hsds/service_at_locations?{query}")
    assert response.status_code == status
    assert response.json()["error"]["field"] == field


@pytest.mark.parametrize("path", ["/hsds/services", "/hsds/service_at_locations",
                                  "/hsds/organizations"])
def test_modified_after_at_the_ends_of_time(ids: dict[str, str], client: TestClient,
                                            path: str) -> None:
    """Found by fuzzing: a time within a day of year 1 or 9999 could not be turned into UTC
    (a 500); it now means "everything" or "nothing"."""
    everything = get_ok(client, path, per_page=1000)["total_items"]
    early = client.get(path, params={"modified_after": "0001-01-01T00:00:00+00:01"})
    assert early.status_code == 200 and early.json()["total_items"] == everything
    late = client.get(path, params={"modified_after": "9999-12-31T23:59:59-00:01"})
    assert late.status_code == 200 and late.json()["total_items"] == 0


# --- paging --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", list(LISTS))
def test_walking_the_pages_returns_every_item_once(ids: dict[str, str], client: TestClient,
                                                   path: str) -> None:
    everything = [i["id"] for i in get_ok(client, path, per_page=1000)["contents"]]
    for per_page in (1, 2, 5):
        pages = list(walk(client, path, per_page=per_page))
        seen = [i["id"] for body in pages for i in body["contents"]]
        assert seen == everything
        assert {b["total_items"] for b in pages} == {len(everything)}
        assert len(pages) == pages[0]["total_pages"] == -(-len(everything) // per_page)
        assert not any(b["empty"] for b in pages)
    beyond = get_ok(client, path, page=99, per_page=5)
    assert beyond["empty"] and beyond["contents"] == [] and beyond["size"] == 0
    assert beyond["last_page"] and not beyond["first_page"]
    lines = client.get(path, params={"format": "ndjson", "per_page": 1})
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [json.loads(line)["id"] for line in lines.text.splitlines()] == everything


def test_an_empty_directory_has_an_empty_first_page(client: TestClient) -> None:
    body = get_ok(client, "/hsds/services")
    assert body == {"total_items": 0, "total_pages": 0, "page_number": 1, "size": 0,
                    "first_page": True, "last_page": True, "empty": True, "contents": []}
    assert page_errors(body, "service_list") == []
    assert client.get("/hsds/services", params={"format": "ndjson"}).text == ""


# --- modified_after ------------------------------------------------------------------------


def test_modified_after_returns_exactly_the_edited_services(ids: dict[str, str], db: Database,
                                                            client: TestClient) -> None:
    before = datetime.now(UTC)
    assert source_ids(client, "/hsds/services", modified_after=before.isoformat()) == []
    time.sleep(0.01)
    with db.session(write=True) as session:
        apply_local_edit(session, table="service", record_id=ids["svc4"],
                         changes={"description": "Groceries twice a week"}, edited_by="partner")
        apply_local_edit(session, table="location", record_id=ids["loc9"],
                         changes={"transportation": "Bus 42"}, edited_by="partner")
    since = before.isoformat()
    assert sorted(source_ids(client, "/hsds/services", modified_after=since)) == ["svc4",
                                                                                  "svc9"]
    assert sorted(source_ids(client, "/hsds/service_at_locations",
                             modified_after=since)) == ["sal4", "sal9"]
    assert sorted(source_ids(client, "/hsds/organizations", modified_after=since)) == [
        "org4", "org9"]  # a service of org4, a location of org9
    naive = before.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert sorted(source_ids(client, "/hsds/services", modified_after=naive)) == ["svc4",
                                                                                  "svc9"]
    minimal = {i["id"]: i for i in get_ok(client, "/hsds/services", minimal="true",
                                          modified_after=since)["contents"]}
    edited = datetime.fromisoformat(minimal[ids["svc4"]]["modified_date"].replace("Z",
                                                                                  "+00:00"))
    assert edited >= before
    assert get_ok(client, f"/hsds/services/{ids['svc4']}")["description"] == (
        "Groceries twice a week")


# --- visibility ----------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "key"), [
    ("/hsds/services", "svc1"),  # hidden
    ("/hsds/services", "svc2"),  # status inactive
    ("/hsds/services", "svc3"),  # status defunct
    ("/hsds/services", "svc5"),  # a duplicate of svc6
    ("/hsds/services", "svc7"),  # no longer in its source
    ("/hsds/service_at_locations", "sal1"),
    ("/hsds/service_at_locations", "sal5"),
    ("/hsds/service_at_locations", "sal8"),  # its location is inactive
    ("/hsds/organizations", "org7"),
    ("/hsds/services", "no-such-id"),
    ("/hsds/taxonomies", "no-such-id"),
    ("/hsds/taxonomy_terms", "no-such-id"),
])
def test_unlisted_records_are_not_found(ids: dict[str, str], client: TestClient, path: str,
                                        key: str) -> None:
    response = client.get(f"{path}/{ids.get(key, key)}")
    assert response.status_code == 404
    assert response.json()["error"]["field"] == "id"
    assert ids.get(key, key) not in client.get(path, params={"format": "ndjson"}).text


def test_a_duplicate_names_the_kept_service(ids: dict[str, str], client: TestClient) -> None:
    message = client.get(f"/hsds/services/{ids['svc5']}").json()["error"]["message"]
    assert ids["svc6"] in message


def test_inactive_sites_are_not_nested(ids: dict[str, str], client: TestClient) -> None:
    assert get_ok(client, f"/hsds/services/{ids['svc8']}")["service_at_locations"] == []
    assert ids["loc8"] not in [loc["id"] for loc in get_ok(
        client, f"/hsds/organizations/{ids['org8']}")["locations"]]
    listed = {i["id"] for i in get_ok(client, "/hsds/services", full="true")["contents"]}
    assert ids["svc1"] not in listed and ids["svc8"] in listed


def test_confidential_locations_have_no_street_and_a_coarse_point(
        ids: dict[str, str], client: TestClient) -> None:
    site = next(i for i in get_ok(client, "/hsds/service_at_locations")["contents"]
                if i["x_source_id"] == "sal4")
    loc = site["location"]
    assert loc["x_is_confidential"] is True
    assert (loc["latitude"], loc["longitude"]) == (round(loc["latitude"], 2),
                                                   round(loc["longitude"], 2))
    docs = [get_ok(client, f"/hsds/services/{ids['svc4']}")["service_at_locations"][0]
            ["location"],
            get_ok(client, f"/hsds/service_at_locations/{ids['sal4']}")["location"],
            get_ok(client, f"/hsds/organizations/{ids['org4']}")["locations"][0]]
    for doc in docs:
        assert doc["addresses"] and all(a["address_1"] == "" and not a.get("address_2")
                                        for a in doc["addresses"])
        assert doc["addresses"][0]["postal_code"] == "20001"
        assert doc["latitude"] == round(doc["latitude"], 2)
    for path in ("/hsds/services", "/hsds/service_at_locations", "/hsds/organizations"):
        assert "104 Main St" not in client.get(path, params={"format": "ndjson",
                                                             "full": "true"}).text
    assert "100 Main St NW" in client.get(f"/hsds/services/{ids['svc0']}").text


# --- token, rate limit, caching ------------------------------------------------------------


def test_a_token_when_set_is_required(ids: dict[str, str], settings: Settings) -> None:
    with app_client(settings, hsds_api_token="s3cret-token") as client:
        for path in ("/hsds/", "/hsds/services", f"/hsds/services/{ids['svc0']}"):
            missing = client.get(path)
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert missing.json()["error"]["code"] == "unauthorized"
            wrong = client.get(path, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401 and "invalid_token" in wrong.headers[
                "www-authenticate"]
            right = client.get(path, headers={"Authorization": "Bearer s3cret-token"})
            assert right.status_code == 200
            assert right.headers["cache-control"].startswith("private")
        assert client.get("/api/v1/services").status_code == 200  # only /hsds/ is guarded


def test_public_by_default(client: TestClient) -> None:
    response = client.get("/hsds/services")
    assert response.status_code == 200 and response.headers["cache-control"].startswith(
        "public")
    assert "x-signpost-notice" not in response.headers


def test_demo_data_is_said_in_a_header(settings: Settings) -> None:
    with app_client(settings, demo_notice=True) as client:
        assert "Do not use them for real referrals" in client.get("/hsds/").headers[
            "x-signpost-notice"]


def test_the_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    with app_client(settings, hsds_rate_limit_per_minute=3) as client:
        assert [client.get("/hsds/").status_code for _ in range(3)] == [200] * 3
        refused = client.get("/hsds/services")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert client.get("/health").status_code == 200  # only /hsds/ is limited
    with app_client(settings, hsds_rate_limit_per_minute=0) as client:
        assert {client.get("/hsds/").status_code for _ in range(5)} == {200}


def test_the_rate_limiter_refills_and_counts_each_client() -> None:
    limiter = RateLimiter(3)
    assert [limiter.wait("a", now=100.0) for _ in range(3)] == [0, 0, 0]
    assert limiter.wait("a", now=100.0) == pytest.approx(20.0)
    assert limiter.wait("b", now=100.0) == 0
    assert limiter.wait("a", now=110.0) == pytest.approx(10.0)
    assert limiter.wait("a", now=120.5) == 0
    assert limiter.wait("a", now=120.5) > 0
    crowded = RateLimiter(60, max_clients=2)
    for name in ("x", "y", "z"):
        crowded.wait(name, now=0.0)
    crowded.wait("w", now=120.0)
    assert len(crowded._buckets) <= 2


def test_etags_and_last_modified_give_304s(ids: dict[str, str], db: Database,
                                           client: TestClient) -> None:
    paths = ["/hsds/", "/hsds/services", f"/hsds/services/{ids['svc0']}",
             "/hsds/taxonomy_terms?top_only=true", "/hsds/services?format=ndjson"]
    first = {path: client.get(path) for path in paths}
    for path, response in first.items():
        tag, modified = response.headers["etag"], response.headers["last-modified"]
        again = client.get(path, headers={"If-None-Match": tag})
        assert again.status_code == 304 and again.content == b""
        assert again.headers["etag"] == tag
        assert client.get(path, headers={"If-None-Match": f'W/{tag}, "other"'}
                          ).status_code == 304
        assert client.get(path, headers={"If-Modified-Since": modified}).status_code == 304
        old = format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)
        assert client.get(path, headers={"If-Modified-Since": old}).status_code == 200
        assert client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert len({r.headers["etag"] for r in first.values()}) == len(paths)
    assert client.get("/hsds/services?per_page=5&page=1").headers["etag"] == client.get(
        "/hsds/services?page=1&per_page=5").headers["etag"]
    with db.session(write=True) as session:
        apply_local_edit(session, table="service", record_id=ids["svc6"],
                         changes={"name": "Food Pantry Six"}, edited_by="partner")
    for path, response in first.items():
        after = client.get(path, headers={"If-None-Match": response.headers["etag"]})
        assert after.status_code == 200 and after.headers["etag"] != response.headers["etag"]
    assert "Food Pantry Six" in client.get("/hsds/services").text
