"""`make bench`: import and (later) search figures, printed side by side.

Import: the HSDS 3.1 package of `../shared/bench/scale_hsds.py` (408,170 locations by default)
loaded into a fresh SQLite directory with the offline geocoder, in a child process so its peak
memory is its own. Prints services per second and peak RSS, with what it takes to compare
figures taken on different machines: the CPU time spent, the share of it the machine's host
took back (steal, on a virtual machine), and how long a fixed pure-Python loop takes there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_package(shared: Path, n: int, out: Path) -> Path:
    """Generate the scale package once (it is deterministic) and reuse it."""
    folder = out / f"scale-{n}"
    if not (folder / "datapackage.json").exists():
        subprocess.run([sys.executable, str(shared / "bench" / "scale_hsds.py"),
                        str(shared / "datasets"), str(folder), str(n)], check=True)
    return folder


def reference_loop_seconds() -> float:
    """The best of three runs of a fixed pure-Python loop: how fast this machine runs the kind
    of code an import mostly is (its rate scales with this, not with the core count alone)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(5_000_000):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 2)


def _cpu_ticks() -> tuple[int, int] | None:
    """(all, stolen) CPU ticks since boot from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def _steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    if before is None or after is None or after[0] == before[0]:
        return None
    return round(100 * (after[1] - before[1]) / (after[0] - before[0]), 1)


def _cpu_seconds(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def import_once(package: Path, db_path: Path) -> dict:
    """Import `package` into a new SQLite file in this process; return the figures."""
    from indexer.pipeline import load
    from service.db import Database

    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    db = Database(f"sqlite:///{db_path}")
    db.migrate()
    reference = reference_loop_seconds()
    load_before = round(os.getloadavg()[0], 2)  # another busy process skews every figure
    ticks = _cpu_ticks()
    main_cpu = _cpu_seconds(resource.getrusage(resource.RUSAGE_SELF))
    started = time.perf_counter()
    report = load(db, package, source="bench")
    seconds = time.perf_counter() - started
    main_cpu = _cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - main_cpu
    workers_cpu = _cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN))
    steal = _steal_percent(ticks, _cpu_ticks())
    services = report.counts["service"]["read"]
    started = time.perf_counter()
    again = load(db, package, source="bench")
    reimport = time.perf_counter() - started
    db.dispose()
    return {
        "services": services,
        "load_before": load_before,
        "seconds": round(seconds, 1),
        "services_per_second": round(services / seconds),
        "cpu_seconds": {"main": round(main_cpu, 1), "workers": round(workers_cpu, 1)},
        "steal_percent": steal,
        "reference_loop_seconds": reference,
        "reimport_unchanged_seconds": round(reimport, 1),
        "unchanged": again.counts["service"].get("unchanged", 0),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # the reading and index-building worker processes (the largest of them)
        "worker_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
        "precision": dict(report.precision),
        "phases": report.seconds,
        "apply_seconds": report.seconds.get("apply"),
    }


FORMATS = [  # (label, path under shared/datasets, format or None to detect)
    ("HSDS 1.x (Miami 211)", "hsds_open211_miami", None),
    ("Ohana CSV (San Mateo)", "hsds_ohana_smc_sample", None),
    ("AIRS 211 flat (DC)", "airs_211_exports/dc_211_airs_export_2014.csv", None),
    ("AIRS 211 flat (SF)", "airs_211_exports/sf_211_airs_export_2014.csv", None),
    ("flat list (SAMHSA mental health)",
     "samhsa_treatment_facilities/samhsa_mental_health_facilities.csv", None),
    ("flat list (HRSA health centres)", "hrsa_health_center_sites/hrsa_fqhc_sites.csv", None),
    ("flat list (USDA farmers markets)", "usda_farmers_markets/usda_farmers_markets.csv", None),
    ("GeoJSON list (DC SNAP retailers)",
     "dc_region_snap_retailers/snap_retailers_dc_border_counties.geojson", None),
]


def per_format(shared: Path, out: Path) -> None:
    """Import rate of each real format, each into a fresh SQLite directory."""
    from indexer.pipeline import load
    from service.db import Database

    print("import rate per format (fresh SQLite directory, offline geocoding, search index "
          "included):")
    for label, relative, fmt in FORMATS:
        db_path = out / "format.db"
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
        db = Database(f"sqlite:///{db_path}")
        db.migrate()
        started = time.perf_counter()
        report = load(db, shared / "datasets" / relative, format=fmt)
        seconds = time.perf_counter() - started
        services = report.counts.get("service", {}).get("read", 0)
        rows = sum(c.get("read", 0) for c in report.counts.values())
        print(f"  {label:36} {services:>7,} services {rows:>8,} rows in {seconds:6.1f} s = "
              f"{services / seconds:7,.0f} services/s")
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--n", type=int, default=408170, help="locations in the scale package")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-out")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(import_once(args.child, args.out / "import.db")))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    per_format(args.shared, args.out)
    package = ensure_package(args.shared, args.n, args.out)
    result = subprocess.run([sys.executable, "-m", "bench.run", "--out", str(args.out),
                             "--child", str(package)], cwd=ROOT, check=True,
                            capture_output=True, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"import of {package.name} (HSDS 3.1 CSV, offline geocoding, SQLite; "
          f"{os.cpu_count()} cores, load average {figures['load_before']} before):")
    print(f"  {figures['services']:,} services in {figures['seconds']} s = "
          f"{figures['services_per_second']:,} services/s (target 5,000)")
    print(f"  re-import of the same package: {figures['reimport_unchanged_seconds']} s, "
          f"{figures['unchanged']:,} services unchanged")
    print(f"  peak memory {figures['peak_rss_mb']:,} MB (largest worker process "
          f"{figures['worker_peak_rss_mb']:,} MB); precision {figures['precision']}")
    print(f"  seconds by phase: {figures['phases']} (the directory's write lock is held only "
          f"during 'apply': {figures['apply_seconds']} s)")
    print(f"  CPU time: {figures['cpu_seconds']['main']} s in this process, "
          f"{figures['cpu_seconds']['workers']} s in its workers; machine speed: the reference "
          f"loop took {figures['reference_loop_seconds']} s, and the host took back "
          f"{figures['steal_percent']}% of the CPU during the import (steal)")


if __name__ == "__main__":
    main()
