"""Offline-first, private-by-default geocoding for Signpost.

What resolves offline, from the bundled tables in ``data/geo`` (built by
``indexer.build_geo_tables`` from Census ZCTA and GeoNames data):

* ``"38.9,-77.0"`` -- coordinates, precision ``"exact"``;
* ``"20001"``, ``"20001-1234"``, ``"6708"`` (zero-stripped) -- ZIP centroid, ``"zip"``;
* ``"Washington, DC"``, ``"Washington DC"``, ``"Saint Louis, Missouri"`` -- city centroid,
  ``"city"``;
* ``"DC"``, ``"Virginia"`` (or a city the tables do not know plus a state) -- state, ``"state"``.

A street address goes to an online geopy geocoder *only* when an administrator configured one
(``online=``); by default a client's address never leaves the machine. Online calls are rate
limited with geopy's ``RateLimiter`` (Nominatim's policy allows about one request a second),
answers -- including "not found" -- are kept in a small SQLite cache keyed by a hash of the
normalised query, and every online failure (timeout, HTTP 429, 5xx, unreachable) falls back to
the ZIP found in the address, then the city centroid. Results carry their precision, and
``None`` means unresolvable. Logs hold outcome counts only, never address text.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import logging
import math
import os
import re
import sqlite3
import threading
import time
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from geopy.exc import GeocoderRateLimited, GeopyError
from geopy.extra.rate_limiter import RateLimiter
from geopy.geocoders.base import Geocoder as OnlineGeocoder

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "geo"
PRECISIONS = ("exact", "address", "zip", "city", "state")
EARTH_RADIUS_MI = 3958.7613

#: An online answer farther than this from the address's own ZIP or city centroid is rejected
#: (the geocoder matched a same-named street somewhere else).
MAX_ONLINE_DRIFT_MI = 50.0
#: "Not found" answers are trusted this long; found coordinates are kept indefinitely.
NOT_FOUND_TTL_SECONDS = 30 * 24 * 3600
#: After a 429 without Retry-After, or after repeated failures, online calls pause this long.
ONLINE_BACKOFF_SECONDS = 60.0
ONLINE_FAILURES_BEFORE_BACKOFF = 3

#: `GeoTables.nearest_zip` answers None beyond this (a Guam site has no ZCTA; Hawaii's is no
#: answer). Some rural Alaska ZCTA centroids lie 100+ miles from their towns.
NEAREST_ZIP_MAX_MILES = 150.0

_GRID_DEG = 0.25
_STATE_BOX_MARGIN_DEG = 0.3


# --------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class GeoPoint:
    """A resolved location and how precise it is (exact|address|zip|city|state)."""

    lat: float
    lon: float
    precision: str
    label: str = ""

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}")


@dataclass(frozen=True)
class ZipInfo:
    """One ZIP code: its centroid and main place (source is "zcta" or "geonames")."""

    zip: str
    lat: float
    lon: float
    city: str
    state: str
    county: str
    source: str = "zcta"


@dataclass(frozen=True)
class CityInfo:
    """One (city, state) with its centroid, most common county and ZIP codes."""

    city: str
    state: str
    county: str
    lat: float
    lon: float
    zips: tuple[str, ...] = ()


@dataclass(frozen=True)
class StateInfo:
    """A state, DC or territory: USPS code, name, FIPS code, rough centroid and bounding box."""

    code: str
    name: str
    fips: str
    lat: float
    lon: float
    bbox: tuple[float, float, float, float] | None = None  # min_lat, min_lon, max_lat, max_lon

    def contains(self, lat: float, lon: float, margin: float = _STATE_BOX_MARGIN_DEG) -> bool:
        """True when the point lies inside the state's rough bounding box (plus a margin)."""
        if self.bbox is None:
            return True
        min_lat, min_lon, max_lat, max_lon = self.bbox
        if not min_lat - margin <= lat <= max_lat + margin:
            return False
        if min_lon <= max_lon:
            return min_lon - margin <= lon <= max_lon + margin
        return lon >= min_lon - margin or lon <= max_lon + margin  # crosses the 180th meridian


# --------------------------------------------------------------------------------------------
# Small helpers

_TOKEN_ALIASES = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount"}
_ZIP_RE = re.compile(r"([0-9]{3,9})(?:\s*-\s*([0-9]{4}))?")
_POINT_RE = re.compile(
    r"\(?\s*([+-]?\d{1,3}(?:\.\d+)?)\s*(?:,\s*|\s+)([+-]?\d{1,3}(?:\.\d+)?)\s*\)?"
)
_COUNTRY_TAIL_RE = re.compile(
    r"(?:^|[\s,]+)(?:u\.?s\.?a?\.?|united states(?: of america)?|america)\s*$", re.IGNORECASE
)
_TAIL_ZIP_RE = re.compile(r"(?:^|[\s,])([0-9]{5})(?:\s*-\s*[0-9]{4})?\s*$")
_PO_BOX_RE = re.compile(r"\b(?:p\.?\s*o\.?\s*box|post\s+office\s+box|box\s+\d)", re.IGNORECASE)


def normalize_zip(value: object) -> str | None:
    """Return the 5-digit ZIP in a ZIP, ZIP+4 or zero-stripped value ("6708" -> "06708")."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    text = str(value).strip()
    if text.endswith(".0"):  # spreadsheet numbers
        text = text[:-2]
    match = _ZIP_RE.fullmatch(text)
    if not match:
        return None
    digits, plus4 = match.groups()
    if plus4 is not None:
        if len(digits) > 5:
            return None
        code = digits.zfill(5)
    elif len(digits) <= 5:
        code = digits.zfill(5)
    elif len(digits) == 6:
        return None  # neither a ZIP nor a ZIP+4
    else:
        code = digits.zfill(9)[:5]  # ZIP+4 without its dash, maybe zero-stripped
    return None if code == "00000" else code


def _fold(text: str) -> str:
    """Lower-case ASCII with accents removed."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _tokens(text: str) -> list[str]:
    """Words of ``text`` (case, accents and punctuation removed; St/Ft/Mt expanded)."""
    words = re.sub(r"[^0-9a-z]+", " ", _fold(text).replace("&", " and ")).split()
    return [_TOKEN_ALIASES.get(w, w) for w in words]


def _key(text: str) -> str:
    """Compact comparison key: "St. Mary's" -> "saintmarys", "Mc Connell" -> "mcconnell"."""
    return "".join(_tokens(text))


def _valid_point(lat: float, lon: float) -> bool:
    return math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180


def distance_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance in statute miles."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_MI * math.asin(min(1.0, math.sqrt(h)))


def _open_table(directory: Path, name: str) -> IO[str]:
    """Open ``name`` (or ``name.gz``) in ``directory`` as text."""
    path = directory / name
    if path.exists():
        return path.open(newline="", encoding="utf-8")
    gz = directory / f"{name}.gz"
    if gz.exists():
        return gzip.open(gz, "rt", newline="", encoding="utf-8")
    raise FileNotFoundError(f"geo table {name} not found in {directory}")


# --------------------------------------------------------------------------------------------
# Tables

# Extra names a person may type for a state (full names, codes and FIPS codes are automatic).
_STATE_ALIASES = {
    "VI": ("virginislands", "usvi", "unitedstatesvirginislands"),
    "MP": ("cnmi", "northernmarianas", "marianaislands"),
    "FM": ("micronesia",),
    "AS": ("samoa",),
}
# AP-style abbreviations: accepted when they stand alone ("Calif."), not as a trailing word.
_STATE_ABBREVIATIONS = {
    "ala": "AL", "ariz": "AZ", "ark": "AR", "calif": "CA", "cal": "CA", "colo": "CO",
    "conn": "CT", "del": "DE", "fla": "FL", "ill": "IL", "ind": "IN", "kan": "KS", "kans": "KS",
    "mass": "MA", "mich": "MI", "minn": "MN", "miss": "MS", "mont": "MT", "neb": "NE",
    "nebr": "NE", "nev": "NV", "okla": "OK", "ore": "OR", "oreg": "OR", "penn": "PA",
    "penna": "PA", "tenn": "TN", "tex": "TX", "wash": "WA", "wva": "WV", "wis": "WI",
    "wisc": "WI", "wyo": "WY",
}
# City names people use that the postal tables spell differently, keyed by state.
_CITY_ALIASES = {
    ("NY", "newyork"): "newyorkcity",
    ("NY", "nyc"): "newyorkcity",
    ("NY", "manhattan"): "newyorkcity",
}
_COUNTY_SUFFIX_RE = re.compile(
    r"^(.+?)\s*(?:\(ca\)|census area|city and borough|municipality|borough|county|parish)$",
    re.IGNORECASE,
)


def _split_county(name: str) -> tuple[str, bool, bool]:
    """Return (base name, is an independent city, is a consolidated city-county)."""
    name = " ".join(name.split())
    match = re.match(r"(?i)^city and county of (.+)$", name)
    if match:
        return match.group(1), False, True
    match = re.match(r"(?i)^city of (.+)$", name) or re.match(r"(?i)^(.+?)\s*\(city\)$", name)
    if match:
        return match.group(1), True, False
    match = _COUNTY_SUFFIX_RE.match(name)
    if match:
        return match.group(1), False, False
    return name, False, False


def _county_keys(name: str) -> set[str]:
    """Every key a county name from the tables answers to."""
    base, is_city, consolidated = _split_county(name)
    key = _key(base)
    keys = {_key(name)}
    if is_city or consolidated:
        keys |= {key + "city", "cityof" + key}
    if not is_city:
        keys |= {key, key + "county", key + "parish", key + "borough"}
    return keys


class GeoTables:
    """The bundled ZIP, city and state tables with fast lookups (load once per process)."""

    _default: GeoTables | None = None
    _default_lock = threading.Lock()

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory) if directory is not None else DATA_DIR
        self._zips: dict[str, ZipInfo] = {}
        self._cities: dict[tuple[str, str], CityInfo] = {}
        self._cities_by_name: dict[str, list[CityInfo]] = defaultdict(list)
        self._states: dict[str, StateInfo] = {}
        self._state_keys: dict[str, StateInfo] = {}
        self._state_keys_strict: dict[str, StateInfo] = {}
        self._lazy_lock = threading.Lock()
        self._grid: dict[tuple[int, int], list[tuple[float, float, float, ZipInfo]]] | None = None
        self._counties: dict[tuple[str, str], set[str]] | None = None
        self._load()

    @classmethod
    def default(cls) -> GeoTables:
        """The bundled tables in ``data/geo``, loaded on first use and shared per process."""
        if cls._default is None:
            with cls._default_lock:
                if cls._default is None:
                    cls._default = cls(DATA_DIR)
        return cls._default

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> None:
        with _open_table(self.directory, "us_states.csv") as fh:
            for row in csv.DictReader(fh):
                bbox = None
                if row.get("min_lat"):
                    bbox = (
                        float(row["min_lat"]), float(row["min_lon"]),
                        float(row["max_lat"]), float(row["max_lon"]),
                    )
                info = StateInfo(
                    row["code"], row["name"], row["fips"], float(row["lat"]), float(row["lon"]),
                    bbox,
                )
                self._states[info.code] = info
                strict = {info.code.lower(), _key(info.name)}
                for key in strict:
                    self._state_keys_strict[key] = info
                for key in (*strict, info.fips, *_STATE_ALIASES.get(info.code, ())):
                    self._state_keys[key] = info
        for abbr, code in _STATE_ABBREVIATIONS.items():
            if code in self._states:
                self._state_keys.setdefault(abbr, self._states[code])

        with _open_table(self.directory, "us_zips.csv") as fh:
            for row in csv.DictReader(fh):
                info = ZipInfo(
                    row["zip"], float(row["lat"]), float(row["lon"]), row["city"], row["state"],
                    row["county"], row.get("precision_source") or "zcta",
                )
                self._zips[info.zip] = info

        with _open_table(self.directory, "us_cities.csv") as fh:
            for row in csv.DictReader(fh):
                info = CityInfo(
                    row["city"], row["state"], row["county"], float(row["lat"]),
                    float(row["lon"]), tuple(row["zips"].split()),
                )
                key = (info.state, _key(info.city))
                known = self._cities.get(key)
                if known is None or len(info.zips) > len(known.zips):
                    self._cities[key] = info
        for (_state, key), info in self._cities.items():
            self._cities_by_name[key].append(info)

    # -- lookups ---------------------------------------------------------------------------

    def zip(self, code: str) -> ZipInfo | None:
        """Look up a ZIP (5-digit, ZIP+4 or zero-stripped)."""
        normal = normalize_zip(code)
        return self._zips.get(normal) if normal else None

    def state(self, code_or_name: str) -> StateInfo | None:
        """Look up a state, DC or territory by USPS code, name, FIPS code or common abbreviation."""
        if not code_or_name:
            return None
        return self._state_keys.get(_key(code_or_name))

    def _strict_state(self, text: str) -> StateInfo | None:
        return self._state_keys_strict.get(_key(text))

    def city(self, city: str, state: str) -> CityInfo | None:
        """Look up a city in a state; case, spacing and punctuation are ignored, St. == Saint."""
        info = self.state(state)
        if info is None or not city:
            return None
        key = _key(city)
        found = self._cities.get((info.code, key))
        if found is None and (info.code, key) in _CITY_ALIASES:
            found = self._cities.get((info.code, _CITY_ALIASES[(info.code, key)]))
        return found

    def city_anywhere(self, city: str) -> CityInfo | None:
        """A city named without a state: the only one, or one with twice the ZIPs of any other."""
        candidates = sorted(self._cities_by_name.get(_key(city), ()), key=lambda c: -len(c.zips))
        if not candidates:
            return None
        if len(candidates) == 1 or len(candidates[0].zips) >= 2 * len(candidates[1].zips):
            return candidates[0]
        return None

    def zips_in_county(self, county: str, state: str) -> set[str]:
        """ZIP codes whose main place lies in the county ("Fairfax County", "Baltimore city")."""
        info = self.state(state)
        if info is None or not county:
            return set()
        index = self._county_index()
        found = index.get((info.code, _key(county)))
        if found is None:
            base, _is_city, _consolidated = _split_county(county)
            found = index.get((info.code, _key(base)))
        return set(found or ())

    def _county_index(self) -> dict[tuple[str, str], set[str]]:
        if self._counties is None:
            with self._lazy_lock:
                if self._counties is None:
                    index: dict[tuple[str, str], set[str]] = defaultdict(set)
                    keys_for: dict[str, set[str]] = {}
                    for info in self._zips.values():
                        if not info.county or not info.state:
                            continue
                        if info.county not in keys_for:
                            keys_for[info.county] = _county_keys(info.county)
                        for key in keys_for[info.county]:
                            index[(info.state, key)].add(info.zip)
                    self._counties = dict(index)
        return self._counties

    # -- nearest ZCTA ----------------------------------------------------------------------

    def _zcta_grid(self) -> dict[tuple[int, int], list[tuple[float, float, float, ZipInfo]]]:
        if self._grid is None:
            with self._lazy_lock:
                if self._grid is None:
                    grid: dict[tuple[int, int], list[tuple[float, float, float, ZipInfo]]]
                    grid = defaultdict(list)
                    for info in self._zips.values():
                        if info.source == "zcta":
                            phi = math.radians(info.lat)
                            entry = (phi, math.radians(info.lon), math.cos(phi), info)
                            grid[_cell(info.lat, info.lon)].append(entry)
                    self._grid = dict(grid)
        return self._grid

    def nearest_zip(
        self, lat: float, lon: float, *, max_miles: float | None = NEAREST_ZIP_MAX_MILES
    ) -> ZipInfo | None:
        """The ZCTA whose centroid is nearest to (lat, lon), if within ``max_miles``."""
        try:
            lat, lon = float(lat), float(lon)
        except (TypeError, ValueError):
            return None
        if not _valid_point(lat, lon):
            return None
        grid = self._zcta_grid()
        if not grid:
            return None
        # Compare haversine terms h = sin^2(d / 2R) (monotonic in distance) to skip asin/sqrt.
        phi, lam = math.radians(lat), math.radians(lon)
        cos_phi = math.cos(phi)
        sin, inf = math.sin, math.inf
        best: ZipInfo | None = None
        best_h = inf

        def scan(cells: list[tuple[float, float, float, ZipInfo]]) -> None:
            nonlocal best, best_h
            for p2, l2, c2, info in cells:
                h = sin((p2 - phi) / 2) ** 2 + cos_phi * c2 * sin((l2 - lam) / 2) ** 2
                if h < best_h:
                    best, best_h = info, h

        ci, cj = _cell(lat, lon)
        for ring in range(0, 41):  # up to ten degrees; beyond that a full scan
            for cell in _ring_cells(ci, cj, ring):
                entries = grid.get(cell)
                if entries:
                    scan(entries)
            bound = _unseen_lower_bound(lat, lon, ci, cj, ring)
            if best_h <= _h_of_miles(bound) or (max_miles is not None and bound > max_miles):
                break
        else:
            for entries in grid.values():
                scan(entries)
        if best is None:
            return None
        if max_miles is not None and distance_mi(lat, lon, best.lat, best.lon) > max_miles:
            return None
        return best


def _h_of_miles(miles: float) -> float:
    return math.sin(min(miles / EARTH_RADIUS_MI, math.pi) / 2) ** 2


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / _GRID_DEG), math.floor(lon / _GRID_DEG)


def _ring_cells(ci: int, cj: int, ring: int) -> Iterator[tuple[int, int]]:
    """Cells on the square ring at Chebyshev distance ``ring`` around (ci, cj)."""
    if ring == 0:
        yield ci, cj
        return
    for dj in range(-ring, ring + 1):
        yield ci - ring, cj + dj
        yield ci + ring, cj + dj
    for di in range(-ring + 1, ring):
        yield ci + di, cj - ring
        yield ci + di, cj + ring


def _unseen_lower_bound(lat: float, lon: float, ci: int, cj: int, ring: int) -> float:
    """Lower bound (miles) on the distance to any point outside the searched block of cells."""
    south, north = (ci - ring) * _GRID_DEG, (ci + ring + 1) * _GRID_DEG
    west, east = (cj - ring) * _GRID_DEG, (cj + ring + 1) * _GRID_DEG
    dlat = min(lat - south, north - lat)
    dlon = min(lon - west, east - lon)
    lat_bound = EARTH_RADIUS_MI * math.radians(dlat)
    # A point beyond the block east or west but inside it north-south has |lat| <= phi_max.
    phi_max = min(90.0, max(abs(south), abs(north)))
    h = math.cos(math.radians(phi_max)) * math.sin(math.radians(min(dlon, 180.0)) / 2)
    lon_bound = 2 * EARTH_RADIUS_MI * math.asin(min(1.0, max(0.0, h)))
    return min(lat_bound, lon_bound)


# --------------------------------------------------------------------------------------------
# Parsing free text


@dataclass(frozen=True)
class _Parsed:
    """A query split into street part, city, state and ZIP (any may be missing)."""

    street: str
    city: str | None
    state: StateInfo | None
    zip: str | None


def _strip_country(text: str) -> str:
    return _COUNTRY_TAIL_RE.sub("", text).strip(" ,")


def _parse_place(text: str, tables: GeoTables) -> _Parsed:
    """Split ``"street, city, ST 12345"``-like text; ``street`` is "" for a bare place."""
    text = " ".join(text.replace("\n", ", ").split())
    text = _strip_country(text)
    if normalize_zip(text) and re.fullmatch(r"[0-9]{3,5}(?:\s*-\s*[0-9]{4})?|[0-9]{9}", text):
        return _Parsed("", None, None, normalize_zip(text))
    zip_code = None
    match = _TAIL_ZIP_RE.search(text)
    if match:
        zip_code = match.group(1)
        text = text[: match.start()].strip(" ,")
        text = _strip_country(text)
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        return _Parsed("", None, None, zip_code)

    last = parts[-1]
    state = tables.state(last)
    if state is not None:
        if len(parts) == 1:
            if not zip_code and tables.city(last, state.code) is not None:
                return _Parsed("", last, state, None)  # "New York" means the city
            return _Parsed("", None, state, zip_code)
        if re.search(r"\d", parts[-2]):  # "1600 Pennsylvania Ave, Washington": no city given
            return _Parsed(", ".join(parts[:-1]), None, state, zip_code)
        return _Parsed(", ".join(parts[:-2]), parts[-2], state, zip_code)

    words = last.split()
    first_state: tuple[StateInfo, list[str]] | None = None
    for n in (3, 2, 1):
        if len(words) <= n:
            continue
        state = tables._strict_state(" ".join(words[-n:]))
        if state is None:
            continue
        rest = words[:-n]
        if len(parts) >= 2:
            return _Parsed(", ".join(parts[:-1]), " ".join(rest), state, zip_code)
        for size in range(min(len(rest), 5), 0, -1):  # the longest known city at the end
            city = " ".join(rest[-size:])
            if tables.city(city, state.code) is not None:
                return _Parsed(" ".join(rest[:-size]), city, state, zip_code)
        if first_state is None:
            first_state = (state, rest)
    if first_state is not None:
        state, rest = first_state
        rest_text = " ".join(rest)
        if re.search(r"\d", rest_text):
            return _Parsed(rest_text, None, state, zip_code)
        return _Parsed("", rest_text, state, zip_code)  # an unknown town in a known state
    if len(parts) >= 2:
        return _Parsed(", ".join(parts[:-1]), last, None, zip_code)
    if tables.city_anywhere(last) is not None:
        return _Parsed("", last, None, zip_code)
    return _Parsed(last, None, None, zip_code)


# --------------------------------------------------------------------------------------------
# Persistent cache of online answers


class _GeocodeCache:
    """A small SQLite file of online answers; keys are hashes, so no address text is stored."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.available = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # private to the service account
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS geocode_cache ("
                    "key TEXT PRIMARY KEY, found INTEGER NOT NULL, lat REAL, lon REAL, "
                    "created REAL NOT NULL)"
                )
        except (OSError, sqlite3.Error) as exc:
            log.warning("geocode cache unavailable (%s); continuing without it", type(exc).__name__)
            self.available = False

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def get(self, key: str) -> tuple[bool, tuple[float, float] | None] | None:
        """(True, point) for a cached success, (True, None) for "not found", None for a miss."""
        if not self.available:
            return None
        try:
            with closing(self._connect()) as conn:
                row = conn.execute(
                    "SELECT found, lat, lon, created FROM geocode_cache WHERE key = ?", (key,)
                ).fetchone()
        except sqlite3.Error as exc:
            log.warning("geocode cache read failed (%s)", type(exc).__name__)
            return None
        if row is None:
            return None
        found, lat, lon, created = row
        if found:
            return True, (float(lat), float(lon))
        if time.time() - float(created) > NOT_FOUND_TTL_SECONDS:
            return None
        return True, None

    def put(self, key: str, point: tuple[float, float] | None) -> None:
        """Store a success (point) or a "not found" (None)."""
        if not self.available:
            return
        lat, lon = point if point is not None else (None, None)
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute(
                    "INSERT OR REPLACE INTO geocode_cache (key, found, lat, lon, created) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (key, int(point is not None), lat, lon, time.time()),
                )
        except sqlite3.Error as exc:
            log.warning("geocode cache write failed (%s)", type(exc).__name__)


# --------------------------------------------------------------------------------------------
# Geocoder


class _DropGeopyQueryLogs(logging.Filter):
    """geopy logs request URLs (which hold the address) at DEBUG; keep them out of our logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("%s.geocode", "%s.reverse"))


_GEOPY_FILTER = _DropGeopyQueryLogs()


def _query_key(provider: str, query: str) -> str:
    normal = " ".join(re.sub(r"[^0-9a-z#]+", " ", _fold(query)).split())
    return hashlib.sha256(f"{provider}\n{normal}".encode()).hexdigest()


class Geocoder:
    """Resolve text or address fields to a `GeoPoint`, offline unless an online geocoder is set."""

    def __init__(
        self,
        tables: GeoTables | None = None,
        *,
        online: OnlineGeocoder | None = None,
        cache_path: Path | None = None,
        min_delay_seconds: float = 1.0,
        timeout: float = 5.0,
    ) -> None:
        self.tables = tables if tables is not None else GeoTables.default()
        self.online = online
        self.timeout = timeout
        self.stats: Counter[str] = Counter()
        self._suspended_until = 0.0
        self._failures = 0
        self._state_lock = threading.Lock()
        self._limiter: RateLimiter | None = None
        self._cache: _GeocodeCache | None = None
        self._provider = ""
        if online is not None:
            self._limiter = RateLimiter(
                online.geocode,
                min_delay_seconds=min_delay_seconds,
                max_retries=0,  # fall back at once; a retry would also log the query
                swallow_exceptions=False,  # errors must not be cached as "not found"
            )
            self._provider = f"{type(online).__name__}:{getattr(online, 'domain', '')}"
            geopy_logger = logging.getLogger("geopy")
            if _GEOPY_FILTER not in geopy_logger.filters:
                geopy_logger.addFilter(_GEOPY_FILTER)
            if cache_path is not None:
                self._cache = _GeocodeCache(Path(cache_path))

    # -- public API ------------------------------------------------------------------------

    @staticmethod
    def parse_point(text: str) -> tuple[float, float] | None:
        """Parse "lat,lon" (or "lat lon"); None when malformed or out of range."""
        if not isinstance(text, str):
            return None
        match = _POINT_RE.fullmatch(text.strip())
        if not match:
            return None
        lat, lon = float(match.group(1)), float(match.group(2))
        return (lat, lon) if _valid_point(lat, lon) else None

    def geocode(self, text: str) -> GeoPoint | None:
        """Resolve free text: "lat,lon", a ZIP, "City, ST", a state, or a street address."""
        result = self._geocode(text)
        self._count(result)
        return result

    def geocode_address(
        self,
        *,
        address_1: str | None,
        city: str | None,
        state: str | None,
        postal_code: str | None,
    ) -> GeoPoint | None:
        """Resolve an address record: online (if configured), then ZIP, then city, else None."""
        city = (city or "").strip() or None
        state_text = (state or "").strip() or None
        zip_code = normalize_zip(postal_code) if postal_code else None
        if postal_code and zip_code is None:
            parsed = _parse_place(str(postal_code), self.tables)  # "DC 20001" in the ZIP field
            zip_code = parsed.zip
        state_info = self.tables.state(state_text) if state_text else None
        if city and (zip_code is None or state_info is None):
            # Messy rows: "Washington, DC 20001" in the city field, or no state column.
            parsed = _parse_place(", ".join(filter(None, [city, state_text])), self.tables)
            if parsed.city and parsed.state:
                city = parsed.city
                state_info = state_info or parsed.state
            zip_code = zip_code or parsed.zip
        offline = self._offline(city, state_info, zip_code, allow_state=False)

        street = (address_1 or "").strip()
        if street and self._limiter is not None and not _PO_BOX_RE.search(street):
            tail = " ".join(filter(None, [state_info.code if state_info else state_text, zip_code]))
            query = ", ".join(filter(None, [street, city, tail]))
            online = self._online(query, near=offline, state=state_info)
            if online is not None:
                self._count(online)
                return online
        self._count(offline)
        return offline

    def log_summary(self) -> None:
        """Log outcome counts (never addresses) at INFO."""
        if self.stats:
            log.info(
                "geocoding outcomes: %s",
                ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())),
            )

    # -- internals -------------------------------------------------------------------------

    def _count(self, result: GeoPoint | None) -> None:
        self.stats[result.precision if result else "unresolved"] += 1

    def _geocode(self, text: str) -> GeoPoint | None:
        if not isinstance(text, str) or not text.strip():
            return None
        point = self.parse_point(text)
        if point is not None:
            return GeoPoint(point[0], point[1], "exact", f"{point[0]:.5f}, {point[1]:.5f}")
        parsed = _parse_place(text, self.tables)
        if not parsed.street:
            return self._offline(parsed.city, parsed.state, parsed.zip, allow_state=True)
        offline = self._offline(parsed.city, parsed.state, parsed.zip, allow_state=False)
        if self._limiter is not None:
            online = self._online(text, near=offline, state=parsed.state)
            if online is not None:
                return online
        return offline

    def _offline(
        self,
        city: str | None,
        state: StateInfo | None,
        zip_code: str | None,
        *,
        allow_state: bool,
    ) -> GeoPoint | None:
        """ZIP centroid, else city centroid, else (if allowed) the state's centroid."""
        city_info: CityInfo | None = None
        if city:
            if state is not None:
                city_info = self.tables.city(city, state.code)
            elif not zip_code:
                city_info = self.tables.city_anywhere(city)
        zip_info = self.tables.zip(zip_code) if zip_code else None
        if zip_info is not None:
            if state is not None and zip_info.state and zip_info.state != state.code:
                # The ZIP and the state disagree: a typo in the ZIP is likelier, when the city
                # is known in the stated state.
                if city_info is not None:
                    return _city_point(city_info)
            return GeoPoint(
                zip_info.lat, zip_info.lon, "zip",
                " ".join(filter(None, [zip_info.zip, _place_label(zip_info.city, zip_info.state)])),
            )
        if city_info is not None:
            return _city_point(city_info)
        if allow_state and state is not None:
            return GeoPoint(state.lat, state.lon, "state", state.name)
        return None

    def _online(
        self, query: str, *, near: GeoPoint | None, state: StateInfo | None
    ) -> GeoPoint | None:
        """Ask the online geocoder (via the cache); None on miss, error or an implausible answer."""
        assert self._limiter is not None
        key = _query_key(self._provider, query)
        cached = self._cache.get(key) if self._cache is not None else None
        if cached is not None:
            self.stats["online_cache_hit"] += 1
            coords = cached[1]
        else:
            if time.monotonic() < self._suspended_until:
                self.stats["online_suspended"] += 1
                return None
            coords = self._ask_online(query)
            if coords is False:
                return None
            if self._cache is not None:
                self._cache.put(key, coords)
        if coords is None:
            self.stats["online_not_found"] += 1
            return None
        lat, lon = coords
        if near is not None and distance_mi(lat, lon, near.lat, near.lon) > MAX_ONLINE_DRIFT_MI:
            self.stats["online_rejected_far"] += 1
            return None
        if state is not None and not state.contains(lat, lon):
            self.stats["online_rejected_state"] += 1
            return None
        return GeoPoint(lat, lon, "address", "")

    def _ask_online(self, query: str) -> tuple[float, float] | None | bool:
        """One rate-limited request: coordinates, None for "not found", False for an error."""
        assert self._limiter is not None and self.online is not None
        kwargs: dict[str, Any] = {"exactly_one": True, "timeout": self.timeout}
        if type(self.online).__name__ == "Nominatim":
            kwargs["country_codes"] = "us"
        try:
            location = self._limiter(query, **kwargs)
        except GeocoderRateLimited as exc:
            self._backoff(float(exc.retry_after or ONLINE_BACKOFF_SECONDS), "rate_limited")
            return False
        except (GeopyError, OSError, ValueError) as exc:
            self.stats["online_error"] += 1
            log.warning("online geocoder failed (%s); using the offline tables", type(exc).__name__)
            with self._state_lock:
                self._failures += 1
                failures = self._failures
            if failures >= ONLINE_FAILURES_BEFORE_BACKOFF:
                self._backoff(ONLINE_BACKOFF_SECONDS, "failing")
            return False
        with self._state_lock:
            self._failures = 0
        if location is None:
            return None
        try:
            lat, lon = float(location.latitude), float(location.longitude)
        except (TypeError, ValueError, AttributeError):
            return None
        return (lat, lon) if _valid_point(lat, lon) else None

    def _backoff(self, seconds: float, reason: str) -> None:
        self.stats[f"online_{reason}"] += 1
        with self._state_lock:
            self._suspended_until = max(self._suspended_until, time.monotonic() + seconds)
            self._failures = 0
        log.warning("online geocoder %s; pausing it for %.0f s", reason.replace("_", " "), seconds)


def _place_label(city: str, state: str) -> str:
    return ", ".join(filter(None, [city, state]))


def _city_point(info: CityInfo) -> GeoPoint:
    return GeoPoint(info.lat, info.lon, "city", _place_label(info.city, info.state))


# --------------------------------------------------------------------------------------------
# Online geocoder factory and time zones


def make_online_geocoder(name: str, **kwargs: Any) -> OnlineGeocoder:
    """Build a geopy geocoder by service name ("nominatim", "photon", ...); admin opt-in only."""
    from geopy.adapters import URLLibAdapter
    from geopy.geocoders import get_geocoder_for_service

    cls = get_geocoder_for_service(name.strip().lower())
    # One HTTP attempt per call: Geocoder does its own back-off, and geopy's requests adapter
    # (picked whenever `requests` is installed) would retry a rate-limited service itself.
    kwargs.setdefault("adapter_factory", URLLibAdapter)
    if cls.__name__ == "Nominatim" and not kwargs.get("user_agent"):
        raise ValueError(
            "Nominatim needs a user_agent that identifies this deployment "
            "(https://operations.osmfoundation.org/policies/nominatim/)"
        )
    return cls(**kwargs)


_TZ_FINDER: Any = None
_TZ_LOCK = threading.Lock()


def timezone_for(lat: float, lon: float) -> str | None:
    """IANA time zone at (lat, lon), offline (timezonefinder); None when unknown."""
    global _TZ_FINDER
    try:
        lat, lon = float(lat), float(lon)
    except (TypeError, ValueError):
        return None
    if not _valid_point(lat, lon):
        return None
    try:
        with _TZ_LOCK:
            if _TZ_FINDER is None:
                from timezonefinder import TimezoneFinder

                _TZ_FINDER = TimezoneFinder()
            return _TZ_FINDER.timezone_at(lng=lon, lat=lat)
    except Exception as exc:  # a missing time zone must never break an import
        log.warning("time zone lookup failed (%s)", type(exc).__name__)
        return None
