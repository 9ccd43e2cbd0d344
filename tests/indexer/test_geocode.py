"""Tests for `indexer.geocode` and `indexer.build_geo_tables`.

Nothing here reaches the internet: every socket connection is recorded, and any that is not to
the loopback address fails the test. The online path is exercised for real over HTTP against a
small Nominatim-style server on 127.0.0.1.
"""

from __future__ import annotations

import filecmp
import json
import logging
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from geopy.exc import GeocoderNotFound
from geopy.geocoders import Nominatim

from indexer import build_geo_tables
from indexer.geocode import (
    CityInfo,
    Geocoder,
    GeoPoint,
    GeoTables,
    StateInfo,
    ZipInfo,
    distance_mi,
    make_online_geocoder,
    normalize_zip,
    timezone_for,
)

ROOT = Path(__file__).resolve().parents[2]
ZIP_SOURCE = ROOT.parent / "shared" / "datasets" / "us_zip_centroids"
WHITE_HOUSE = (38.8977, -77.0365)
ADDRESS = "1600 Pennsylvania Ave NW"


# --- guards and fixtures --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Record every outgoing connection; only loopback is allowed."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test tried to reach {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield attempts
    assert attempts == [], f"network calls attempted: {attempts}"


@pytest.fixture(scope="module")
def tables() -> GeoTables:
    return GeoTables.default()


@pytest.fixture
def offline(tables: GeoTables) -> Geocoder:
    return Geocoder(tables)


class FakeNominatim(ThreadingHTTPServer):
    """Answers /search like Nominatim; ``mode`` is "ok", "empty", "429" or "slow"."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.point = WHITE_HOUSE
        self.requests: list[dict[str, list[str]]] = []
        self.release = threading.Event()

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout test) is expected


class _Handler(BaseHTTPRequestHandler):
    server: FakeNominatim

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append({"path": [url.path], **parse_qs(url.query)})
        mode = self.server.mode
        if mode == "slow":
            self.server.release.wait(5)
            return
        if mode == "429":
            self._send(429, {"error": "rate limited"}, {"Retry-After": "30"})
        elif mode == "empty":
            self._send(200, [])
        else:
            lat, lon = self.server.point
            self._send(200, [{
                "place_id": 1, "lat": str(lat), "lon": str(lon),
                "display_name": "1600, Pennsylvania Avenue Northwest, Washington, DC, 20500",
                "class": "building", "type": "yes",
            }])

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[FakeNominatim]:
    srv = FakeNominatim()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.release.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def local_nominatim(server: FakeNominatim) -> Nominatim:
    return make_online_geocoder(
        "nominatim", user_agent="signpost-tests", domain=server.domain, scheme="http",
        proxies={},
    )


def online_geocoder(
    tables: GeoTables, server: FakeNominatim, cache: Path | None = None, **kwargs: Any
) -> Geocoder:
    kwargs.setdefault("timeout", 2.0)
    return Geocoder(
        tables, online=local_nominatim(server), cache_path=cache, min_delay_seconds=0, **kwargs
    )


def dc_address(geocoder: Geocoder, street: str = ADDRESS) -> GeoPoint | None:
    return geocoder.geocode_address(
        address_1=street, city="Washington", state="DC", postal_code="20500"
    )


# --- ZIP codes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("20001", "20001"),
        (" 20001 ", "20001"),
        ("20001-1234", "20001"),
        ("20001 - 1234", "20001"),
        ("200011234", "20001"),
        ("6708", "06708"),  # a spreadsheet dropped the leading zero
        ("501", "00501"),
        ("6708-1234", "06708"),
        ("67081234", "06708"),  # zero-stripped ZIP+4 without its dash
        (6708, "06708"),
        (6708.0, "06708"),
        ("06708.0", "06708"),
        ("", None),
        ("12", None),
        ("123456", None),
        ("abcde", None),
        ("00000", None),
        ("20001-12", None),
        ("2000a", None),
        (None, None),
        (True, None),
        (6708.5, None),
    ],
)
def test_normalize_zip(raw: object, expected: str | None) -> None:
    assert normalize_zip(raw) == expected


def test_zip_lookup(tables: GeoTables) -> None:
    info = tables.zip("20001")
    assert isinstance(info, ZipInfo)
    assert (info.zip, info.city, info.state, info.county) == (
        "20001", "Washington", "DC", "District of Columbia",
    )
    assert info.source == "zcta"
    assert distance_mi(info.lat, info.lon, 38.91, -77.02) < 2
    assert tables.zip("20001-1234") == info
    assert tables.zip("99999") is None
    assert tables.zip("not a zip") is None


def test_zero_stripped_zip(tables: GeoTables) -> None:
    info = tables.zip("6708")
    assert info is not None
    assert (info.zip, info.city, info.state) == ("06708", "Waterbury", "CT")


def test_po_box_zip_comes_from_geonames(tables: GeoTables) -> None:
    # 20013 is a Washington PO-box ZIP: not a Census ZCTA, present through GeoNames.
    info = tables.zip("20013")
    assert info is not None
    assert (info.city, info.state, info.source) == ("Washington", "DC", "geonames")
    assert distance_mi(info.lat, info.lon, *WHITE_HOUSE) < 5


def test_military_and_placeholder_codes_are_excluded(tables: GeoTables) -> None:
    assert tables.zip("34034") is None  # APO AA with a South Carolina placeholder point
    assert tables.zip("96373") is None  # FPO AP
    assert tables.zip("96912") is None  # Dededo, GU, with California coordinates


def test_puerto_rico_zcta_gets_its_state_from_the_prefix(tables: GeoTables) -> None:
    info = tables.zip("00901")
    assert info is not None and info.state == "PR" and info.source == "zcta"


# --- cities, states, counties -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("city", "state"),
    [
        ("Washington", "DC"),
        ("washington", "dc"),
        ("  WASHINGTON ", "District of Columbia"),
        ("Washington", "D.C."),
    ],
)
def test_city_lookup_ignores_case_space_punctuation(
    tables: GeoTables, city: str, state: str
) -> None:
    info = tables.city(city, state)
    assert isinstance(info, CityInfo)
    assert (info.city, info.state) == ("Washington", "DC")
    assert "20001" in info.zips
    assert distance_mi(info.lat, info.lon, *WHITE_HOUSE) < 5


def test_city_saint_and_fort(tables: GeoTables) -> None:
    saint = tables.city("Saint Louis", "MO")
    assert saint is not None
    assert tables.city("St. Louis", "MO") == saint
    assert tables.city("st louis", "Missouri") == saint
    fort = tables.city("Ft. Lauderdale", "FL")
    assert fort is not None and fort.city == "Fort Lauderdale"


def test_city_keys_on_state(tables: GeoTables) -> None:
    portland_or, portland_me = tables.city("Portland", "OR"), tables.city("Portland", "ME")
    assert portland_or is not None and portland_me is not None
    assert distance_mi(portland_or.lat, portland_or.lon, portland_me.lat, portland_me.lon) > 2000
    assert tables.city("Washington", "ZZ") is None
    assert tables.city("Nowhereville", "KS") is None


def test_state_lookup(tables: GeoTables) -> None:
    dc = tables.state("DC")
    assert isinstance(dc, StateInfo)
    assert (dc.code, dc.name, dc.fips) == ("DC", "District of Columbia", "11")
    assert tables.state("district of columbia") == dc
    assert tables.state("11") == dc
    assert tables.state("Virginia").code == "VA"  # type: ignore[union-attr]
    assert tables.state("Calif.").code == "CA"  # type: ignore[union-attr]
    for code in ("PR", "VI", "GU", "AS", "MP"):
        assert tables.state(code) is not None
    assert tables.state("U.S. Virgin Islands").code == "VI"  # type: ignore[union-attr]
    assert tables.state("ZZ") is None
    assert tables.state("") is None


def test_zips_in_county(tables: GeoTables) -> None:
    dc = tables.zips_in_county("District of Columbia", "DC")
    assert {"20001", "20013", "20500"} <= dc
    county = tables.zips_in_county("Baltimore County", "MD")
    city = tables.zips_in_county("Baltimore City", "MD")
    assert county and city and not county & city
    assert tables.zips_in_county("Baltimore", "Maryland") == county
    assert tables.zips_in_county("baltimore (city)", "MD") == city
    assert "20745" in tables.zips_in_county("Prince George's County", "MD")
    assert tables.zips_in_county("St. Mary's", "MD") == tables.zips_in_county(
        "Saint Marys County", "MD"
    )
    assert tables.zips_in_county("Nowhere County", "MD") == set()
    assert tables.zips_in_county("Fairfax County", "ZZ") == set()


# --- nearest ZIP ------------------------------------------------------------------------------


def test_nearest_zip_matches_brute_force(tables: GeoTables) -> None:
    zctas = [z for z in tables._zips.values() if z.source == "zcta"]
    points = [
        WHITE_HOUSE, (25.7617, -80.1918), (21.3069, -157.8583), (33.4484, -112.074),
        (61.2181, -149.9003), (18.4655, -66.1057), (44.9778, -93.265), (47.6062, -122.3321),
        (40.7128, -74.006), (35.0, -101.5), (24.5551, -81.78), (64.8378, -147.7164),
    ]
    for lat, lon in points:
        expected = min(zctas, key=lambda z: distance_mi(lat, lon, z.lat, z.lon))
        assert tables.nearest_zip(lat, lon) == expected, (lat, lon)


def test_nearest_zip_limits(tables: GeoTables) -> None:
    near = tables.nearest_zip(*WHITE_HOUSE)
    assert near is not None and near.state == "DC" and near.source == "zcta"
    assert distance_mi(near.lat, near.lon, *WHITE_HOUSE) < 2
    guam = (13.4443, 144.7937)  # no ZCTA within 150 miles
    assert tables.nearest_zip(*guam) is None
    assert tables.nearest_zip(*guam, max_miles=None) is not None
    assert tables.nearest_zip(*WHITE_HOUSE, max_miles=0.01) is None
    assert tables.nearest_zip(91, 0) is None
    assert tables.nearest_zip(float("nan"), 0) is None


def test_nearest_zip_is_fast(tables: GeoTables) -> None:
    tables.nearest_zip(*WHITE_HOUSE)  # builds the grid
    points = [(25 + (i * 0.0017) % 24, -124 + (i * 0.0043) % 57) for i in range(3000)]
    start = time.perf_counter()
    for lat, lon in points:
        tables.nearest_zip(lat, lon)
    assert time.perf_counter() - start < 3.0  # ~13k HRSA sites must take seconds, not minutes


# --- parsing and offline geocoding ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("38.9,-77.0", (38.9, -77.0)),
        (" 38.9 , -77.0 ", (38.9, -77.0)),
        ("38.9 -77.0", (38.9, -77.0)),
        ("(38.9, -77.0)", (38.9, -77.0)),
        ("-33.87,151.21", (-33.87, 151.21)),
        ("90,180", (90.0, 180.0)),
        ("91,0", None),
        ("-90.5,10", None),
        ("0,181", None),
        ("45,-180.01", None),
        ("20001", None),
        ("20001-1234", None),
        ("38.9", None),
        ("abc,def", None),
        ("", None),
    ],
)
def test_parse_point(text: str, expected: tuple[float, float] | None) -> None:
    assert Geocoder.parse_point(text) == expected


@pytest.mark.parametrize(
    ("text", "precision", "label"),
    [
        ("38.9,-77.0", "exact", "38.90000, -77.00000"),
        ("20001", "zip", "20001 Washington, DC"),
        ("20001-1234", "zip", "20001 Washington, DC"),
        ("6708", "zip", "06708 Waterbury, CT"),
        ("Washington, DC", "city", "Washington, DC"),
        ("Washington DC", "city", "Washington, DC"),
        ("washington, d.c.", "city", "Washington, DC"),
        ("Washington, DC, USA", "city", "Washington, DC"),
        ("St. Louis, MO", "city", "Saint Louis, MO"),
        ("Kansas City Missouri", "city", "Kansas City, MO"),
        ("Charleston, West Virginia", "city", "Charleston, WV"),
        ("New York, NY", "city", "New York City, NY"),
        ("Miami", "city", "Miami, FL"),  # one Miami dwarfs the others
        ("Washington, DC 20001", "zip", "20001 Washington, DC"),
        ("DC", "state", "District of Columbia"),
        ("Virginia", "state", "Virginia"),
        ("New York", "city", "New York City, NY"),
        ("NY", "state", "New York"),
        ("Smallville, KS", "state", "Kansas"),  # unknown town, known state
    ],
)
def test_geocode_offline(offline: Geocoder, text: str, precision: str, label: str) -> None:
    point = offline.geocode(text)
    assert point is not None
    assert (point.precision, point.label) == (precision, label)


@pytest.mark.parametrize(
    "text", ["", "   ", "91,0", "99999", "Springfield", "Union Station", "1600 Penn Ave"]
)
def test_geocode_unresolvable(offline: Geocoder, text: str) -> None:
    assert offline.geocode(text) is None


def test_street_address_without_online_uses_zip_then_city(offline: Geocoder) -> None:
    point = offline.geocode(f"{ADDRESS}, Washington, DC 20500")
    assert point is not None and point.precision == "zip" and point.label.startswith("20500")
    point = offline.geocode("123 Main St Springfield IL 62701")
    assert point is not None and point.precision == "zip"
    point = offline.geocode(f"{ADDRESS}, Washington, DC")
    assert point is not None and point.precision == "city"
    # A leading house number is not a ZIP; a bare street in a state is not resolved.
    point = offline.geocode("10001 Main St, Springfield, IL")
    assert point is not None and point.precision == "city" and point.label == "Springfield, IL"
    assert offline.geocode("123 Main St, Nowhereville, KS") is None


def test_geocode_address_offline(offline: Geocoder) -> None:
    point = offline.geocode_address(
        address_1=ADDRESS, city="Washington", state="DC", postal_code="20500-0003"
    )
    assert point is not None and point.precision == "zip"
    point = offline.geocode_address(address_1=ADDRESS, city="Washington", state="DC",
                                    postal_code=None)
    assert point is not None and point.precision == "city"
    point = offline.geocode_address(address_1=None, city=None, state=None, postal_code="6708")
    assert point is not None and point.label == "06708 Waterbury, CT"
    # Messy rows: ZIP and state inside the city field.
    point = offline.geocode_address(address_1=None, city="Washington, DC 20001", state=None,
                                    postal_code=None)
    assert point is not None and point.label == "20001 Washington, DC"
    # States alone are too coarse for a record's location.
    assert offline.geocode_address(address_1=ADDRESS, city=None, state="DC",
                                   postal_code=None) is None
    assert offline.geocode_address(address_1=None, city=None, state=None,
                                   postal_code=None) is None


def test_geocode_address_zip_state_conflict_prefers_city(offline: Geocoder) -> None:
    # A Miami ZIP on a Washington, DC row: the ZIP is the likelier typo.
    point = offline.geocode_address(address_1=None, city="Washington", state="DC",
                                    postal_code="33125")
    assert point is not None and point.precision == "city" and point.label == "Washington, DC"


def test_geopoint_validates_precision() -> None:
    with pytest.raises(ValueError):
        GeoPoint(1.0, 2.0, "street")


# --- distance and time zones ------------------------------------------------------------------


def test_distance_mi() -> None:
    assert distance_mi(*WHITE_HOUSE, *WHITE_HOUSE) == 0
    baltimore = (39.2904, -76.6122)
    assert 34 < distance_mi(*WHITE_HOUSE, *baltimore) < 36
    assert 2440 < distance_mi(40.7128, -74.006, 34.0522, -118.2437) < 2460  # NYC to LA


@pytest.mark.parametrize(
    ("lat", "lon", "zone"),
    [
        (38.8977, -77.0365, "America/New_York"),  # DC
        (25.7617, -80.1918, "America/New_York"),  # Miami
        (21.3069, -157.8583, "Pacific/Honolulu"),
        (33.4484, -112.0740, "America/Phoenix"),  # no daylight saving time
    ],
)
def test_timezone_for(lat: float, lon: float, zone: str) -> None:
    assert timezone_for(lat, lon) == zone


def test_timezone_for_rejects_bad_points() -> None:
    assert timezone_for(91, 0) is None
    assert timezone_for(float("nan"), 0) is None


# --- online geocoder (local HTTP server) ------------------------------------------------------


def test_make_online_geocoder() -> None:
    with pytest.raises(ValueError, match="user_agent"):
        make_online_geocoder("nominatim")
    geocoder = make_online_geocoder(
        "Nominatim", user_agent="signpost-tests", domain="127.0.0.1:9", scheme="http"
    )
    assert isinstance(geocoder, Nominatim)
    assert geocoder.api == "http://127.0.0.1:9/search"
    with pytest.raises(GeocoderNotFound):
        make_online_geocoder("no-such-service")


def test_online_success_is_address_precision(tables: GeoTables, server: FakeNominatim) -> None:
    geocoder = online_geocoder(tables, server)
    point = dc_address(geocoder)
    assert point == GeoPoint(WHITE_HOUSE[0], WHITE_HOUSE[1], "address", "")
    assert len(server.requests) == 1
    request = server.requests[0]
    assert request["path"] == ["/search"]
    assert "Pennsylvania" in request["q"][0] and "20500" in request["q"][0]
    assert request["countrycodes"] == ["us"]
    # Free text goes online too when it is a street address ...
    point = geocoder.geocode(f"{ADDRESS}, Washington, DC")
    assert point is not None and point.precision == "address"
    assert len(server.requests) == 2
    # ... but ZIPs, cities, states and coordinates never do.
    for text in ("20001", "Washington, DC", "DC", "38.9,-77.0"):
        assert geocoder.geocode(text).precision != "address"  # type: ignore[union-attr]
    assert len(server.requests) == 2


def test_online_timeout_falls_back_to_zip(tables: GeoTables, server: FakeNominatim) -> None:
    server.mode = "slow"
    geocoder = online_geocoder(tables, server, timeout=0.3)
    start = time.perf_counter()
    point = dc_address(geocoder)
    assert time.perf_counter() - start < 3
    assert point is not None and point.precision == "zip" and point.label.startswith("20500")
    assert len(server.requests) == 1
    assert geocoder.stats["online_error"] == 1


def test_online_429_falls_back_and_backs_off(tables: GeoTables, server: FakeNominatim) -> None:
    server.mode = "429"
    geocoder = online_geocoder(tables, server)
    point = dc_address(geocoder)
    assert point is not None and point.precision == "zip"
    assert len(server.requests) == 1
    # Retry-After is honoured: the next row does not hit the server again.
    server.mode = "ok"
    point = dc_address(geocoder, "1 Other Street")
    assert point is not None and point.precision == "zip"
    assert len(server.requests) == 1
    assert geocoder.stats["online_rate_limited"] == 1
    assert geocoder.stats["online_suspended"] == 1


def test_online_unreachable_falls_back(tables: GeoTables) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    online = make_online_geocoder(
        "nominatim", user_agent="signpost-tests", domain=f"127.0.0.1:{port}", scheme="http",
        proxies={},
    )
    geocoder = Geocoder(tables, online=online, min_delay_seconds=0, timeout=1)
    for _ in range(4):
        point = dc_address(geocoder)
        assert point is not None and point.precision == "zip"
    assert geocoder.stats["online_error"] == 3  # then it pauses instead of trying every row
    assert geocoder.stats["online_suspended"] == 1


def test_online_cache_persists_across_instances(
    tables: GeoTables, server: FakeNominatim, tmp_path: Path
) -> None:
    cache = tmp_path / "cache" / "geocode.sqlite"
    first = online_geocoder(tables, server, cache)
    assert dc_address(first).precision == "address"  # type: ignore[union-attr]
    assert len(server.requests) == 1
    second = online_geocoder(tables, server, cache)
    # Normalisation: case, spacing and punctuation do not make a new query.
    point = second.geocode_address(
        address_1="1600  pennsylvania ave. nw", city="WASHINGTON", state="dc",
        postal_code="20500",
    )
    assert point == GeoPoint(WHITE_HOUSE[0], WHITE_HOUSE[1], "address", "")
    assert len(server.requests) == 1
    assert second.stats["online_cache_hit"] == 1
    # The cache holds hashes and coordinates, never the address text.
    with sqlite3.connect(cache) as conn:
        rows = conn.execute("SELECT * FROM geocode_cache").fetchall()
    assert len(rows) == 1 and "Pennsylvania" not in repr(rows)
    assert cache.read_bytes().find(b"ennsylvania") == -1
    assert cache.stat().st_mode & 0o077 == 0


def test_online_not_found_is_cached(
    tables: GeoTables, server: FakeNominatim, tmp_path: Path
) -> None:
    server.mode = "empty"
    cache = tmp_path / "geocode.sqlite"
    first = online_geocoder(tables, server, cache)
    assert dc_address(first).precision == "zip"  # type: ignore[union-attr]
    second = online_geocoder(tables, server, cache)
    assert dc_address(second).precision == "zip"  # type: ignore[union-attr]
    assert len(server.requests) == 1
    assert second.stats["online_not_found"] == 1


def test_online_errors_are_not_cached(
    tables: GeoTables, server: FakeNominatim, tmp_path: Path
) -> None:
    server.mode = "429"
    cache = tmp_path / "geocode.sqlite"
    point = dc_address(online_geocoder(tables, server, cache))
    assert point is not None and point.precision == "zip"
    server.mode = "ok"
    point = dc_address(online_geocoder(tables, server, cache))
    assert point is not None and point.precision == "address"
    assert len(server.requests) == 2


def test_online_answer_far_from_the_zip_is_rejected(
    tables: GeoTables, server: FakeNominatim
) -> None:
    server.point = (45.5152, -122.6784)  # Portland, OR: a same-named street elsewhere
    geocoder = online_geocoder(tables, server)
    point = dc_address(geocoder)
    assert point is not None and point.precision == "zip"
    assert geocoder.stats["online_rejected_far"] == 1


def test_po_box_is_never_sent_online(tables: GeoTables, server: FakeNominatim) -> None:
    geocoder = online_geocoder(tables, server)
    point = geocoder.geocode_address(
        address_1="P.O. Box 1234", city="Washington", state="DC", postal_code="20013"
    )
    assert point is not None and point.precision == "zip"
    assert server.requests == []


def test_rate_limiter_spaces_requests(tables: GeoTables, server: FakeNominatim) -> None:
    online = local_nominatim(server)
    geocoder = Geocoder(tables, online=online, min_delay_seconds=0.3, timeout=2)
    start = time.perf_counter()
    dc_address(geocoder, "1 First Street")
    dc_address(geocoder, "2 Second Street")
    assert time.perf_counter() - start >= 0.3
    assert len(server.requests) == 2


def test_no_address_text_in_logs(
    tables: GeoTables, server: FakeNominatim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    geocoder = online_geocoder(tables, server, timeout=0.3)
    dc_address(geocoder, "1234 Secretive Lane NW")
    server.mode = "slow"
    dc_address(geocoder, "1235 Secretive Lane NW")
    server.release.set()
    geocoder.log_summary()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "address=1" in text and "online_error=1" in text
    assert "Secretive" not in text and "Lane" not in text


# --- build script -----------------------------------------------------------------------------


def _write_sources(folder: Path) -> None:
    folder.mkdir()
    zcta = [
        "GEOID\tALAND\tAWATER\tALAND_SQMI\tAWATER_SQMI\tINTPTLONG\tINTPTLAT",
        "20001\t1\t0\t1\t0\t-77.017739\t38.910353",
        "00901\t1\t0\t1\t0\t-66.106\t18.4655",
        "\t\t\t\t\t\t",
    ]
    (folder / build_geo_tables.ZCTA_FILE).write_bytes("\r\n".join(zcta).encode() + b"\r\n")
    geonames = [
        "US\t20001\tWashington\tDistrict of Columbia\tDC\tDistrict of Columbia\t001\t\t\t"
        "38.9122\t-77.0177\t4",
        "US\t20013\tWashington\tDistrict of Columbia\tDC\tDistrict of Columbia\t001\t\t\t"
        "38.8933\t-77.0146\t4",
        "US\t34034\tAPO\t\tAA\tDillon\t033\t\t\t33.0364\t-82.2493\t1",
        "US\t96912\tDEDEDO\t\tGU\tBingham\t011\t\t\t39.0176\t-122.0666\t1",
        "US\t22030\tFairfax\tVirginia\tVA\tCity of Fairfax\t600\t\t\t38.8462\t-77.3064\t4",
    ]
    (folder / build_geo_tables.GEONAMES_FILE).write_text("\n".join(geonames) + "\n")


def test_build_handles_source_quirks(tmp_path: Path) -> None:
    source, out = tmp_path / "src", tmp_path / "out"
    _write_sources(source)
    stats = build_geo_tables.build(source, out)
    assert stats["geonames_military_dropped"] == 1
    assert stats["geonames_placeholder_dropped"] == 1
    assert (out / "us_zips.csv").read_text().splitlines() == [
        "zip,lat,lon,city,state,county,precision_source",
        "00901,18.4655,-66.106,,PR,,zcta",
        "20001,38.91035,-77.01774,Washington,DC,District of Columbia,zcta",
        "20013,38.8933,-77.0146,Washington,DC,District of Columbia,geonames",
        "22030,38.8462,-77.3064,Fairfax,VA,Fairfax (city),geonames",
    ]
    cities = (out / "us_cities.csv").read_text().splitlines()
    assert cities[0] == "city,state,county,lat,lon,zips"
    assert "Washington,DC,District of Columbia,38.90275,-77.01615,20001 20013" in cities
    loaded = GeoTables(out)
    assert loaded.zip("20013").source == "geonames"  # type: ignore[union-attr]
    assert loaded.zips_in_county("Fairfax City", "VA") == {"22030"}
    assert loaded.state("PR").fips == "72"  # type: ignore[union-attr]


@pytest.mark.shared
def test_committed_tables_match_a_fresh_build(tmp_path: Path) -> None:
    build_geo_tables.build(ZIP_SOURCE, tmp_path)
    for name in ("us_zips.csv", "us_cities.csv", "us_states.csv"):
        assert filecmp.cmp(tmp_path / name, ROOT / "data" / "geo" / name, shallow=False), name


def test_committed_tables_are_small() -> None:
    for name in ("us_zips.csv", "us_cities.csv", "us_states.csv"):
        assert (ROOT / "data" / "geo" / name).stat().st_size < 3_000_000
