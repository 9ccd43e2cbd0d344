"""Search on the embedded engine: known answers, eligibility, reasons, bad input, freshness."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.geocode import GeoTables, distance_mi
from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from service.search.sqlite import SqliteSearchBackend
from tests.factories import rename_listing, search_package


def names(response) -> list[str]:  # noqa: ANN001
    assert response.status_code == 200, response.text
    return [r["name"] for r in response.json()["results"]]


KNOWN_ANSWERS = [
    # (query parameters, expected names in order; "..." allows others after)
    ({"q": "food pantry", "near": "20001", "radius_mi": 10},
     ["Capitol Food Pantry", "Anacostia Food Pantry", "Bethesda Food Pantry"]),
    ({"q": "food pantry", "near": "20001", "radius_mi": 3},
     ["Capitol Food Pantry"]),
    ({"q": "rehab", "near": "20001"}, ["Riverside Detox Center", "Metro Methadone Clinic"]),
    ({"q": "substance use", "near": "20001"},
     ["Riverside Detox Center", "Metro Methadone Clinic"]),
    ({"q": "suboxone", "near": "20001"}, ["Metro Methadone Clinic", "Riverside Detox Center"]),
    ({"q": "pantry", "near": "20001", "radius_mi": 1}, ["Capitol Food Pantry"]),
    ({"q": "party supplies", "near": "20001"}, ["Neighborhood Party Supplies"]),
    ({"category": "1130", "near": "20001", "sort": "distance", "radius_mi": 10},
     ["Capitol Food Pantry", "Anacostia Food Pantry", "Bethesda Food Pantry"]),
]


@pytest.mark.parametrize(("params", "expected"), KNOWN_ANSWERS,
                         ids=[str(p) for p, _ in KNOWN_ANSWERS])
def test_known_answers(api: TestClient, params: dict, expected: list[str]) -> None:
    assert names(api.get("/api/v1/search", params=params)) == expected


def test_results_carry_distance_ids_and_sources(api: TestClient) -> None:
    body = api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"}).json()
    first = body["results"][0]
    centre = GeoTables.default().zip("20001")
    miles = distance_mi(centre.lat, centre.lon, 38.915, -77.020)
    assert first["distance_mi"] == pytest.approx(miles, abs=0.01)
    assert first["source"] == "city" and first["source_id"] == "pantry-near"
    assert first["location_source_id"] == "loc-pantry-near"
    assert first["phones"][0]["number"] == "202-555-0100"
    assert first["categories"] == ["1130"]
    assert first["open_status"] == "open"
    assert {"code": "distance", "params": {"miles": round(miles, 1)},
            "text": f"{miles:.1f} mi away"} in first["reasons"]
    assert body["total"] == 3 and body["pages"] == 1


def test_misspelling_finds_shelters_and_pantry_never_finds_party(api: TestClient) -> None:
    found = names(api.get("/api/v1/search", params={"q": "shleter", "near": "20001"}))
    assert "Adult Men's Shelter" in found and "Youth Shelter" in found
    assert "Night Shleter Project" in names(
        api.get("/api/v1/search", params={"q": "shelter beds", "near": "20001"}))
    assert "Neighborhood Party Supplies" not in names(
        api.get("/api/v1/search", params={"q": "pantry", "near": "20001"}))


def test_a_17_year_old_is_not_matched_to_an_adults_only_shelter(api: TestClient) -> None:
    adult = names(api.get("/api/v1/search", params={"q": "shelter", "near": "20001", "age": 30}))
    assert "Adult Men's Shelter" in adult and "Youth Shelter" not in adult
    minor = names(api.get("/api/v1/search", params={"q": "shelter", "near": "20001", "age": 17}))
    assert "Youth Shelter" in minor and "Adult Men's Shelter" not in minor
    woman = names(api.get("/api/v1/search", params={"q": "shelter", "near": "20001",
                                                   "age": 30, "gender": "female"}))
    assert "Adult Men's Shelter" not in woman
    man = names(api.get("/api/v1/search", params={"q": "shelter", "near": "20001",
                                                 "age": 30, "gender": "male"}))
    assert "Adult Men's Shelter" in man
    assert "Women's Night Shelter" not in man  # "male" is inside "female": no false match
    assert "Women's Night Shelter" in woman
    unknown = names(api.get("/api/v1/search", params={"q": "shelter", "near": "20001"}))
    assert {"Adult Men's Shelter", "Youth Shelter"} <= set(unknown)  # nothing left out


def test_near_misses_name_the_bound_they_missed(api: TestClient) -> None:
    body = api.post("/api/v1/search", json={
        "q": "shelter", "near": "20001", "radius_mi": 5, "client": {"age": 30},
        "include_near_misses": True}).json()
    misses = {m["result"]["name"]: m["missed"] for m in body["near_misses"]}
    assert misses["Youth Shelter"][0]["code"] == "age"
    assert misses["Youth Shelter"][0]["text"] == "ages 12-17; client 30"
    far = api.post("/api/v1/search", json={
        "q": "food pantry", "near": "20001", "radius_mi": 3, "include_near_misses": True}).json()
    missed = {m["result"]["name"]: m["missed"][0] for m in far["near_misses"]}
    assert missed["Anacostia Food Pantry"]["code"] == "distance"
    assert missed["Anacostia Food Pantry"]["text"].endswith("mi, beyond 3")


def test_a_statewide_hotline_appears_for_any_address_in_its_state(api: TestClient) -> None:
    for near in ("33125", "Tallahassee, FL", "32801"):
        found = names(api.get("/api/v1/search", params={"q": "crisis counseling",
                                                        "near": near}))
        assert "Florida Crisis Hotline" in found, near
    assert "Florida Crisis Hotline" not in names(
        api.get("/api/v1/search", params={"q": "crisis counseling", "near": "20001"}))


def test_reasons_and_cautions_change_with_the_client(api: TestClient) -> None:
    plain = api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"}).json()
    spanish = api.get("/api/v1/search", params={"q": "food pantry", "near": "20001",
                                                "language": "es"}).json()
    codes = lambda r: {n["code"] for n in r["results"][0]["reasons"]}  # noqa: E731
    assert "language" not in codes(plain) and "language" in codes(spanish)
    shelter = api.get("/api/v1/search", params={"q": "shelter", "near": "20001",
                                                "age": 30}).json()["results"]
    adult = next(r for r in shelter if r["name"] == "Adult Men's Shelter")
    assert "age_fits" in {n["code"] for n in adult["reasons"]}
    assert "waitlist" in {n["code"] for n in adult["cautions"]}
    assert "hours_unknown" in {n["code"] for n in adult["cautions"]}


def test_do_not_refer_listings_are_left_out_unless_asked(api: TestClient) -> None:
    assert "Closed Intake Pantry" not in names(
        api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"}))
    body = api.post("/api/v1/search", json={"q": "food pantry", "near": "20001",
                                            "include_not_referable": True}).json()
    listed = next(r for r in body["results"] if r["name"] == "Closed Intake Pantry")
    assert "do_not_refer" in {c["code"] for c in listed["cautions"]}


def test_filters_and_facets(api: TestClient) -> None:
    body = api.get("/api/v1/search", params={"q": "food", "near": "20001", "cost": "free"}
                   ).json()
    assert [r["name"] for r in body["results"]] == ["Capitol Food Pantry"]
    body = api.get("/api/v1/search", params={"q": "food", "near": "20001", "radius_mi": 10}
                   ).json()
    food = next(f for f in body["facets"]["categories"] if f["value"] == "1102")
    assert food["count"] == 3
    open_now = api.get("/api/v1/search", params={"q": "food", "near": "20001",
                                                 "open_now": "true"}).json()
    assert [r["name"] for r in open_now["results"]] == ["Capitol Food Pantry"]


def test_paging_is_consistent(api: TestClient) -> None:
    seen = []
    for page in (1, 2, 3):
        body = api.get("/api/v1/search", params={"category": "1102", "near": "20001",
                                                 "radius_mi": 10, "per_page": 1,
                                                 "page": page}).json()
        assert body["total"] == 3
        seen += [r["service_id"] for r in body["results"]]
    assert len(seen) == len(set(seen)) == 3


@pytest.mark.parametrize(("params", "status", "field"), [
    ({"q": "food", "near": "99999"}, 400, "near"),
    ({"q": "food", "near": "abc"}, 400, "near"),
    ({"q": "food", "near": "20001", "radius_mi": -5}, 422, "radius_mi"),
    ({"q": "food", "near": "20001", "page": 10 ** 9}, 422, "page"),
    ({"q": "x" * 10000, "near": "20001"}, 422, "q"),
    ({"category": "no-such-category", "near": "20001"}, 400, "category"),
    ({"q": "food", "age": -1}, 422, "age"),
])
def test_bad_input_gets_a_4xx_naming_the_field(api: TestClient, params: dict, status: int,
                                               field: str) -> None:
    response = api.get("/api/v1/search", params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field


def test_an_edit_shows_in_search_at_once(directory: Database, api: TestClient) -> None:
    rename_listing(directory, "pantry-far", "Anacostia Community Pantry")
    assert "Anacostia Community Pantry" in names(
        api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"}))


def test_rebuild_keeps_every_document(directory: Database) -> None:
    backend = SqliteSearchBackend(directory)
    before = backend.count()
    assert before == 12
    assert backend.rebuild() == before
    assert backend.count() == before


def test_a_rebuild_leaves_its_full_text_index_merging_segments_as_edits_come(
        directory: Database) -> None:
    """A rebuild merges its new full-text index once, at the end, rather than as it grows;
    the index it swaps in merges the segments later edits write, as FTS5 does by default (a
    search seeks each word once per segment)."""
    backend = SqliteSearchBackend(directory)
    backend.rebuild()
    with directory.engine.connect() as conn:
        settings = dict(conn.exec_driver_sql("SELECT k, v FROM search_fts_config").all())
        merged = conn.exec_driver_sql(
            "SELECT count(DISTINCT segid) FROM search_fts_idx").scalar_one()
    assert settings.get("automerge", 4) == 4
    assert merged == 1


def _index_snapshot(db: Database) -> dict[str, list[tuple]]:
    with db.engine.connect() as conn:
        return {table: [tuple(r) for r in conn.exec_driver_sql(
                    f"SELECT * FROM {table} ORDER BY rowid")]
                for table in ("search_doc", "search_payload", "search_point")} | {
            "fts": [tuple(r) for r in conn.exec_driver_sql(
                "SELECT rowid, name, organization, body, tags FROM search_fts ORDER BY rowid")],
            "pantry": [tuple(r) for r in conn.exec_driver_sql(
                "SELECT rowid FROM search_fts WHERE search_fts MATCH 'pantry' ORDER BY rowid")]}


def test_a_rebuild_built_in_worker_processes_gives_the_same_index(
        directory: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large rebuild builds documents in other processes: the index it writes is the one a
    rebuild in this process writes, rowids included."""
    from service.search import sqlite

    backend = SqliteSearchBackend(directory)
    backend.rebuild()
    serial = _index_snapshot(directory)
    monkeypatch.setattr(sqlite, "PARALLEL_REBUILD_MIN", 1)
    monkeypatch.setattr(sqlite, "BUILD_CHUNK", 2)  # 12 services: six chunks to share out
    monkeypatch.setattr(sqlite, "REBUILD_BATCH", 5)  # three write transactions
    monkeypatch.setattr(sqlite.os, "cpu_count", lambda: 4)  # two workers even on one core
    assert backend.rebuild() == 12
    assert _index_snapshot(directory) == serial
    assert len(serial["search_doc"]) == 12 and serial["pantry"]


def test_an_edit_made_while_a_rebuild_runs_shows_after_the_swap(
        directory: Database, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partner's edit committed after the rebuild built that listing's document still
    shows once the new index replaces the old one."""
    from service.search import sqlite

    built = sqlite._place

    def place_then_edit(parts, path):  # noqa: ANN001, ANN202
        rename_listing(directory, "pantry-far", "Anacostia Community Pantry")
        return built(parts, path)

    monkeypatch.setattr(sqlite, "_place", place_then_edit)
    assert SqliteSearchBackend(directory).rebuild() == 12
    found = names(api.get("/api/v1/search", params={"q": "food pantry", "near": "20001"}))
    assert "Anacostia Community Pantry" in found
    assert "Anacostia Food Pantry" not in found
    with directory.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM search_doc").scalar_one() == 12
        assert not conn.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE name = "
                                        "'search_pending'").first()


def test_a_large_build_skips_only_the_links_no_row_uses(
        directory: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build of many services does not look services up in links no row uses (a directory
    without schedules, say): its documents are those built one service at a time."""
    from service.search import documents

    with directory.engine.connect() as conn:
        ids = sorted(conn.exec_driver_sql("SELECT id FROM service").scalars())
        one_by_one = [d for sid in ids for d in documents.build_documents(conn, [sid])]
        monkeypatch.setattr(documents, "BATCH", 2)  # 12 services: a large build
        unused = documents._unused_links(conn)
        batched = list(documents.build_documents(conn, ids))
        in_use = {(t, c) for t, c in documents.OPTIONAL_LINKS if conn.exec_driver_sql(
            f"SELECT 1 FROM {t} WHERE {c} IS NOT NULL").first()}
    assert batched == one_by_one and len(batched) == 12
    assert set(documents.OPTIONAL_LINKS) - in_use == unused
    assert ("phone", "service_id") in in_use and ("accessibility", "location_id") in unused
    assert any(d.phones for d in batched) and any(d.hours_known for d in batched)


def test_a_rebuilt_r_tree_holds_every_point_and_takes_later_edits(
        directory: Database) -> None:
    """The R*Tree a rebuild swaps in passes SQLite's own check, finds by box exactly the
    listings inside the box, and takes a later edit's point like any other."""
    backend = SqliteSearchBackend(directory)
    backend.rebuild()

    def inside(conn, box: tuple[float, float, float, float]) -> tuple[set, set]:  # noqa: ANN001
        by_tree = {r[0] for r in conn.exec_driver_sql(
            "SELECT rowid FROM search_point WHERE min_lat >= ? AND max_lat <= ? AND "
            "min_lon >= ? AND max_lon <= ?", box)}
        by_doc = {r[0] for r in conn.exec_driver_sql(
            "SELECT rowid FROM search_doc WHERE lat BETWEEN ? AND ? AND lon BETWEEN ? AND ?",
            box)}
        return by_tree, by_doc

    downtown = (38.905, 38.916, -77.025, -77.010)  # not Anacostia, Bethesda or the clinic
    with directory.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT rtreecheck('search_point')").scalar_one() == "ok"
        points = conn.exec_driver_sql("SELECT count(*) FROM search_point").scalar_one()
        located = conn.exec_driver_sql(
            "SELECT count(*) FROM search_doc WHERE lat IS NOT NULL").scalar_one()
        by_tree, by_doc = inside(conn, downtown)
    assert points == located == 11
    assert by_tree == by_doc and 0 < len(by_doc) < located
    rename_listing(directory, "pantry-far", "Anacostia Community Pantry")  # reindexed
    with directory.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT rtreecheck('search_point')").scalar_one() == "ok"
        assert conn.exec_driver_sql("SELECT count(*) FROM search_point").scalar_one() == 11
        by_tree, by_doc = inside(conn, downtown)
    assert by_tree == by_doc


def test_a_rebuild_places_the_documents_of_a_full_cell_elsewhere_and_finds_them_all(
        directory: Database, api: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A geohash cell's rowid range holds a fixed number of documents; those a rebuild cannot
    fit go above the area-wide listings, and searches still find every one."""
    from service.search import sqlite

    query = {"q": "food pantry", "near": "20001", "radius_mi": 10}
    before = names(api.get("/api/v1/search", params=query))
    monkeypatch.setattr(sqlite, "CELL_SEQ_BITS", 0)  # one document per cell
    backend = SqliteSearchBackend(directory)
    assert backend.rebuild() == 12
    with directory.engine.connect() as conn:
        rowids = [r[0] for r in conn.exec_driver_sql(
            "SELECT d.rowid FROM search_doc d JOIN search_point p ON p.rowid = d.rowid")]
        services_indexes = conn.exec_driver_sql(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = "
            "'search_doc' AND sql LIKE '%service_id%'").scalar_one()
    assert len(set(rowids)) == len(rowids) == 11  # every listing with a point
    assert any(r >= sqlite.OTHER_BASE for r in rowids)  # some shared a cell
    assert names(api.get("/api/v1/search", params=query)) == before
    assert services_indexes == 1


def test_suggest_and_categories(api: TestClient) -> None:
    suggestions = api.get("/api/v1/suggest", params={"q": "food pa"}).json()
    assert suggestions[0] == {"kind": "category", "id": "1130", "label": "Food Pantry"}
    assert any(s["label"] == "Capitol Food Pantry" for s in
               api.get("/api/v1/suggest", params={"q": "capitol"}).json())
    tree = api.get("/api/v1/categories").json()
    food = next(c for c in tree if c["id"] == "1102")
    assert food["count"] == 4  # four pantries, one of them not referable


def test_an_unknown_gender_is_a_422_naming_the_field(api: TestClient) -> None:
    response = api.get("/api/v1/search", params={"q": "food", "gender": "0000"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "gender"


def test_an_index_of_an_older_format_is_rebuilt(directory: Database) -> None:
    from service.config import Settings
    from service.search.service import ensure_current_index

    backend = SqliteSearchBackend(directory)
    assert backend.is_current()
    with directory.engine.connect() as conn:
        conn.execution_options(sqlite_write=True)
        conn.exec_driver_sql("UPDATE search_meta SET value = 1 WHERE key = 'format'")
        conn.commit()
    assert not backend.is_current()
    settings = Settings(database_url=str(directory.url), environment="test")
    assert ensure_current_index(settings, directory) == 12
    assert backend.is_current() and ensure_current_index(settings, directory) is None


def test_naming_no_language_earns_no_language_bonus(sqlite_db: Database,
                                                    tmp_path: Path) -> None:
    """Twins at one spot, one listing English and one naming no language: without a client
    language they score alike; with "en" the English one leads. (The embedded engine once gave
    the bonus to every listing naming no language when the client named none.)"""
    package = search_package()
    for key, languages in (("twin-none", ()), ("twin-en", ("en",))):
        package.add("organization", id=f"org-{key}", name=f"{key} Inc", description="Provider")
        package.add("service", id=key, organization_id=f"org-{key}", name="Twin Tax Help",
                    description="Free tax preparation", status="active", x_categories="1150")
        package.add("location", id=f"loc-{key}", organization_id=f"org-{key}", name="Site",
                    location_type="physical", latitude=38.913, longitude=-77.019)
        package.add("service_at_location", id=f"sal-{key}", service_id=key,
                    location_id=f"loc-{key}")
        for i, code in enumerate(languages):
            package.add("language", id=f"lang-{key}-{i}", service_id=key, code=code)
    load(sqlite_db, package.write(tmp_path / "pkg"), source="city")
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with TestClient(create_app(settings)) as client:
        def scores(**extra: str) -> dict[str, float]:
            answer = client.get("/api/v1/search", params={"category": "1150", "near": "20001",
                                                           **extra})
            assert answer.status_code == 200, answer.text
            return {r["source_id"]: r["score"] for r in answer.json()["results"]}

        plain = scores()
        assert plain["twin-none"] == plain["twin-en"]
        english = scores(language="en")
        assert english["twin-en"] > english["twin-none"]


def test_the_app_refuses_an_index_of_an_older_format(directory: Database,
                                                     tmp_path: Path) -> None:
    """Served directly (uvicorn) over an index an older version wrote, every search would be a
    500: the app refuses to start and says what to run; `ensure_current_index` (what `signpost
    serve` does first) rebuilds it and the app serves again."""
    from sqlalchemy import text

    from service.search.service import ensure_current_index
    from service.search.sqlite import INDEX_FORMAT

    settings = Settings(database_url=str(directory.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with directory.engine.begin() as conn:
        conn.execute(text("INSERT INTO search_meta VALUES ('format', :old) ON CONFLICT (key) "
                          "DO UPDATE SET value = excluded.value"), {"old": INDEX_FORMAT - 1})
    with pytest.raises(RuntimeError, match="signpost index rebuild"):
        with TestClient(create_app(settings)):
            pass
    assert ensure_current_index(settings, directory)
    with TestClient(create_app(settings)) as client:
        assert "Capitol Food Pantry" in names(client.get("/api/v1/search", params={
            "q": "food pantry", "near": "20001"}))
