"""The `signpost` command, through click's CliRunner, on a real database."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from service.cli import main
from service.db import Database
from service.directory.tables import service
from service.search.sqlite import SqliteSearchBackend
from tests.factories import directory_package


def test_load_rebuild_and_export(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("SIGNPOST_DATABASE_URL", url)
    monkeypatch.setenv("SIGNPOST_GEOCODE_CACHE_PATH", str(tmp_path / "geo.sqlite"))
    from service.config import get_settings
    get_settings.cache_clear()
    runner = CliRunner()
    folder = directory_package(5).write(tmp_path / "pkg")
    result = runner.invoke(main, ["index", "load", str(folder), "--source", "city"])
    assert result.exit_code == 0, result.output
    assert "done: city (hsds3)" in result.output
    assert "service: new 5, read 5" in result.output
    dry = runner.invoke(main, ["index", "load", str(folder), "--source", "city", "--dry-run"])
    assert "dry run: nothing was written" in dry.output
    rebuilt = runner.invoke(main, ["index", "rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "search_documents: 5" in rebuilt.output
    out = tmp_path / "export"
    exported = runner.invoke(main, ["export", "hsds", str(out)])
    assert exported.exit_code == 0 and (out / "services.csv").exists()
    runs = runner.invoke(main, ["index", "runs"])
    assert "done" in runs.output and "city" in runs.output
    db = Database(url)
    with db.session() as session:
        assert session.execute(select(func.count()).select_from(service)).scalar_one() == 5
    assert SqliteSearchBackend(db).count() == 5
    missing = runner.invoke(main, ["index", "load", str(tmp_path / "nope")])
    assert missing.exit_code != 0
    get_settings.cache_clear()


def test_demo_accounts_of_each_role_can_sign_in(sqlite_db, tmp_path: Path) -> None:  # noqa: ANN001
    from fastapi.testclient import TestClient

    from indexer.demo import DEMO_DIR, DEMO_PASSWORD, ensure_demo_accounts
    from indexer.pipeline import load
    from service.app import create_app
    from service.config import Settings

    load(sqlite_db, DEMO_DIR / "dc_homeless_shelter_locations.csv",
         format="flat:dc_dhs_homeless_shelters", source="dc_dhs_homeless_shelters")
    accounts = ensure_demo_accounts(sqlite_db, environment="development")
    assert ensure_demo_accounts(sqlite_db, environment="development") == accounts  # idempotent
    settings = Settings(database_url=str(sqlite_db.url), environment="test",
                        geocode_cache_path=tmp_path / "g.sqlite")
    with TestClient(create_app(settings)) as client:
        for role, username in accounts:
            response = client.post("/api/v1/auth/token",
                                   json={"username": username, "password": DEMO_PASSWORD})
            assert response.status_code == 200, (role, response.text)
    import pytest
    with pytest.raises(RuntimeError):
        ensure_demo_accounts(sqlite_db, environment="production")
