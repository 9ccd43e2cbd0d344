"""Faults, each a real scenario, asserting what a user would notice.

- The database locked by another writer past the busy timeout, or not reachable at all: a
  503 that says so, with Retry-After; nothing half-written; the same request succeeds after.
- The disk full during an import: the import fails and says why; the previous directory is
  intact (a real 3 MB tmpfs when mounting is allowed, else SQLite's max_page_count).
- kill -9 of the server in the middle of referral writes: after a restart every acknowledged
  change is there, each history numbered 1..version. What makes that hold: an answer is sent
  only once its change is committed (checked on its own, on both databases).
- The online geocoder timing out or rate limiting (429): the import falls back to the ZIP
  centroid and carries on, recording the precision.
- Elasticsearch down: search answers 503 with a message; listings still open, and the
  embedded engine on the same records is unaffected.

Every peer is a real local server on 127.0.0.1; nothing reaches the internet.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from bench.load import Server, create_world, free_port
from indexer.pipeline import load
from service.app import create_app
from service.audit.tables import audit_event
from service.cli import make_geocoder
from service.clients.tables import client
from service.config import Settings
from service.db import Database
from service.directory.tables import hsds_tables, import_run, location
from tests.factories import directory_package
from tests.service.accounts.helpers import user_headers

ROSA = {"name": "Rosa Q. Example", "date_of_birth": "1984-06-02", "preferred_language": "es",
        "contact_preference": "text", "no_voicemail": True}


def settings_for(url: str, **overrides: Any) -> Settings:
    return Settings(database_url=url, environment="test", demo_notice=False,
                    geocode_cache_path=Path(os.devnull), **overrides)


def counts(db: Database, *tables: Any) -> dict[str, int]:
    with db.session() as session:
        return {t.name: session.execute(select(func.count()).select_from(t)).scalar_one()
                for t in tables}


def client_creations(db: Database) -> int:
    with db.session() as session:
        return session.execute(select(func.count()).select_from(audit_event)
                               .where(audit_event.c.action == "client.create")).scalar_one()


# --- the database locked or unreachable ---------------------------------------------------------


def test_locked_database_is_a_503_with_retry_after_then_the_same_request_succeeds(
        sqlite_template: Path, tmp_path: Path) -> None:
    path = tmp_path / "signpost.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}?timeout=1"  # wait 1 s for the lock, not the 30 s default
    db = Database(url)
    with TestClient(create_app(settings_for(url))) as http:
        casey = user_headers(db, http, "casey", role="case_manager")
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another writer (an import, say) keeps the lock
        try:
            locked = http.post("/api/v1/clients", headers=casey, json=ROSA)
            reading = http.get("/api/v1/services")  # readers are not blocked meanwhile
        finally:
            holder.execute("ROLLBACK")
            holder.close()

        assert locked.status_code == 503
        assert locked.headers["Retry-After"] == "5"
        error = locked.json()["error"]
        assert error["code"] == "unavailable"
        assert "busy" in error["message"] and "try again" in error["message"]
        assert reading.status_code == 200
        assert counts(db, client) == {"client": 0} and client_creations(db) == 0

        again = http.post("/api/v1/clients", headers=casey, json=ROSA)
        assert again.status_code == 201, again.text
        assert counts(db, client) == {"client": 1} and client_creations(db) == 1
    db.dispose()


class Forwarder:
    """A TCP forwarder on 127.0.0.1 in front of PostgreSQL: stopping it is the database going
    away (refused connections, dropped sessions); starting it again on the same port is the
    database coming back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)  # a blocked accept() would outlive close() on Linux
        self.port = listener.getsockname()[1]
        self._listener, self._stopped = listener, threading.Event()
        self._thread = threading.Thread(target=self._accept, args=(listener, self._stopped),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        assert self._listener is not None
        self._stopped.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket, stopped: threading.Event) -> None:
        while not stopped.is_set():
            try:
                downstream, _ = listener.accept()
            except TimeoutError:
                continue
            downstream.settimeout(None)
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [downstream, upstream]
            for a, b in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_unreachable_database_is_a_503_then_the_same_request_succeeds(
        database_url: str) -> None:
    real = make_url(database_url)
    forwarder = Forwarder((real.host or "127.0.0.1", real.port or 5432))
    forwarder.start()
    url = real.set(host="127.0.0.1", port=forwarder.port).render_as_string(hide_password=False)
    db = Database(database_url)
    try:
        with TestClient(create_app(settings_for(url))) as http:
            casey = user_headers(db, http, "casey", role="case_manager")
            assert http.post("/api/v1/clients", headers=casey, json=ROSA).status_code == 201

            forwarder.stop()  # PostgreSQL is gone: the port is closed, sessions dropped
            answers = {
                "write": http.post("/api/v1/clients", headers=casey, json=ROSA),
                "read": http.get("/api/v1/services"),
                "health": http.get("/health"),
                "sign in": http.post("/api/v1/auth/token", json={
                    "username": "casey", "password": "whatever it is"}),
            }
            for what, answer in answers.items():
                assert answer.status_code == 503, (what, answer.text)
                assert answer.headers["Retry-After"] == "5", what
                assert answer.json()["error"]["code"] == "unavailable", what
                assert "not reachable" in answer.json()["error"]["message"], what

            forwarder.start()  # back on the same port
            again = http.post("/api/v1/clients", headers=casey, json=ROSA)
            assert again.status_code == 201, again.text
        assert counts(db, client) == {"client": 2}
        assert client_creations(db) == 2
    finally:
        db.dispose()
        forwarder.stop()


# --- the disk full during an import -------------------------------------------------------------


@pytest.fixture(params=["tmpfs", "max_page_count"])
def small_disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder where the database runs out of room: a real 3 MB tmpfs (needs root and a
    kernel that lets us mount), or SQLite's own page limit (SQLITE_FULL either way)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "max_page_count":
        yield folder, request.param
        return
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the max_page_count case covers SQLITE_FULL")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({mounted.stderr.strip()}); the "
                    "max_page_count case covers SQLITE_FULL")
    try:
        yield folder, request.param
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def _directory_as_a_user_sees_it(url: str) -> dict[str, Any]:
    with TestClient(create_app(settings_for(url))) as http:
        listing = http.get("/api/v1/services", params={"per_page": 100}).json()
        first = http.get(f"/api/v1/services/{listing['items'][0]['id']}").json()
        found = http.get("/api/v1/search", params={"q": "food", "near": "20001"}).json()
    return {"total": listing["total"], "names": sorted(i["name"] for i in listing["items"]),
            "first": first["service"],
            "search": sorted(r["name"] for r in found["results"])}


def test_disk_full_during_import_fails_clearly_and_keeps_the_previous_directory(
        small_disk: tuple[Path, str], sqlite_template: Path, tmp_path: Path) -> None:
    folder, how = small_disk
    path = folder / "signpost.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    db = Database(url)
    load(db, directory_package(3).write(tmp_path / "small"), source="city")
    tables = [hsds_tables[name] for name in sorted(hsds_tables)]
    before, seen_before = counts(db, *tables), _directory_as_a_user_sees_it(url)
    assert seen_before["total"] == 3 and len(seen_before["search"]) == 3
    if how == "max_page_count":
        with db.engine.connect() as conn:
            limit = conn.execute(text("PRAGMA page_count")).scalar_one() + 64  # 256 KB more

        @event.listens_for(db.engine, "connect")
        def _small(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit}")

        db.engine.dispose()  # new connections get the limit

    big = directory_package(1000, prefix="big").write(tmp_path / "big")  # needs ~6 MB
    with pytest.raises(OperationalError, match="database or disk is full"):
        load(db, big, source="big")

    with db.session() as session:
        run = session.execute(select(import_run).order_by(import_run.c.id.desc())).mappings(
            ).first()
    assert run is not None and run["source"] == "big" and run["status"] == "failed"
    assert "database or disk is full" in run["message"]
    assert "the directory was not changed" in run["message"]
    assert counts(db, *tables) == before
    db.dispose()
    assert _directory_as_a_user_sees_it(url) == seen_before


# --- kill -9 of the server in the middle of writes ----------------------------------------------


WRITERS, KILL_AFTER, SEQUENTIAL = 6, 40, 60


@pytest.mark.slow
def test_an_acknowledged_write_is_committed_before_the_answer(database_url: str,
                                                              tmp_path: Path) -> None:
    """What makes kill -9 safe: when the answer arrives, the change is already committed (a
    colleague reading it at once sees it; a crash cannot take it back)."""
    import httpx2 as httpx

    from service.referrals.tables import referral

    db = Database(database_url)
    load(db, directory_package(2).write(tmp_path / "pkg"), source="city")
    world = create_world(database_url, run="ack", clients=1, organizations=1)
    behind = []
    try:
        with Server(database_url, workers=1, log=tmp_path / "server.log") as server, \
                httpx.Client(base_url=server.url, timeout=30) as http:
            made = http.post("/api/v1/referrals", headers=world.case_manager, json={
                "client_id": world.clients[0], "service_at_location_id": world.targets[0],
                "need": "food", "send": True})
            assert made.status_code == 201, made.text
            current = made.json()
            for _ in range(SEQUENTIAL):
                answer = http.post(f"/api/v1/referrals/{current['id']}/follow-ups",
                                   headers=world.case_manager, json={
                                       "outcome": "unknown", "contact_method": "phone",
                                       "expected_version": current["version"]})
                if answer.status_code == 409:  # the version we were just given is not in yet
                    behind.append(("refused as stale", current["version"]))
                    current = http.get(f"/api/v1/referrals/{current['id']}",
                                       headers=world.case_manager).json()
                    continue
                assert answer.status_code == 201, answer.text
                current = answer.json()
                with db.session() as session:  # another connection, right after the answer
                    stored = session.execute(select(referral.c.version).where(
                        referral.c.id == current["id"])).scalar_one()
                if stored < current["version"]:
                    behind.append(("not committed", current["version"]))
    finally:
        db.dispose()
    assert behind == [], f"{len(behind)} of {SEQUENTIAL} answers came before their commit"


@pytest.mark.slow
def test_kill_9_mid_write_loses_no_acknowledged_referral_change(
        sqlite_template: Path, tmp_path: Path) -> None:
    import httpx2 as httpx

    path = tmp_path / "signpost.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    db = Database(url)
    load(db, directory_package(4).write(tmp_path / "pkg"), source="city")
    db.dispose()
    world = create_world(url, run="kill", clients=WRITERS, organizations=2)
    server = Server(url, workers=2, log=tmp_path / "server.log").start()
    acked: list[tuple[int, int, str, str]] = []  # referral, version (= event seq), kind, to
    failures: list[BaseException] = []
    lock, killed = threading.Lock(), threading.Event()

    def acknowledge(*writes: tuple[int, int, str, str]) -> None:
        with lock:
            acked.extend(writes)
            if len(acked) >= KILL_AFTER and not killed.is_set():
                killed.set()
                server.kill()  # SIGKILL to every server process, right after this answer

    def writer(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            try:
                made = http.post("/api/v1/referrals", headers=world.case_manager, json={
                    "client_id": world.clients[n], "service_at_location_id":
                    world.targets[n % len(world.targets)], "need": "food", "send": True})
                assert made.status_code == 201, made.text
                referral = made.json()
                acknowledge((referral["id"], 1, "created", "draft"),
                            (referral["id"], 2, "transition", "requested"))
                moves = iter(["accepted"] + ["in-progress", "on-hold"] * 1000)
                for step in range(10_000):
                    if killed.is_set():
                        return
                    base = f"/api/v1/referrals/{referral['id']}"
                    if step % 3 == 2:
                        kind, answer = "follow_up", http.post(
                            f"{base}/follow-ups", headers=world.case_manager, json={
                                "outcome": "unknown", "contact_method": "phone",
                                "expected_version": referral["version"]})
                    else:
                        to = next(moves)
                        body = {"to": to, "expected_version": referral["version"]}
                        if to == "on-hold":
                            body["reason_code"] = "client_declined"
                        kind, answer = "transition", http.post(
                            f"{base}/transitions", headers=world.partner, json=body)
                    assert answer.status_code in (200, 201), answer.text
                    referral = answer.json()
                    acknowledge((referral["id"], referral["version"], kind,
                                 referral["status"]))
            except httpx.TransportError as exc:
                if not killed.is_set():  # only the kill may cut a request short
                    failures.append(exc)
            except BaseException as exc:  # noqa: BLE001 - reported below, in the test's thread
                failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert failures == []
        assert killed.is_set(), server.log_tail()
        assert server.process is not None and server.process.returncode == -9

        with Server(url, workers=1, log=tmp_path / "server-2.log") as again, \
                httpx.Client(base_url=again.url, timeout=30) as http:
            for referral_id in sorted({a[0] for a in acked}):
                found = http.get(f"/api/v1/referrals/{referral_id}",
                                 headers=world.case_manager)
                assert found.status_code == 200, found.text
                body = found.json()
                events = {e["seq"]: (e["kind"], e["to_status"]) for e in body["events"]}
                assert sorted(events) == list(range(1, body["version"] + 1))
                for _, seq, kind, to in (a for a in acked if a[0] == referral_id):
                    assert events.get(seq) == (kind, to), (referral_id, seq, kind, to)
    finally:
        server.kill()
    assert len(acked) >= KILL_AFTER


# --- the online geocoder timing out or rate limiting --------------------------------------------


class FailingNominatim(ThreadingHTTPServer):
    """A Nominatim-style /search that answers 429 (with Retry-After) or never answers."""

    daemon_threads = True

    def __init__(self, mode: str) -> None:
        super().__init__(("127.0.0.1", 0), _FailingHandler)
        self.mode, self.requests = mode, 0
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the geocoder gave up waiting: expected


class _FailingHandler(BaseHTTPRequestHandler):
    server: FailingNominatim

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.mode == "timeout":
            self.server.release.wait(10)
            return
        data = json.dumps({"error": "rate limited"}).encode()
        self.send_response(429)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Retry-After", "60")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize(("mode", "asked", "stat"), [
    ("timeout", 3, "online_error"),  # three failures in a row, then it pauses
    ("429", 1, "online_rate_limited"),  # Retry-After is honoured at once
])
def test_failing_online_geocoder_falls_back_to_the_zip_centroid_and_the_import_continues(
        db: Database, tmp_path: Path, mode: str, asked: int, stat: str) -> None:
    nominatim = FailingNominatim(mode)
    thread = threading.Thread(target=nominatim.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        geocoder = make_geocoder(Settings(
            database_url=db.url, environment="test", geocoder="nominatim",
            geocoder_domain=f"127.0.0.1:{nominatim.server_address[1]}", geocoder_scheme="http",
            geocoder_user_agent="signpost-tests", geocoder_min_delay_seconds=0,
            geocode_cache_path=tmp_path / "geocode.sqlite"))
        geocoder.timeout = 0.3  # the settings' 5 s, shortened for the test
        package = directory_package(5)
        for row in package.rows["location"]:
            row["latitude"] = row["longitude"] = ""  # street addresses only: go online
        report = load(db, package.write(tmp_path / "pkg"), source="city", geocoder=geocoder)
    finally:
        nominatim.release.set()
        nominatim.shutdown()
        nominatim.server_close()
        thread.join(5)

    assert report.status == "done"
    assert report.counts["service"]["read"] == 5 and report.counts["location"]["read"] == 5
    assert dict(report.precision) == {"zip": 5}
    assert nominatim.requests == asked
    assert geocoder.stats[stat] >= 1 and geocoder.stats["online_suspended"] >= 1
    with db.session() as session:
        rows = session.execute(select(location.c.geocode_precision, location.c.latitude,
                                      location.c.longitude)).all()
    assert len(rows) == 5 and {r.geocode_precision for r in rows} == {"zip"}
    assert len({(round(r.latitude, 4), round(r.longitude, 4)) for r in rows}) == 1  # 20001


# --- Elasticsearch down -------------------------------------------------------------------------


def test_elasticsearch_down_is_a_503_and_the_embedded_engine_is_unaffected(
        sqlite_db: Database, tmp_path: Path) -> None:
    load(sqlite_db, directory_package(3).write(tmp_path / "pkg"), source="city")
    url = str(sqlite_db.url)
    closed = free_port()  # nobody listens there: the cluster is down
    search = {"q": "food", "near": "20001"}
    with TestClient(create_app(settings_for(url, search_backend="elasticsearch",
                                            elasticsearch_url=f"http://127.0.0.1:{closed}"))
                    ) as http:
        for path, params in (("/api/v1/search", search), ("/api/v1/suggest", {"q": "foo"})):
            answer = http.get(path, params=params)
            assert answer.status_code == 503, (path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "unavailable"
            assert "Elasticsearch" in error["message"], error
        listing = http.get("/api/v1/services").json()
        assert listing["total"] == 3  # the records do not depend on the search cluster
        assert http.get(f"/api/v1/services/{listing['items'][0]['id']}").status_code == 200
        assert http.get("/health").status_code == 200

    with TestClient(create_app(settings_for(url))) as http:
        answer = http.get("/api/v1/search", params=search)
        assert answer.status_code == 200
        assert sorted(r["name"] for r in answer.json()["results"]) == [
            "Food Pantry 0", "Food Pantry 1", "Food Pantry 2"]
