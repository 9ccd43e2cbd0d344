"""A source's first import only adds rows, and takes two shortcuts: it inserts without checking
each row's parents again (the stage's references were checked), and builds its search documents
from its stage while it is applied (indexer.prebuild). The directory and the index it leaves are
the ones the long way gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from indexer import apply, prebuild
from indexer.pipeline import load
from service.db import Database
from service.directory.tables import service
from service.search import sqlite
from service.search.schemas import SearchQuery
from service.search.sqlite import SqliteSearchBackend
from tests.factories import Package, rename_listing, search_package
from tests.service.search.test_search import _index_snapshot


def _package_with_a_duplicate() -> Package:
    """The search directory, with the Capitol Food Pantry listed twice (the second copy is
    merged into the first by the duplicate check, after the documents were built)."""
    p = search_package()
    p.add("organization", id="org-copy", name="Capitol Food Pantry Inc", description="Provider")
    p.add("service", id="pantry-copy", organization_id="org-copy", name="Capitol Food Pantry",
          description="Free groceries", status="active", x_categories="1130")
    p.add("location", id="loc-copy", organization_id="org-copy", name="Capitol Food Pantry",
          location_type="physical", latitude=38.915, longitude=-77.020)
    p.add("service_at_location", id="sal-copy", service_id="pantry-copy", location_id="loc-copy")
    p.add("address", id="adr-copy", location_id="loc-copy", address_1="1 Main Street",
          city="Washington", state_province="DC", postal_code="20001", country="US",
          address_type="physical")
    return p


@pytest.fixture
def watched(monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """Prebuild from one service up, in a worker process even here; records what was built
    where."""
    seen: dict[str, list] = {"started": [], "from_directory": []}
    monkeypatch.setattr(prebuild, "MIN_SERVICES", 1)
    monkeypatch.setattr(prebuild, "BUILD_CHUNK", 3)
    start = prebuild.StageDocuments.start.__func__

    def spy_start(cls, stage, now):  # noqa: ANN001, ANN202
        seen["started"].append(stage.count("service"))
        return start(cls, stage, now)

    monkeypatch.setattr(prebuild.StageDocuments, "start", classmethod(spy_start))
    build_parts = sqlite._build_parts

    def spy_build(db, ids, scratch):  # noqa: ANN001, ANN202
        seen["from_directory"].append(sorted(ids))
        return build_parts(db, ids, scratch)

    monkeypatch.setattr(sqlite, "_build_parts", spy_build)
    return seen


def _service_id(db: Database, source_id: str) -> str:
    with db.session() as session:
        return session.execute(select(service.c.id).where(
            service.c.record_source_id == source_id)).scalar_one()


def test_a_first_import_indexes_from_its_stage_what_a_rebuild_from_the_directory_gives(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list]) -> None:
    report = load(sqlite_db, _package_with_a_duplicate().write(tmp_path / "pkg"), source="city")
    assert watched["started"] == [13]
    assert watched["from_directory"] == []  # the stage gave every document
    # The duplicate check ran beside the rebuild: the copy merged into the pantry it repeats
    # has no document, and that pantry's was written again at the swap.
    copies = {_service_id(sqlite_db, "pantry-near"), _service_id(sqlite_db, "pantry-copy")}
    assert report.counts["service"]["listed_as_duplicate"] == 1
    assert copies <= report.changed_service_ids
    assert report.counts["search"]["indexed"] == 12
    with sqlite_db.engine.connect() as conn:  # merged into one segment, those two included
        assert conn.exec_driver_sql(
            "SELECT count(DISTINCT segid) FROM search_fts_idx").scalar_one() == 1
    imported = _documents(sqlite_db)

    SqliteSearchBackend(sqlite_db).rebuild()
    assert _documents(sqlite_db) == imported
    assert len(imported["search_doc"]) == 12 and imported["pantry"]


def _documents(db: Database) -> dict[str, list]:
    """The index, each row keyed by its document rather than its rowid (a listing written
    again at a swap takes the next free rowid of its cell, where a rebuild packs them)."""
    snapshot = _index_snapshot(db)
    with db.engine.connect() as conn:
        key = dict(conn.exec_driver_sql("SELECT rowid, key FROM search_doc").all())
    return {table: sorted((key[r[0]], *r[1:]) for r in rows) if rows and
            isinstance(rows[0], tuple) and len(rows[0]) > 1 else sorted(key[r[0]] for r in rows)
            for table, rows in snapshot.items()}


def test_a_reimport_builds_from_the_directory(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list]) -> None:
    package = search_package().write(tmp_path / "pkg")
    load(sqlite_db, package, source="city")
    load(sqlite_db, package, source="city", force=True)
    assert watched["started"] == [12]  # the second run changes rows that already exist


def test_an_edit_made_after_the_apply_shows_once_the_index_is_swapped(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A partner edit committed between the apply and the new index's swap is not lost,
    though that listing's document had already been built from the stage."""
    parts = prebuild.StageDocuments.parts

    def edit_then_parts(self):  # noqa: ANN001, ANN202
        rename_listing(sqlite_db, "pantry-far", "Anacostia Community Pantry")
        return parts(self)

    monkeypatch.setattr(prebuild.StageDocuments, "parts", edit_then_parts)
    load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    assert watched["started"] == [12]
    from indexer.geocode import Geocoder
    from service.search.service import locate

    found = SqliteSearchBackend(sqlite_db).search(
        SearchQuery(q="food pantry", radius_mi=10), locate("20001", Geocoder()))
    names = [r.name for r in found.results]
    assert "Anacostia Community Pantry" in names
    assert "Anacostia Food Pantry" not in names


def test_an_import_that_fails_after_building_began_leaves_no_trace(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def broken_apply(self, run_id):  # noqa: ANN001, ANN202
        raise RuntimeError("disk full")

    monkeypatch.setattr(apply.Applier, "apply", broken_apply)
    with pytest.raises(RuntimeError, match="disk full"):
        load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    assert watched["started"] == [12]
    with sqlite_db.engine.connect() as conn:
        tables = {r[0] for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert conn.exec_driver_sql("SELECT count(*) FROM service").scalar_one() == 0
    assert "search_pending" not in tables
    assert list(scratch.iterdir()) == []  # the stage and the workers' files are gone


def test_a_first_import_inserts_without_parent_checks_and_leaves_every_reference_sound(
        sqlite_db: Database, tmp_path: Path) -> None:
    p = search_package()
    p.add("phone", id="ph-orphan", service_id="no-such-service", number="202-555-0199")
    p.add("service_at_location", id="sal-orphan", service_id="pantry-near",
          location_id="no-such-location")
    report = load(sqlite_db, p.write(tmp_path / "pkg"), source="city")
    assert report.counts["phone"]["kept_without_parent"] == 1
    assert report.counts["service_at_location"]["kept_without_parent"] == 1
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []
        assert conn.exec_driver_sql("SELECT count(*) FROM phone").scalar_one() == 13
        # The connection goes back to the pool checking foreign keys again.
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        raw = conn.connection.dbapi_connection
        with pytest.raises(Exception, match="FOREIGN KEY"):
            raw.execute("INSERT INTO phone (id, service_id, record_source, record_source_id, "
                        "row_hash) VALUES ('x', 'missing', 's', 'x', 'h')")


def test_rows_the_directory_has_are_found_though_their_source_is_new(
        sqlite_db: Database, tmp_path: Path) -> None:
    """A package Signpost exported keeps its ids: loaded under a source name the directory
    has nothing of, its rows start out new and the comparison finds them already there."""
    from indexer.export import export_datapackage

    load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    export_datapackage(sqlite_db, tmp_path / "export")
    report = load(sqlite_db, tmp_path / "export", source="copy")
    assert report.counts["service"]["read"] == 12
    assert "new" not in report.counts["service"] and "new" not in report.counts["location"]
    assert report.counts["service"]["changed"] == 12  # an export's values read a little apart
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM service").scalar_one() == 12
        assert conn.exec_driver_sql("SELECT count(*) FROM search_doc").scalar_one() == 12


def test_a_failure_before_the_apply_gives_the_connection_back_checking_parents(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The shortcut's pragma is undone when the run stops between comparing and writing."""

    def unreadable(self):  # noqa: ANN001, ANN202
        raise OSError("stage unreadable")

    monkeypatch.setattr(apply.Applier, "_adds_only", unreadable)
    with pytest.raises(OSError, match="stage unreadable") as failed:
        load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    # Back in the pool (not held by the failed run, whose traceback is still alive here).
    assert failed.value is not None and sqlite_db.engine.pool.checkedout() == 0
    with sqlite_db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
        assert [r[1] for r in conn.exec_driver_sql("PRAGMA database_list")] == ["main"]
        assert conn.exec_driver_sql("SELECT count(*) FROM service").scalar_one() == 0


def test_documents_begun_on_a_wrong_guess_are_dropped(
        sqlite_db: Database, tmp_path: Path, watched: dict[str, list],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """They start building before the comparison; when it finds the apply will not only add
    rows, the index is rebuilt from the directory as for any import."""
    monkeypatch.setattr(apply.Applier, "_adds_only", lambda self: False)
    report = load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    assert watched["started"] == [12]
    assert len(watched["from_directory"]) == 1 and len(watched["from_directory"][0]) == 12
    assert report.counts["search"]["indexed"] == 12
    imported = _documents(sqlite_db)
    SqliteSearchBackend(sqlite_db).rebuild()
    assert _documents(sqlite_db) == imported
