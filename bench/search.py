"""Search figures: in-process p50/p95 over the scale package's 400 queries and the colloquial
phrasings, HTTP throughput with wrk at concurrency 16, and the shared baselines on the same
package in the same run.

Usage: python -m bench.search [--n 408170] [--shared ../shared] [--pg DSN]
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.run import ROOT, ensure_package


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[int(len(samples) * 0.95)]


def prepare(package: Path, db_path: Path) -> None:
    """Import the package (and build its search index) once; rebuild an index of an older
    format."""
    from indexer.pipeline import load
    from service.db import Database
    from service.search.sqlite import SqliteSearchBackend

    if db_path.exists():
        db = Database(f"sqlite:///{db_path}")
        backend = SqliteSearchBackend(db)
        backend.ensure_schema()
        if not backend.is_current():  # what the server does on start, timed here
            started = time.perf_counter()
            backend.rebuild()
            print(f"  search index rebuilt (older format) in "
                  f"{time.perf_counter() - started:.0f} s")
        db.dispose()
        return
    db = Database(f"sqlite:///{db_path}.tmp")
    db.migrate()
    started = time.perf_counter()
    load(db, package, source="bench")
    print(f"  imported and indexed in {time.perf_counter() - started:.0f} s")
    db.dispose()
    os.replace(f"{db_path}.tmp", db_path)


def in_process(db_path: Path, queries: list[dict[str, str]], phrasings: list[str]) -> None:
    from indexer.geocode import Geocoder
    from service.db import Database
    from service.search.schemas import SearchQuery
    from service.search.service import search
    from service.search.sqlite import SqliteSearchBackend

    db = Database(f"sqlite:///{db_path}")
    backend = SqliteSearchBackend(db)
    geocoder = Geocoder()
    print(f"  {backend.count():,} documents")

    from service.errors import BadRequest

    def placeable(q: SearchQuery) -> bool:
        try:
            search(backend, geocoder, q)
            return True
        except BadRequest:
            return False

    def run(items: list[SearchQuery]) -> tuple[list[float], int]:
        items = [q for q in items if placeable(q)]  # also warms up
        times, hits = [], 0
        for q in items:
            started = time.perf_counter()
            response = search(backend, geocoder, q)
            times.append((time.perf_counter() - started) * 1000)
            hits += bool(response.results)
        return times, hits

    times, hits = run([SearchQuery(q=r["q"], near=r["near"], radius_mi=float(r["radius_mi"]))
                       for r in queries])
    p50, p95 = _percentiles(times)
    print(f"  signpost (embedded, ranking + reasons + facets, no cache): p50 {p50:.2f} ms, "
          f"p95 {p95:.2f} ms, mean {statistics.mean(times):.2f} ms, queries with results "
          f"{hits}/{len(times)}")
    near = [r["near"] for r in queries]
    times, hits = run([SearchQuery(q=p, near=near[i % len(near)], radius_mi=10)
                       for i, p in enumerate(phrasings)])
    p50, p95 = _percentiles(times)
    print(f"  signpost on {len(phrasings)} colloquial phrasings: p50 {p50:.2f} ms, "
          f"p95 {p95:.2f} ms")
    db.dispose()


def http(db_path: Path, queries: list[dict[str, str]], port: int = 8123) -> None:
    if shutil.which("wrk") is None:
        print("  wrk not installed (apt-get install wrk): HTTP throughput not measured")
        return
    # Two workers, declared as `signpost serve --workers 2` declares them: uvicorn reads
    # WEB_CONCURRENCY, and each worker runs its share of the CPUs' worth of searches at once.
    env = {**os.environ, "SIGNPOST_DATABASE_URL": f"sqlite:///{db_path}",
           "SIGNPOST_DEMO_NOTICE": "false", "WEB_CONCURRENCY": "2"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, start_new_session=True)
    try:
        import urllib.request
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        script = Path(db_path).parent / "wrk-search.lua"
        paths = [f"/api/v1/search?q={r['q'].replace(' ', '+')}&near={r['near']}"
                 f"&radius_mi={r['radius_mi']}" for r in queries]
        script.write_text("paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
                          "i = 0\nrequest = function()\n  i = i % #paths + 1\n"
                          "  return wrk.format('GET', paths[i])\nend\n")
        # wrk opens its 16 keep-alive connections at once, and each stays with the worker
        # that accepted it: a worker still starting when /health first answers would leave
        # all of them to the other (measured: 220 requests/s instead of 370). So wait for
        # both to be up, and warm them, before measuring.
        time.sleep(5)
        subprocess.run(["wrk", "-t", "2", "-c", "16", "-d", "3s", "-s", str(script),
                        f"http://127.0.0.1:{port}"], capture_output=True, check=True)
        result = subprocess.run(["wrk", "-t", "2", "-c", "16", "-d", "15s", "--latency", "-s",
                                 str(script), f"http://127.0.0.1:{port}"],
                                capture_output=True, text=True, check=True)
        for line in result.stdout.splitlines():
            if any(k in line for k in ("Requests/sec", "50%", "99%", "Non-2xx", "Socket",
                                       "requests in")):
                print("  wrk c16: " + line.strip())
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def baselines(shared: Path, package: Path, dsn: str) -> None:
    result = subprocess.run(
        [sys.executable, str(shared / "bench" / "baselines.py"), str(package),
         str(shared / "datasets" / "us_zip_centroids" / "census_zcta_gazetteer.tsv"),
         "--pg", dsn], capture_output=True, text=True)
    for line in (result.stdout + result.stderr).splitlines():
        print("  baseline " + line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--n", type=int, default=408170)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--skip-baselines", action="store_true")
    parser.add_argument("--pg", default="dbname=test user=postgres host=127.0.0.1",
                        help="PostgreSQL for the Ohana-style baseline (its table is replaced)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    package = ensure_package(args.shared, args.n, args.out)
    with open(package / "queries.tsv", newline="") as handle:
        queries = list(csv.DictReader(handle, delimiter="\t"))
    from service.directory.categories import DATA_DIR, read_phrasings
    phrasings = [p for p, _ in read_phrasings(DATA_DIR / "phrasings.tsv")]
    print(f"search on {package.name}:")
    db_path = args.out / f"search-{args.n}.db"
    prepare(package, db_path)
    in_process(db_path, queries, phrasings)
    http(db_path, queries)
    if not args.skip_baselines:
        baselines(args.shared, package, args.pg)


if __name__ == "__main__":
    main()
