"""Build the bundled offline geocoding tables in ``data/geo`` from the shared source files.

Usage (from the repository root)::

    python -m indexer.build_geo_tables ../shared/datasets/us_zip_centroids data/geo

Inputs (see ``../shared/datasets/README.md``, section 6):

* ``census_zcta_gazetteer.tsv`` -- Census 2010 ZCTA centroids (public domain). CRLF line endings,
  a trailing line of tabs, and the columns ``INTPTLONG`` *before* ``INTPTLAT``.
* ``geonames_us_postal_codes.tsv`` -- GeoNames US postal codes (CC BY 4.0), no header, 12
  columns. Military APO/FPO/DPO codes (states AA/AE/AP) carry placeholder coordinates and are
  dropped, as is any row whose coordinates fall outside its state's bounding box.
* ``us_city_centroids_from_geonames.csv`` -- only used as a cross-check of the city table, which
  is rebuilt here from the cleaned postal-code rows.

Outputs (plain CSV, UTF-8, ``\\n`` line endings, coordinates rounded to 5 decimals):

* ``us_zips.csv`` -- ``zip,lat,lon,city,state,county,precision_source``: one row per ZIP; the
  ZCTA centroid where the ZCTA exists (``zcta``), otherwise the GeoNames point (``geonames``,
  e.g. PO-box and unique-business ZIPs).
* ``us_cities.csv`` -- ``city,state,county,lat,lon,zips``: one row per (city, state); the
  centroid is the per-axis median of the city's GeoNames postal points (the town, not the
  middle of a large rural ZCTA); ``zips`` is space-separated.
* ``us_states.csv`` -- ``code,name,fips,lat,lon,min_lat,min_lon,max_lat,max_lon``: hand-written
  below (states, DC, territories and freely associated states), with a rough centroid and a
  generous bounding box (``min_lon > max_lon`` means the box crosses the 180th meridian).
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("indexer.build_geo_tables")

ZCTA_FILE = "census_zcta_gazetteer.tsv"
GEONAMES_FILE = "geonames_us_postal_codes.tsv"
CITIES_FILE = "us_city_centroids_from_geonames.csv"

ZIP_COLUMNS = ("zip", "lat", "lon", "city", "state", "county", "precision_source")
CITY_COLUMNS = ("city", "state", "county", "lat", "lon", "zips")
STATE_COLUMNS = (
    "code", "name", "fips", "lat", "lon", "min_lat", "min_lon", "max_lat", "max_lon",
)

MILITARY_STATES = frozenset({"AA", "AE", "AP"})
MILITARY_PLACES = frozenset({"APO", "FPO", "DPO"})
BBOX_MARGIN_DEG = 0.3  # ZCTAs straddle state lines; placeholder points are far off

# ZIP prefixes GeoNames does not cover (its US dump leaves out Puerto Rico and the USVI).
PREFIX_STATES = {"006": "PR", "007": "PR", "009": "PR", "008": "VI"}

# code, name, FIPS, rough centroid (lat, lon), bounding box (min_lat, min_lon, max_lat, max_lon).
STATES: tuple[tuple[str, str, str, float, float, float, float, float, float], ...] = (
    ("AL", "Alabama", "01", 32.79, -86.83, 30.14, -88.48, 35.01, -84.89),
    ("AK", "Alaska", "02", 64.73, -152.47, 51.20, 172.40, 71.50, -129.90),
    ("AZ", "Arizona", "04", 34.29, -111.66, 31.33, -114.82, 37.00, -109.04),
    ("AR", "Arkansas", "05", 34.90, -92.44, 33.00, -94.62, 36.50, -89.64),
    ("CA", "California", "06", 37.18, -119.47, 32.53, -124.48, 42.01, -114.13),
    ("CO", "Colorado", "08", 39.00, -105.55, 36.99, -109.06, 41.00, -102.04),
    ("CT", "Connecticut", "09", 41.62, -72.73, 40.95, -73.73, 42.05, -71.79),
    ("DE", "Delaware", "10", 38.99, -75.51, 38.45, -75.79, 39.84, -75.05),
    ("DC", "District of Columbia", "11", 38.90, -77.03, 38.79, -77.12, 38.996, -76.91),
    ("FL", "Florida", "12", 28.63, -82.45, 24.40, -87.63, 31.00, -80.03),
    ("GA", "Georgia", "13", 32.64, -83.44, 30.36, -85.61, 35.00, -80.84),
    ("HI", "Hawaii", "15", 20.29, -156.37, 18.91, -178.33, 28.40, -154.81),
    ("ID", "Idaho", "16", 44.35, -114.61, 41.99, -117.24, 49.00, -111.04),
    ("IL", "Illinois", "17", 40.04, -89.20, 36.97, -91.51, 42.51, -87.02),
    ("IN", "Indiana", "18", 39.89, -86.28, 37.77, -88.10, 41.76, -84.78),
    ("IA", "Iowa", "19", 42.08, -93.50, 40.38, -96.64, 43.50, -90.14),
    ("KS", "Kansas", "20", 38.49, -98.38, 36.99, -102.05, 40.00, -94.59),
    ("KY", "Kentucky", "21", 37.53, -85.30, 36.50, -89.57, 39.15, -81.96),
    ("LA", "Louisiana", "22", 31.07, -92.00, 28.93, -94.04, 33.02, -88.82),
    ("ME", "Maine", "23", 45.37, -69.24, 42.98, -71.08, 47.46, -66.95),
    ("MD", "Maryland", "24", 39.05, -76.79, 37.91, -79.49, 39.72, -75.05),
    ("MA", "Massachusetts", "25", 42.26, -71.81, 41.24, -73.51, 42.89, -69.93),
    ("MI", "Michigan", "26", 44.35, -85.41, 41.70, -90.42, 48.31, -82.41),
    ("MN", "Minnesota", "27", 46.28, -94.31, 43.50, -97.24, 49.38, -89.49),
    ("MS", "Mississippi", "28", 32.74, -89.67, 30.17, -91.66, 35.01, -88.10),
    ("MO", "Missouri", "29", 38.36, -92.46, 35.99, -95.77, 40.61, -89.10),
    ("MT", "Montana", "30", 47.05, -109.63, 44.36, -116.05, 49.00, -104.04),
    ("NE", "Nebraska", "31", 41.54, -99.80, 40.00, -104.05, 43.00, -95.31),
    ("NV", "Nevada", "32", 39.33, -116.63, 35.00, -120.01, 42.00, -114.04),
    ("NH", "New Hampshire", "33", 43.68, -71.58, 42.70, -72.56, 45.31, -70.61),
    ("NJ", "New Jersey", "34", 40.19, -74.67, 38.93, -75.56, 41.36, -73.89),
    ("NM", "New Mexico", "35", 34.41, -106.11, 31.33, -109.05, 37.00, -103.00),
    ("NY", "New York", "36", 42.95, -75.53, 40.50, -79.76, 45.02, -71.86),
    ("NC", "North Carolina", "37", 35.56, -79.39, 33.84, -84.32, 36.59, -75.46),
    ("ND", "North Dakota", "38", 47.45, -100.47, 45.94, -104.05, 49.00, -96.55),
    ("OH", "Ohio", "39", 40.29, -82.79, 38.40, -84.82, 41.98, -80.52),
    ("OK", "Oklahoma", "40", 35.59, -97.49, 33.62, -103.00, 37.00, -94.43),
    ("OR", "Oregon", "41", 43.93, -120.56, 41.99, -124.57, 46.29, -116.46),
    ("PA", "Pennsylvania", "42", 40.88, -77.80, 39.72, -80.52, 42.27, -74.69),
    ("RI", "Rhode Island", "44", 41.68, -71.56, 41.15, -71.91, 42.02, -71.12),
    ("SC", "South Carolina", "45", 33.92, -80.90, 32.03, -83.35, 35.22, -78.54),
    ("SD", "South Dakota", "46", 44.44, -100.23, 42.48, -104.06, 45.95, -96.44),
    ("TN", "Tennessee", "47", 35.86, -86.35, 34.98, -90.31, 36.68, -81.65),
    ("TX", "Texas", "48", 31.48, -99.33, 25.84, -106.65, 36.50, -93.51),
    ("UT", "Utah", "49", 39.31, -111.67, 36.99, -114.05, 42.00, -109.04),
    ("VT", "Vermont", "50", 44.07, -72.67, 42.73, -73.44, 45.02, -71.46),
    ("VA", "Virginia", "51", 37.52, -78.85, 36.54, -83.68, 39.47, -75.24),
    ("WA", "Washington", "53", 47.38, -120.45, 45.54, -124.85, 49.00, -116.92),
    ("WV", "West Virginia", "54", 38.64, -80.62, 37.20, -82.64, 40.64, -77.72),
    ("WI", "Wisconsin", "55", 44.62, -89.99, 42.49, -92.89, 47.31, -86.25),
    ("WY", "Wyoming", "56", 42.99, -107.55, 40.99, -111.06, 45.01, -104.05),
    ("AS", "American Samoa", "60", -14.30, -170.70, -14.60, -171.10, -11.00, -168.10),
    ("FM", "Federated States of Micronesia", "64", 6.92, 158.18, 0.90, 137.30, 10.10, 163.10),
    ("GU", "Guam", "66", 13.44, 144.79, 13.20, 144.60, 13.70, 145.00),
    ("MH", "Marshall Islands", "68", 7.13, 171.18, 4.50, 160.80, 14.70, 172.20),
    ("MP", "Northern Mariana Islands", "69", 15.19, 145.75, 14.10, 144.90, 20.60, 146.10),
    ("PW", "Palau", "70", 7.50, 134.58, 2.80, 131.10, 8.20, 134.80),
    ("PR", "Puerto Rico", "72", 18.22, -66.43, 17.85, -67.95, 18.55, -65.20),
    ("VI", "U.S. Virgin Islands", "78", 18.34, -64.90, 17.65, -65.10, 18.45, -64.55),
)


@dataclass(frozen=True)
class PostalRow:
    """One usable GeoNames postal-code row (after cleaning)."""

    zip: str
    city: str
    state: str
    county: str
    lat: float
    lon: float
    accuracy: int
    order: int


def in_bbox(code: str, lat: float, lon: float, margin: float = BBOX_MARGIN_DEG) -> bool:
    """True when (lat, lon) lies inside the state's bounding box (plus a margin)."""
    box = _BOXES.get(code)
    if box is None:
        return False
    min_lat, min_lon, max_lat, max_lon = box
    if not (min_lat - margin <= lat <= max_lat + margin):
        return False
    if min_lon <= max_lon:
        return min_lon - margin <= lon <= max_lon + margin
    return lon >= min_lon - margin or lon <= max_lon + margin  # crosses the 180th meridian


_BOXES = {row[0]: row[5:9] for row in STATES}


def fmt_coord(value: float) -> str:
    """Format a coordinate rounded to 5 decimals without trailing zeros."""
    text = f"{round(value, 5):.5f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def clean_city(name: str) -> str:
    """Tidy a GeoNames place name (all-caps names, "Lincoln'S")."""
    name = " ".join(name.split())
    if name.isupper() and len(name) > 3:
        name = name.title()
    return re.sub(r"'S\b", "'s", name)


def clean_county(name: str) -> str:
    """Tidy a GeoNames county name: truncated suffixes and "City of X" become uniform."""
    name = " ".join(name.split())
    match = re.match(r"(?i)^city of (.+)$", name)
    if match:
        return f"{match.group(1)} (city)"
    if re.search(r"\(cit?y?$", name):
        return re.sub(r"\(cit?y?$", "(city)", name)
    if name.endswith("(C"):
        return name + "A)"
    return name


def _parse_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_zctas(path: Path) -> dict[str, tuple[float, float]]:
    """Read the ZCTA gazetteer (CRLF, trailing tab line, INTPTLONG before INTPTLAT)."""
    out: dict[str, tuple[float, float]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = [h.strip() for h in next(reader)]
        i_zip, i_lon, i_lat = (header.index(c) for c in ("GEOID", "INTPTLONG", "INTPTLAT"))
        for row in reader:
            row = [c.strip() for c in row]
            if not any(row):
                continue  # the trailing line of tabs
            code = row[i_zip]
            lat, lon = _parse_float(row[i_lat]), _parse_float(row[i_lon])
            if not re.fullmatch(r"\d{5}", code) or lat is None or lon is None:
                log.warning("skipping malformed ZCTA row %r", row[:1])
                continue
            out[code] = (lat, lon)
    return out


def read_geonames(path: Path, stats: Counter[str]) -> Iterator[PostalRow]:
    """Yield cleaned GeoNames rows; military codes and placeholder coordinates are dropped."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for order, row in enumerate(reader):
            if len(row) < 12:
                stats["geonames_malformed"] += 1
                continue
            code, city, state, county = row[1].strip(), row[2], row[4].strip(), row[5]
            if state in MILITARY_STATES or city.strip().upper() in MILITARY_PLACES:
                stats["geonames_military_dropped"] += 1
                continue
            lat, lon = _parse_float(row[9]), _parse_float(row[10])
            if not re.fullmatch(r"\d{5}", code) or lat is None or lon is None:
                stats["geonames_malformed"] += 1
                continue
            accuracy = int(row[11]) if row[11].strip().isdigit() else 0
            yield PostalRow(
                zip=code, city=clean_city(city), state=state, county=clean_county(county),
                lat=lat, lon=lon, accuracy=accuracy, order=order,
            )


def _pick_primary(rows: list[PostalRow], city_sizes: Counter[tuple[str, str]]) -> PostalRow:
    """Pick a ZIP's main place: best accuracy, then the place with more ZIPs, then file order."""
    return min(rows, key=lambda r: (-r.accuracy, -city_sizes[(r.city, r.state)], r.order))


def _median_point(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    pts = list(points)
    return statistics.median(p[0] for p in pts), statistics.median(p[1] for p in pts)


def _haversine_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 3958.7613 * math.asin(min(1.0, math.sqrt(h)))


def build(source: Path, out_dir: Path) -> Counter[str]:
    """Build all three tables from ``source`` into ``out_dir``; returns build statistics."""
    stats: Counter[str] = Counter()
    zctas = read_zctas(source / ZCTA_FILE)
    stats["zcta_rows"] = len(zctas)

    all_rows = list(read_geonames(source / GEONAMES_FILE, stats))
    by_zip: dict[str, list[PostalRow]] = defaultdict(list)
    for r in all_rows:
        if r.state not in _BOXES:
            stats["geonames_unknown_state_dropped"] += 1
            continue
        by_zip[r.zip].append(r)
    city_sizes: Counter[tuple[str, str]] = Counter(
        (r.city, r.state) for rows in by_zip.values() for r in rows
    )

    zips: dict[str, tuple[float, float, str, str, str, str]] = {}
    prefix_votes: dict[str, Counter[str]] = defaultdict(Counter)
    members: dict[str, list[PostalRow]] = {}  # GeoNames rows whose place names a ZIP carries
    for code, (lat, lon) in zctas.items():
        rows = [r for r in by_zip.get(code, []) if in_bbox(r.state, lat, lon)]
        if by_zip.get(code) and not rows:
            stats["zcta_geonames_state_mismatch"] += 1
        if rows:
            best = _pick_primary(rows, city_sizes)
            zips[code] = (lat, lon, best.city, best.state, best.county, "zcta")
            prefix_votes[code[:3]][best.state] += 1
            members[code] = rows
        else:
            zips[code] = (lat, lon, "", "", "", "zcta")
    for code, rows in by_zip.items():
        if code in zctas:
            continue
        good = [r for r in rows if in_bbox(r.state, r.lat, r.lon)]
        if not good:
            stats["geonames_placeholder_dropped"] += 1
            continue
        best = _pick_primary(good, city_sizes)
        zips[code] = (best.lat, best.lon, best.city, best.state, best.county, "geonames")
        members[code] = [r for r in good if r.state == best.state]

    # ZCTAs GeoNames knows nothing about get their state from the ZIP prefix.
    for code, (lat, lon, city, state, county, src) in list(zips.items()):
        if state:
            continue
        prefix = code[:3]
        guess = PREFIX_STATES.get(prefix) or (
            prefix_votes[prefix].most_common(1)[0][0] if prefix_votes.get(prefix) else ""
        )
        if guess and not in_bbox(guess, lat, lon):
            guess = ""
        stats["zcta_state_from_prefix" if guess else "zcta_state_unknown"] += 1
        zips[code] = (lat, lon, city, guess, county, src)

    # Cities: every (place, state) a usable ZIP carries; the centroid is the median ZIP point.
    city_zips: dict[tuple[str, str], set[str]] = defaultdict(set)
    city_counties: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    city_points: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for code, rows in members.items():
        for r in rows:
            city_zips[(r.city, r.state)].add(code)
            if r.county:
                city_counties[(r.city, r.state)][r.county] += 1
            if in_bbox(r.state, r.lat, r.lon):
                city_points[(r.city, r.state)].append((r.lat, r.lon))
    cities = []
    for (city, state), codes in city_zips.items():
        # GeoNames points sit on the town (post office); a big rural ZCTA's centroid can be
        # 100+ miles from it, so ZIP points are only the fallback.
        points = city_points.get((city, state)) or [(zips[c][0], zips[c][1]) for c in codes]
        lat, lon = _median_point(points)
        county = ""
        if city_counties[(city, state)]:
            top = city_counties[(city, state)].most_common()
            county = min(c for c, n in top if n == top[0][1])
        cities.append((city, state, county, lat, lon, " ".join(sorted(codes))))
    cities.sort(key=lambda c: (c[1], c[0].casefold(), c[0]))

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "us_zips.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(ZIP_COLUMNS)
        for code in sorted(zips):
            lat, lon, city, state, county, src = zips[code]
            writer.writerow([code, fmt_coord(lat), fmt_coord(lon), city, state, county, src])
            stats[f"zips_{src}"] += 1
    with (out_dir / "us_cities.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(CITY_COLUMNS)
        for city, state, county, lat, lon, codes in cities:
            writer.writerow([city, state, county, fmt_coord(lat), fmt_coord(lon), codes])
    stats["cities"] = len(cities)
    with (out_dir / "us_states.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(STATE_COLUMNS)
        for code, name, fips, *coords in STATES:
            writer.writerow([code, name, fips, *(fmt_coord(c) for c in coords)])
    stats["states"] = len(STATES)

    _cross_check(source, zips, cities, stats)
    return stats


def _cross_check(
    source: Path,
    zips: dict[str, tuple[float, float, str, str, str, str]],
    cities: list[tuple[str, str, str, float, float, str]],
    stats: Counter[str],
) -> None:
    """Compare against the shared city file and the hand-written state boxes (counts only)."""
    for code, (lat, lon, _city, state, _county, _src) in zips.items():
        if state and not in_bbox(state, lat, lon, margin=0.0):
            stats["check_zip_outside_state_box"] += 1
            log.info("ZIP %s lies outside the %s box", code, state)
    for code, *rest in STATES:
        lat, lon = rest[2], rest[3]
        if not in_bbox(code, lat, lon, margin=0.0):
            stats["check_state_centroid_outside_box"] += 1
            log.warning("state %s centroid lies outside its own box", code)
    path = source / CITIES_FILE
    if not path.exists():
        return
    ours = {(c[0].casefold(), c[1]): (c[3], c[4]) for c in cities}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            key = (clean_city(row["city"]).casefold(), row["state_code"])
            if row["state_code"] in MILITARY_STATES:
                continue
            if key not in ours:
                stats["check_shared_city_missing"] += 1
                continue
            lat, lon = _parse_float(row["latitude"]), _parse_float(row["longitude"])
            if lat is None or lon is None:
                continue
            if _haversine_mi(lat, lon, *ours[key]) > 25:
                stats["check_shared_city_moved_25mi"] += 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder with the shared source files")
    parser.add_argument("out", type=Path, help="output folder, normally data/geo")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every check failure")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s"
    )
    stats = build(args.source, args.out)
    for key in sorted(stats):
        sys.stderr.write(f"{key}: {stats[key]}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
