"""`make load`: a bounded load against the real server on 127.0.0.1, then proof that no
acknowledged referral write was lost.

1. A directory: the bundled demo (default; built once into `bench-out/` and copied per run), a
   generated one (`factory:N`, `tests.factories.directory_package`) or the shared scale package
   (`scale:N`, with its 400 queries). SQLite in a temporary folder, or the PostgreSQL database
   of `--database-url` (use a scratch database: the run adds users, clients and referrals).
2. A case manager, a partner of a few organizations, and clients who consented to share with
   those organizations, all made through the service functions.
3. The server as the operator runs it (uvicorn, `--workers 2`) in a child process.
4. A fixed count of requests at a fixed concurrency: 70% search (varied needs and places), 20%
   service detail, 10% referral work (make and send, the partner's answers, follow-ups, reads).
   A 409 on a referral write is expected when two people change one referral at once: it is
   counted apart, never as an error.
5. The figures: throughput, p50/p95/p99 per kind and overall, errors, the server processes'
   peak RSS (VmHWM). Then, in the database: every acknowledged referral write is present, each
   referral's version equals its event count with events numbered 1..version, and each change
   left one audit event. Exit status 1 on any error or lost write.

Usage: python -m bench.load [--requests 5000] [--concurrency 32] [--directory demo]
       [--database-url URL] [--workers 2] [--out bench-out] [--seed 7]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MIX = (("search", 0.70), ("detail", 0.20), ("referral", 0.10))
PASSWORD_BYTES = 18

# Searches over the demo directory: its lists are national (health centres, treatment,
# veterans, housing authorities, farmers markets) plus Washington DC's own.
DEMO_NEEDS = ("food", "groceries", "food pantry", "snap", "farmers market", "shelter",
              "emergency shelter", "housing", "public housing", "homeless services",
              "mental health", "counseling", "depression", "substance use treatment", "detox",
              "opioid treatment", "methadone", "health center", "clinic", "primary care",
              "dental", "veterans", "va clinic", "hiv testing")
DEMO_PLACES = ("20001", "20002", "20003", "20009", "20010", "20011", "20019", "20020", "20032",
               "Washington, DC", "Silver Spring, MD", "Arlington, VA", "Baltimore, MD",
               "Alexandria, VA", "Hyattsville, MD", "10001", "60614", "94103", "Houston, TX",
               "Miami, FL", "Denver, CO", "Seattle, WA", "Atlanta, GA", "Boston, MA",
               "Phoenix, AZ", "38.8977,-77.0365")
FACTORY_NEEDS = ("food", "groceries", "food pantry", "pantry", "meals")
FACTORY_PLACES = ("20001", "20002", "Washington, DC", "38.90,-77.03", "20005", "20009")
RADII = (5, 10, 25)
REFERRAL_NEEDS = ("food", "housing", "health", "emergency-food", "counseling")

# The partner's next moves (FHIR SDOH task states), and the reason each one needs.
PARTNER_MOVES = {"requested": ("accepted",), "accepted": ("in-progress",),
                 "in-progress": ("on-hold", "on-hold", "completed"),
                 "on-hold": ("in-progress",)}
REASONS = {"on-hold": "client_declined"}


# --- the directory ----------------------------------------------------------------------------


def _load_directory(db: Any, directory: str, scratch: Path, shared: Path) -> Path | None:
    """Import the directory into `db`; the scale package's folder (for its queries), if any."""
    from indexer.pipeline import load

    kind, _, size = directory.partition(":")
    if kind == "demo":
        from indexer.demo import load_demo
        for _report in load_demo(db):
            pass
        return None
    if kind == "factory":
        from tests.factories import directory_package
        load(db, directory_package(int(size or 30)).write(scratch / "factory"), source="factory")
        return None
    if kind == "scale":
        from bench.run import ensure_package
        package = ensure_package(shared, int(size or 5000), scratch)
        load(db, package, source="bench")
        return package
    raise SystemExit(f"unknown --directory {directory!r}: demo, factory:N or scale:N")


def prepare_sqlite(directory: str, *, out: Path, work: Path, shared: Path,
                   echo: Callable[[str], None] = print) -> str:
    """A SQLite file in `work` holding the directory; built once per kind in `out`."""
    from sqlalchemy import text

    from service.db import Database

    out.mkdir(parents=True, exist_ok=True)
    cached = out / f"load-{directory.replace(':', '-')}.db"
    if not cached.exists():
        building = cached.with_name(cached.name + ".building")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{building}{suffix}").unlink(missing_ok=True)
        db = Database(f"sqlite:///{building}")
        db.migrate()
        started = time.perf_counter()
        _load_directory(db, directory, out, shared)
        with db.engine.connect() as conn:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        db.dispose()
        os.replace(building, cached)
        echo(f"  directory {directory} built in {time.perf_counter() - started:.0f} s "
             f"({cached})")
    _current_index(cached, echo)
    target = work / "signpost.db"
    shutil.copy(cached, target)
    return f"sqlite:///{target}"


def _current_index(path: Path, echo: Callable[[str], None]) -> None:
    """Bring a cached directory up to this version, as `signpost serve` does before its
    workers start: migrations, and a rebuild of a search index of an older format."""
    from service.config import Settings
    from service.db import Database
    from service.search.service import ensure_current_index

    url = f"sqlite:///{path}"
    db = Database(url)
    try:
        db.migrate()
        started = time.perf_counter()
        if ensure_current_index(Settings(database_url=url), db) is not None:
            echo(f"  search index of an older format rebuilt in "
                 f"{time.perf_counter() - started:.0f} s")
    finally:
        db.dispose()


def prepare_url(database_url: str, directory: str, *, out: Path, shared: Path,
                echo: Callable[[str], None] = print) -> None:
    """Migrate the database and import the directory unless it already holds services."""
    from sqlalchemy import func, select

    from service.db import Database
    from service.directory.tables import service

    db = Database(database_url)
    try:
        db.migrate()
        with db.session() as session:
            count = session.execute(select(func.count()).select_from(service)).scalar_one()
        if count == 0:
            started = time.perf_counter()
            _load_directory(db, directory, out, shared)
            echo(f"  directory {directory} imported in {time.perf_counter() - started:.0f} s")
    finally:
        db.dispose()


def searches(directory: str, package: Path | None, rng: random.Random,
             n: int = 400) -> list[dict[str, Any]]:
    """Search parameters: the scale package's 400 queries, else needs x places x radii."""
    if package is not None and (package / "queries.tsv").exists():
        import csv
        with open(package / "queries.tsv", newline="") as handle:
            return [{"q": r["q"], "near": r["near"], "radius_mi": r["radius_mi"]}
                    for r in csv.DictReader(handle, delimiter="\t")]
    needs, places = ((FACTORY_NEEDS, FACTORY_PLACES) if directory.startswith("factory")
                     else (DEMO_NEEDS, DEMO_PLACES))
    return [{"q": rng.choice(needs), "near": rng.choice(places), "radius_mi": rng.choice(RADII)}
            for _ in range(n)]


# --- people -----------------------------------------------------------------------------------


@dataclass
class World:
    """Who makes the requests, and what they ask about."""

    agency_id: int
    case_manager: dict[str, str]  # Authorization headers
    partner: dict[str, str]
    clients: list[int]
    targets: list[str]  # service_at_location ids of the partner's organizations
    needs: list[str]


def create_world(database_url: str, *, run: str, clients: int = 40,
                 organizations: int = 4) -> World:
    """A case manager and their clients (each consenting to share with the partner's
    organizations), and a partner of `organizations` organizations, made through the service
    functions; both signed in."""
    from sqlalchemy import select

    from service.accounts import service as accounts
    from service.accounts.service import Principal
    from service.audit.service import CLI
    from service.clients import service as clients_service
    from service.clients.schemas import ClientCreate, ConsentCreate
    from service.db import Database
    from service.directory.categories import category_tree
    from service.directory.tables import service, service_at_location

    db = Database(database_url)
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    try:
        with db.session(write=True) as session:
            rows = session.execute(
                select(service_at_location.c.id, service.c.organization_id)
                .join(service, service.c.id == service_at_location.c.service_id)
                .where(service_at_location.c.is_active.is_(True), service.c.is_active.is_(True),
                       service.c.is_referable.is_(True), service.c.organization_id.is_not(None))
                .order_by(service_at_location.c.id)).all()
            by_org: dict[str, list[str]] = defaultdict(list)
            for sal_id, org_id in rows:
                by_org[org_id].append(sal_id)
            orgs = sorted(by_org)[:organizations]
            if not orgs:
                raise SystemExit("the directory has no referable service at a location")
            targets = [sal for org in orgs for sal in by_org[org][:3]]
            manager = accounts.create_user(
                session, actor=CLI, username=f"load-manager-{run}", password=password,
                role="case_manager", agency_name=f"Load Test Agency {run}")
            accounts.create_user(session, actor=CLI, username=f"load-partner-{run}",
                                 password=password, role="partner", organization_ids=orgs)
            actor = Principal(user_id=manager["id"], role="case_manager",
                              username=manager["username"], agency_id=manager["agency_id"])
            client_ids = []
            for i in range(clients):
                created, _ = clients_service.create_client(session, actor=actor, data=ClientCreate(
                    name=f"Load Client {run}-{i}",
                    date_of_birth=date(1950, 1, 1) + timedelta(days=211 * i),
                    preferred_language=("en", "es", "vi")[i % 3]))
                client_ids.append(created["id"])
                for org in orgs:
                    clients_service.add_consent(session, actor=actor, client_id=created["id"],
                                                data=ConsentCreate(
                        shares=["identity", "contact", "needs", "referral_status"],
                        shared_with_organization_id=org, purpose="load test referrals"))
            headers = {}
            for role, username in (("case_manager", f"load-manager-{run}"),
                                   ("partner", f"load-partner-{run}")):
                result = accounts.login(session, username=username, password=password,
                                        token_name="load test", client_ip=None)
                assert result.token is not None
                headers[role] = {"Authorization": f"Bearer {result.token}"}
        tree = category_tree()
        needs = [n for n in REFERRAL_NEEDS if tree.by_slug(n) is not None] or ["food"]
        return World(agency_id=manager["agency_id"], case_manager=headers["case_manager"],
                     partner=headers["partner"], clients=client_ids, targets=targets,
                     needs=needs)
    finally:
        db.dispose()


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port nobody listens on right now (on 127.0.0.1)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    """`uvicorn service.app:create_app` with `workers` processes on 127.0.0.1, in its own
    process group (so a stop or a kill -9 reaches every worker)."""

    def __init__(self, database_url: str, *, workers: int = 2, log: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.database_url = database_url
        self.workers = workers
        self.log = log or Path(tempfile.mkstemp(prefix="signpost-server-", suffix=".log")[1])
        self.env = env or {}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> Server:
        """Start and wait until /health answers."""
        import httpx2 as httpx

        self.port = free_port()
        env = {**os.environ, "SIGNPOST_DATABASE_URL": self.database_url,
               "SIGNPOST_DEMO_NOTICE": "false", "SIGNPOST_ENVIRONMENT": "test",
               "SIGNPOST_GEOCODER": "offline", "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                 str(self.workers), "--log-level", "warning", "--no-access-log"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n"
                                   + self.log_tail())
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not answer /health in time:\n" + self.log_tail())

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def pids(self) -> list[int]:
        """The server's processes: the supervisor and its workers."""
        if self.process is None:
            return []
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo += _children(pid)
        return found

    def peak_rss_mb(self) -> dict[int, float]:
        """Each server process's peak resident memory so far (VmHWM), in MB."""
        peaks = {pid: _status_kb(pid, "VmHWM") for pid in self.pids()}
        return {pid: kb / 1024 for pid, kb in peaks.items() if kb is not None}

    def _signal(self, sig: int, timeout: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def kill(self) -> None:
        """kill -9 every server process at once."""
        self._signal(signal.SIGKILL, 30)

    def stop(self) -> None:
        """A graceful stop (SIGTERM), then kill -9 after 30 s."""
        self._signal(signal.SIGTERM, 30)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the load ---------------------------------------------------------------------------------

TERMINAL = frozenset({"completed", "failed", "rejected", "cancelled", "entered-in-error"})


@dataclass
class Ref:
    """What the load generator last learnt of one referral."""

    status: str
    version: int
    stale: bool = False  # a 409 said someone else changed it: read it before writing again


@dataclass
class Results:
    """Samples and findings of one run."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)  # kind -> unexpected answers
    conflicts: Counter[str] = field(default_factory=Counter)  # kind -> expected 409s
    error_examples: list[str] = field(default_factory=list)
    acks: list[tuple[int, int, str, str]] = field(default_factory=list)  # id, seq, kind, to
    seconds: float = 0.0
    peak_rss_mb: dict[int, float] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def lost_writes(self) -> int:
        return len(self.check.get("lost", ())) + len(self.check.get("broken", ())) + len(
            self.check.get("audit_mismatch", ()))


class Load:
    """Drives the mix from `concurrency` threads until `requests` have been made."""

    def __init__(self, base_url: str, world: World, search_params: list[dict[str, Any]],
                 service_ids: list[str], *, requests: int, concurrency: int, seed: int,
                 search_path: str = "/api/v1/search") -> None:
        self.base_url, self.world = base_url, world
        self.search_params, self.service_ids = search_params, service_ids
        self.total, self.concurrency, self.seed = requests, concurrency, seed
        self.search_path = search_path
        self.results = Results()
        self.refs: dict[int, Ref] = {}
        self.lock = threading.Lock()
        self._counter = itertools.count()

    def run(self) -> Results:
        started = time.perf_counter()
        with ThreadPoolExecutor(self.concurrency) as pool:
            for future in [pool.submit(self._worker, n) for n in range(self.concurrency)]:
                future.result()
        self.results.seconds = time.perf_counter() - started
        return self.results

    def _worker(self, n: int) -> None:
        import httpx2 as httpx

        rng = random.Random(self.seed * 1000 + n)
        kinds, weights = zip(*MIX, strict=True)
        with httpx.Client(base_url=self.base_url, timeout=120) as http:
            while next(self._counter) < self.total:
                kind = rng.choices(kinds, weights)[0]
                if kind == "search":
                    params = rng.choice(self.search_params)
                    self._call(http, "search", "GET", self.search_path, params=params)
                elif kind == "detail":
                    self._call(http, "detail", "GET",
                               f"/api/v1/services/{rng.choice(self.service_ids)}")
                else:
                    self._referral(http, rng)

    def _call(self, http: Any, kind: str, method: str, path: str, *,
              expect_conflicts: bool = False, **kwargs: Any) -> Any:
        """One request, timed; the response, or None when it failed at the HTTP level."""
        started = time.perf_counter()
        try:
            response = http.request(method, path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a refused or dropped connection is an error
            elapsed = (time.perf_counter() - started) * 1000
            self._record(kind, elapsed, error=f"{method} {path.split('?')[0]}: "
                                              f"{type(exc).__name__}")
            return None
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code == 409 and expect_conflicts:
            self._record(kind, elapsed, conflict=True)
        elif not 200 <= response.status_code < 300:
            code = ""
            try:
                code = response.json()["error"]["code"]
            except (ValueError, KeyError, TypeError):
                pass
            self._record(kind, elapsed, error=f"{method} {self._route(path)}: "
                                              f"{response.status_code} {code}".rstrip())
        else:
            self._record(kind, elapsed)
        return response

    @staticmethod
    def _route(path: str) -> str:
        """The path without ids or values (nothing personal in the report)."""
        return "/".join("{id}" if part.isdigit() or len(part) >= 20 else part
                        for part in path.split("?")[0].split("/"))

    def _record(self, kind: str, ms: float, *, error: str | None = None,
                conflict: bool = False) -> None:
        with self.lock:
            self.results.latencies[kind].append(ms)
            if conflict:
                self.results.conflicts[kind] += 1
            if error:
                self.results.errors[kind] += 1
                if len(self.results.error_examples) < 10:
                    self.results.error_examples.append(error)

    # -- referral work ------------------------------------------------------------------------

    def _referral(self, http: Any, rng: random.Random) -> None:
        with self.lock:
            ids = list(self.refs)
            choice = rng.choice(ids) if ids else None
            ref = self.refs.get(choice) if choice is not None else None
            ref = Ref(ref.status, ref.version, ref.stale) if ref else None
        if choice is None or ref is None or len(ids) < 5 or rng.random() < 0.25:
            self._create(http, rng)
            return
        path = f"/api/v1/referrals/{choice}"
        if ref.stale:  # someone else changed it: read it first, as a person would
            response = self._call(http, "referral", "GET", path,
                                  headers=self.world.case_manager)
            if response is not None and response.status_code == 200:
                self._learn(choice, response.json())
            return
        moves = PARTNER_MOVES.get(ref.status)
        if moves and rng.random() < 0.7:
            to = rng.choice(moves)
            body: dict[str, Any] = {"to": to, "expected_version": ref.version}
            if to in REASONS:
                body["reason_code"] = REASONS[to]
            response = self._call(http, "referral", "POST", f"{path}/transitions",
                                  json=body, headers=self.world.partner, expect_conflicts=True)
            self._after_write(choice, response, "transition", to)
        elif ref.status not in ("draft", "entered-in-error"):
            response = self._call(http, "referral", "POST", f"{path}/follow-ups", json={
                "outcome": rng.choice(("unknown", "got_help", "did_not_get_help")),
                "contact_method": "phone", "expected_version": ref.version},
                headers=self.world.case_manager, expect_conflicts=True)
            self._after_write(choice, response, "follow_up", None)
        else:
            self._create(http, rng)

    def _create(self, http: Any, rng: random.Random) -> None:
        response = self._call(http, "referral", "POST", "/api/v1/referrals", json={
            "client_id": rng.choice(self.world.clients),
            "service_at_location_id": rng.choice(self.world.targets),
            "need": rng.choice(self.world.needs), "urgency": rng.choice(
                ("urgent", "soon", "routine")), "note": "Load test referral", "send": True},
            headers=self.world.case_manager)
        if response is not None and response.status_code == 201:
            body = response.json()
            self._learn(body["id"], body)
            with self.lock:
                self.results.acks += [(body["id"], 1, "created", "draft"),
                                      (body["id"], 2, "transition", "requested")]

    def _after_write(self, referral_id: int, response: Any, kind: str,
                     to: str | None) -> None:
        """Note an acknowledged write (its event: seq = the new version), or a conflict."""
        if response is None:
            return
        if response.status_code == 409:
            with self.lock:
                self.refs[referral_id].stale = True
        elif 200 <= response.status_code < 300:
            body = response.json()
            with self.lock:
                self.results.acks.append((referral_id, body["version"], kind,
                                          to or body["status"]))
            self._learn(referral_id, body)

    def _learn(self, referral_id: int, body: dict[str, Any]) -> None:
        with self.lock:
            known = self.refs.get(referral_id)
            if known is None or body["version"] >= known.version:
                self.refs[referral_id] = Ref(body["status"], body["version"])


# --- checking ---------------------------------------------------------------------------------


def check_writes(database_url: str, *, agency_id: int,
                 acks: list[tuple[int, int, str, str]]) -> dict[str, Any]:
    """Every acknowledged write present; every referral of the run with events 1..version and
    one audit event per change."""
    from sqlalchemy import func, select

    from service.audit.tables import audit_event
    from service.db import Database
    from service.referrals.tables import referral, referral_event

    db = Database(database_url)
    try:
        with db.session() as session:
            versions = dict(session.execute(select(referral.c.id, referral.c.version)
                                            .where(referral.c.agency_id == agency_id)).all())
            events: dict[int, dict[int, tuple[str, str]]] = defaultdict(dict)
            seqs: dict[int, list[int]] = defaultdict(list)
            for row in session.execute(
                    select(referral_event.c.referral_id, referral_event.c.seq,
                           referral_event.c.kind, referral_event.c.to_status)
                    .join(referral, referral.c.id == referral_event.c.referral_id)
                    .where(referral.c.agency_id == agency_id)
                    .order_by(referral_event.c.referral_id, referral_event.c.id)):
                events[row.referral_id][row.seq] = (row.kind, row.to_status)
                seqs[row.referral_id].append(row.seq)
            audits = dict(session.execute(
                select(audit_event.c.entity_id, func.count())
                .where(audit_event.c.entity_type == "referral")
                .where(audit_event.c.action.in_(("referral.create", "referral.transition",
                                                 "referral.follow_up")))
                .where(audit_event.c.entity_id.in_([str(i) for i in versions]))
                .group_by(audit_event.c.entity_id)).all()) if versions else {}
    finally:
        db.dispose()
    lost = [a for a in acks if events.get(a[0], {}).get(a[1]) != (a[2], a[3])]
    broken = [i for i, v in versions.items() if seqs.get(i) != list(range(1, v + 1))]
    audit_mismatch = [i for i, v in versions.items() if audits.get(str(i), 0) != v]
    return {"referrals": len(versions), "acknowledged": len(acks),
            "events": sum(len(s) for s in seqs.values()), "lost": lost, "broken": broken,
            "audit_mismatch": audit_mismatch}


# --- one run ------------------------------------------------------------------------------------


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


def _service_ids(base_url: str, limit: int = 500) -> list[str]:
    import httpx2 as httpx

    ids: list[str] = []
    with httpx.Client(base_url=base_url, timeout=60) as http:
        page = 1
        while len(ids) < limit:
            body = http.get("/api/v1/services", params={"per_page": 100, "page": page}).json()
            ids += [item["id"] for item in body["items"]]
            if page * 100 >= body["total"]:
                break
            page += 1
    return ids


@contextmanager
def _workdir(out: Path) -> Iterator[Path]:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="load-", dir=out))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(*, requests: int = 5000, concurrency: int = 32, directory: str = "demo",
        database_url: str | None = None, workers: int = 2, out: Path = ROOT / "bench-out",
        shared: Path = ROOT.parent / "shared", seed: int = 7, clients: int = 40,
        echo: Callable[[str], None] = print) -> Results:
    """Prepare, start the server, drive the load, stop, check; the results."""
    rng = random.Random(seed)
    run_id = secrets.token_hex(3)
    with _workdir(out) as work:
        if database_url is None:
            url = prepare_sqlite(directory, out=out, work=work, shared=shared, echo=echo)
        else:
            url = database_url
            prepare_url(url, directory, out=out, shared=shared, echo=echo)
        package = None
        if directory.startswith("scale"):
            from bench.run import ensure_package
            package = ensure_package(shared, int(directory.partition(":")[2] or 5000), out)
        world = create_world(url, run=run_id, clients=clients)
        server = Server(url, workers=workers, log=work / "server.log",
                        env={"SIGNPOST_GEOCODE_CACHE_PATH": str(work / "geocode.sqlite")})
        with server:
            search_path = "/api/v1/search"
            import httpx2 as httpx
            probe = httpx.get(f"{server.url}{search_path}", params={"q": "food"}, timeout=60)
            search_params = searches(directory, package, rng)
            if probe.status_code == 503:
                # PostgreSQL without Elasticsearch has no search engine: list by name instead.
                echo("  no search engine for this database (PostgreSQL needs Elasticsearch): "
                     "the search share lists services by name instead")
                search_path = "/api/v1/services"
                search_params = [{"name": p["q"].split()[0]} for p in search_params]
            service_ids = _service_ids(server.url)
            echo(f"  {len(service_ids)} listings sampled for detail, {len(world.clients)} "
                 f"clients, {len(world.targets)} referral targets; server at {server.url} "
                 f"({workers} workers)")
            load = Load(server.url, world, search_params, service_ids, requests=requests,
                        concurrency=concurrency, seed=seed, search_path=search_path)
            results = load.run()
            results.peak_rss_mb = server.peak_rss_mb()
            if results.error_count:
                log_tail = server.log_tail(10)
                if log_tail:
                    echo("  server log (last lines):\n" + log_tail)
        results.check = check_writes(url, agency_id=world.agency_id, acks=results.acks)
    return results


def report(results: Results, echo: Callable[[str], None] = print) -> None:
    """Print the figures."""
    echo(f"  {'kind':<9} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
         f"{'errors':>6} {'409s':>5}")
    everything: list[float] = []
    for kind, samples in sorted(results.latencies.items()):
        everything += samples
        echo(f"  {kind:<9} {len(samples):>8} {_percentile(samples, .5):>8.1f} "
             f"{_percentile(samples, .95):>8.1f} {_percentile(samples, .99):>8.1f} "
             f"{results.errors[kind]:>6} {results.conflicts[kind]:>5}")
    echo(f"  {'all':<9} {len(everything):>8} {_percentile(everything, .5):>8.1f} "
         f"{_percentile(everything, .95):>8.1f} {_percentile(everything, .99):>8.1f} "
         f"{results.error_count:>6} {sum(results.conflicts.values()):>5}")
    echo(f"  throughput: {results.requests / results.seconds:.1f} requests/s "
         f"({results.requests} in {results.seconds:.1f} s)")
    if results.peak_rss_mb:
        peaks = sorted(results.peak_rss_mb.values(), reverse=True)
        echo(f"  server peak RSS (VmHWM): {' + '.join(f'{p:.0f}' for p in peaks)} MB "
             f"= {sum(peaks):.0f} MB over {len(peaks)} processes")
    for example in results.error_examples:
        echo(f"  error: {example}")
    check = results.check
    echo(f"  referral writes: {check['acknowledged']} acknowledged over {check['referrals']} "
         f"referrals ({check['events']} events); lost {len(check['lost'])}, histories not "
         f"1..version {len(check['broken'])}, audit counts off {len(check['audit_mismatch'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--directory", default="demo", help="demo, factory:N or scale:N")
    parser.add_argument("--database-url", default=None,
                        help="a scratch PostgreSQL (or SQLite) database; default: a temporary "
                             "SQLite file")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    backend = "PostgreSQL" if args.database_url and args.database_url.startswith(
        "postgresql") else "SQLite"
    print(f"load: {args.requests} requests at concurrency {args.concurrency}, {backend}, "
          f"directory {args.directory} (the machine may be shared: figures are contended)")
    results = run(requests=args.requests, concurrency=args.concurrency,
                  directory=args.directory, database_url=args.database_url,
                  workers=args.workers, out=args.out, shared=args.shared, seed=args.seed)
    report(results)
    sys.exit(1 if results.error_count or results.lost_writes else 0)


if __name__ == "__main__":
    main()
