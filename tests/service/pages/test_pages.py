"""The server-rendered pages through the app (no browser): search, detail, headers, static."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from service.pages.services import back_query, detail
from tests.factories import search_package

HTML = {"accept": "text/html"}


@pytest.fixture
def web(sqlite_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    package = search_package()
    package.add("organization", id="org-x", name="<i>Org</i>", description="Provider")
    package.add("service", id="x", organization_id="org-x", name="<script>alert(1)</script>",
                description="Warm winter coats", status="active", url="javascript:alert(2)")
    package.add("location", id="loc-x", organization_id="org-x", name="Site",
                location_type="physical", latitude=38.93, longitude=-77.04)
    package.add("service_at_location", id="sal-x", service_id="x", location_id="loc-x")
    load(sqlite_db, package.write(tmp_path / "pkg"), source="city")
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=True,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with TestClient(create_app(settings)) as client:
        yield client


def card_names(html: str) -> list[str]:
    return re.findall(r'class="result-link" href="[^"]*">([^<]*)</a>', html)


def test_search_page_lists_results_with_distance_reasons_and_cautions(web: TestClient) -> None:
    response = web.get("/search", params={"q": "food pantry", "near": "20001", "age": "",
                                          "gender": "", "language": ""}, headers=HTML)
    assert response.status_code == 200
    html = response.text
    assert card_names(html) == ["Capitol Food Pantry", "Anacostia Food Pantry",
                                "Bethesda Food Pantry"]
    assert '<dd class="distance">0.3 mi</dd>' in html
    assert "Offers Food Pantry" in html and "Eligibility not stated" in html
    assert "Demo data" in html


def test_the_empty_form_searches_nothing(web: TestClient) -> None:
    response = web.get("/search")
    assert response.status_code == 200
    assert 'id="need"' in response.text and "ol class=\"cards\"" not in response.text


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "food", "near": "Nowhere, ZZ"}, "could not place"),
    ({"q": "food", "age": "old"}, "Age must be a whole number"),
])
def test_bad_input_is_explained_on_the_form(web: TestClient, params: dict, message: str) -> None:
    response = web.get("/search", params=params, headers=HTML)
    assert response.status_code == 400
    assert message in response.text and 'role="alert"' in response.text
    assert f'value="{params["q"]}"' in response.text  # what was typed is kept


def test_filters_and_profile_reach_the_search(web: TestClient) -> None:
    html = web.get("/search", params={"q": "shelter", "near": "20001", "age": "15",
                                      "gender": "female"}).text
    names = card_names(html)
    assert "Youth Shelter" in names and "Adult Men's Shelter" not in names
    only_free = card_names(web.get("/search", params={"q": "food pantry", "near": "20001",
                                                       "cost": "free"}).text)
    assert only_free == ["Capitol Food Pantry"]


def test_paging_links_keep_the_question(web: TestClient) -> None:
    html = web.get("/search", params={"near": "20001", "radius_mi": "50"}).text
    assert 'rel="next" href="?near=20001&amp;radius_mi=50&amp;page=2"' in html
    second = web.get("/search", params={"near": "20001", "radius_mi": "50", "page": "2"}).text
    assert 'rel="prev" href="?near=20001&amp;radius_mi=50"' in second
    assert set(card_names(html)).isdisjoint(card_names(second))


def test_hostile_listing_text_is_escaped(web: TestClient) -> None:
    html = web.get("/search", params={"q": "winter coats"}).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert" not in html and "<i>Org</i>" not in html
    link = re.search(r'class="result-link" href="([^"]*)"', html).group(1)
    page = web.get(link.replace("&amp;", "&")).text
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
    assert "javascript:" not in page  # a non-web URL is never a link


def test_detail_page_shows_what_to_check_before_a_referral(web: TestClient) -> None:
    html = web.get("/search", params={"q": "food pantry", "near": "20001"}).text
    link = re.search(r'class="result-link" href="([^"]*)"', html).group(1).replace("&amp;", "&")
    page = web.get(link, headers=HTML)
    assert page.status_code == 200
    for text in ("Daily 24 hours", 'href="tel:2025550100"', "English, Spanish", "Has capacity",
                 "Not verified", "None listed", "No conditions listed",
                 'href="http://testserver/search?q=food+pantry&amp;near=20001">Back to results'):
        assert text in page.text, text


def test_unknown_service_is_a_404_page(web: TestClient) -> None:
    response = web.get("/services/nope", headers=HTML)
    assert response.status_code == 404 and "<h1>We couldn't find that page</h1>" in response.text


def test_html_responses_carry_security_headers(web: TestClient) -> None:
    for path in ("/", "/search", "/services/nope"):
        headers = web.get(path, headers=HTML).headers
        policy = headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
        assert "unsafe-inline" not in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
    api = web.get("/api/v1/services").headers
    assert api["x-content-type-options"] == "nosniff" and "content-security-policy" not in api
    assert web.get("/docs").headers["content-security-policy"] == "frame-ancestors 'none'"


def test_pages_use_no_inline_script_or_style(web: TestClient) -> None:
    for path in ("/", "/search?q=food+pantry&near=20001"):
        html = web.get(path).text
        assert "<style" not in html and " style=" not in html
        assert re.findall(r"<script(?![^>]*\bsrc=)", html) == []


def test_static_files_are_served_by_the_app(web: TestClient) -> None:
    css = web.get("/static/app.css")
    assert css.status_code == 200 and "@media print" in css.text
    assert web.get("/static/app.js").status_code == 200
    assert web.get("/static/missing.js").status_code == 404


def test_back_query_keeps_only_search_fields() -> None:
    assert back_query("q=food&near=20001&evil=%22%3E&page=2") == "q=food&near=20001&page=2"
    assert back_query("") == ""


def test_detail_handles_a_bare_listing() -> None:
    from datetime import UTC, datetime

    view = detail({"id": "s", "name": "Bare", "minimum_age": 18,
                   "x_verified_at": "2024-03-05T00:00:00Z"}, datetime.now(UTC))
    assert view["ages"] == "Ages 18 and older" and view["verified"] == "March 5, 2024"
    assert view["open_status"] == "unknown" and view["sites"] == [] and view["phones"] == []
