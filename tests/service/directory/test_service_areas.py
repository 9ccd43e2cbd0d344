"""Tests for `service.directory.service_areas`: parsing coverage texts and matching places.

The `REAL` rows are copied verbatim from ../shared/datasets: the DC and SF 211 AIRS exports
(`CoverageArea`, and iCarol's `Coverage` with its "ST - Name County;" parts) and the Ohana San
Mateo sample (`services.csv`, `service_areas`). The places are checked against the bundled
tables in data/geo; one test runs on a tiny in-memory table instead.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.directory.service_areas import (
    Coverage,
    covers,
    parse_service_area,
    point_in_geometry,
)

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "datasets"


@dataclass
class Case:
    text: str
    kind: str
    resolved: bool
    states: tuple[str, ...] = ()
    counties: tuple[tuple[str, str | None], ...] = ()
    cities: tuple[tuple[str, str | None], ...] = ()
    zips: tuple[str, ...] = ()
    default_state: str | None = None


BRIEF = [
    Case("Miami-Dade County", "county", True, counties=(("Miami-Dade", "FL"),)),
    Case("Broward and Palm Beach Counties", "county", True,
         counties=(("Broward", "FL"), ("Palm Beach", "FL"))),
    Case("statewide", "text", False),
    Case("statewide", "state", True, states=("FL",), default_state="FL"),
    Case("Statewide", "state", True, states=("CA",), default_state="California"),
    Case("Nationwide", "nation", True),
    Case("Florida", "state", True, states=("FL",)),
    Case("DC", "state", True, states=("DC",)),
    Case("District of Columbia", "state", True, states=("DC",)),
    Case("Washington, DC", "state", True, states=("DC",)),
    Case("Washington D.C.", "state", True, states=("DC",)),
    Case("ZIP codes 33125, 33126", "zip", True, zips=("33125", "33126")),
    Case("San Francisco", "city", True, cities=(("San Francisco", "CA"),)),
    Case("San Francisco", "city", True, cities=(("San Francisco", "CA"),), default_state="CA"),
    Case("DC Metro Area", "text", False),
    Case("Montgomery County", "text", False),  # in MD, VA, PA, TX, ...: needs a state
    Case("Montgomery County", "county", True, counties=(("Montgomery", "MD"),),
         default_state="MD"),
    Case("Montgomery County, Maryland", "county", True, counties=(("Montgomery", "MD"),)),
    Case("Alexandria", "city", True, cities=(("Alexandria", "VA"),), default_state="VA"),
    Case("Georgetown", "text", False, default_state="DC"),  # a DC neighbourhood, not Texas
    Case("Shaw", "text", False),
    Case("", "text", False),
]

REAL = [
    # DC 211 AIRS `CoverageArea`
    Case("District of Columbia", "state", True, states=("DC",)),
    Case("DC Metro Area", "text", False),
    Case("Ward 6", "text", False, default_state="DC"),
    Case("District of Columbia, Maryland, Virginia", "state", True, states=("DC", "MD", "VA")),
    Case("United States", "nation", True),
    Case("Nationwide", "nation", True),
    Case("Virginia", "state", True, states=("VA",)),
    Case("Montgomery County, Maryland", "county", True, counties=(("Montgomery", "MD"),)),
    Case("Prince George's County, Maryland", "county", True,
         counties=(("Prince George's", "MD"),)),
    Case("Arlington County, Virginia", "county", True, counties=(("Arlington", "VA"),)),
    Case("Fairfax County, Virginia", "county", True, counties=(("Fairfax", "VA"),)),
    Case("Riverdale, Maryland", "city", True, cities=(("Riverdale", "MD"),)),
    Case("20009, 20010, 20011", "zip", True, zips=("20009", "20010", "20011")),
    Case("Zip codes: 20032, 20020, Ward 8, and part of Ward 6", "zip", False,
         zips=("20032", "20020")),
    Case("District of Columbia, Montgomery and Prince George's Counties in Maryland", "state",
         True, states=("DC",), counties=(("Montgomery", "MD"), ("Prince George's", "MD"))),
    Case("District of Columbia and surrounding DC Metro area", "state", False, states=("DC",)),
    Case("District of Columbia only", "state", True, states=("DC",)),
    Case("District of Columbia residents", "state", True, states=("DC",)),
    Case("Washington, DC", "state", True, states=("DC",)),
    Case("United States, Puerto Rico, Virgin Islands, Guam", "nation", True,
         states=("PR", "VI", "GU")),
    Case("Upper Northwest District of Columbia", "text", False),
    Case("Metropolitan Washington area", "text", False),
    Case("DC, MD, VA Region", "state", False, states=("DC", "MD")),
    Case("Director of Columbia", "text", False),
    # Street boundaries, quadrants and qualified areas stay text: not Nebraska, Florida or Whittier.
    Case("Reside between 7th St, NW; 2nd St, NE; the railroad tracks; Florida and Rhode Island Ave "
         "on the North and Louisiana and Pennsylvania Ave on the South", "text", False),
    Case("NE and SE quadrants in Wards 5, 6, 7, 8", "text", False),
    Case("Metro DC area including parts of MD and VA", "text", False),
    Case("East of the Anacostia River:  District of Columbia and Prince George's County, MD",
         "text", False),
    Case("Takoma Park, Whittier, Truesdale,", "text", False),
    Case("District of Columbia, although primarily serves residents in the Shaw/Columbia Heights "
         "neighborhood.", "state", False, states=("DC",)),
    Case("Anyone in need is welcome", "text", False),
    # SF 211 AIRS `CoverageArea`
    Case("San Francisco County", "county", True, counties=(("San Francisco", "CA"),)),
    Case("Alameda County, Marin County, San Francisco County, San Mateo County", "county", True,
         counties=(("Alameda", "CA"), ("Marin", "CA"), ("San Francisco", "CA"),
                   ("San Mateo", "CA"))),
    Case("San Francisco County (Zip Codes 94107, 94110, 94112, 94114, 94131)", "zip", True,
         zips=("94107", "94110", "94112", "94114", "94131")),
    Case("San Francisco County (Tenderloin district)", "text", False),
    Case("Marin County, Napa County, San Francisco County, San Mateo County, Santa Cruz County, "
         "Solano County, Statewide", "state", True, states=("CA",),
         counties=(("Marin", "CA"), ("Napa", "CA"), ("San Francisco", "CA"), ("San Mateo", "CA"),
                   ("Solano", "CA"), ("Santa Cruz", "CA"))),
    Case("Oceanview, Merced Height, Ingleside, Excelsior and District 11", "text", False,
         default_state="CA"),
    # AIRS/iCarol `Coverage` ("ST - Name County;" parts)
    Case("CA - Marin County; CA - Napa County; CA - San Francisco County; CA - San Mateo County; "
         "CA - Santa Cruz County; CA - Solano County;", "county", True,
         counties=(("Marin", "CA"), ("Napa", "CA"), ("San Francisco", "CA"), ("San Mateo", "CA"),
                   ("Santa Cruz", "CA"), ("Solano", "CA"))),
    Case("DC;", "state", True, states=("DC",)),
    Case("DC; DE; MD; PA; VA; WV;", "state", True, states=("DC", "DE", "MD", "PA", "VA", "WV")),
    # The DC export files DC neighbourhoods as Maryland "counties": they must stay unresolved.
    Case("MD - Downtown County;", "text", False),
    Case("MD - Capitol Hill County;", "text", False),
    # Ohana San Mateo sample, services.csv `service_areas`
    Case("San Mateo County", "county", True, counties=(("San Mateo", "CA"),), default_state="CA"),
    Case("Alameda County, San Mateo County", "county", True,
         counties=(("Alameda", "CA"), ("San Mateo", "CA")), default_state="CA"),
    Case("Belmont, Burlingame", "city", True,
         cities=(("Belmont", "CA"), ("Burlingame", "CA")), default_state="CA"),
    # Colma and East Palo Alto have no postal city of their own in the tables.
    Case("Colma, Daly City, South San Francisco", "city", False,
         cities=(("Daly City", "CA"), ("South San Francisco", "CA")), default_state="CA"),
    Case("Belmont, Burlingame, East Palo Alto", "city", False,
         cities=(("Belmont", "CA"), ("Burlingame", "CA")), default_state="CA"),
]


def _check(case: Case) -> None:
    cov = parse_service_area(case.text, default_state=case.default_state)
    assert cov.text == case.text
    assert (cov.kind, cov.resolved) == (case.kind, case.resolved)
    assert cov.states == list(case.states)
    assert cov.counties == list(case.counties)
    assert cov.cities == list(case.cities)
    assert cov.postal_codes == list(case.zips)
    assert cov.polygon is None


@pytest.mark.parametrize("case", BRIEF, ids=lambda c: f"{c.text!r}/{c.default_state}")
def test_parse_brief_examples(case: Case) -> None:
    _check(case)


@pytest.mark.parametrize("case", REAL, ids=lambda c: f"{c.text[:40]!r}/{c.default_state}")
def test_parse_real_coverage_texts(case: Case) -> None:
    _check(case)


@pytest.mark.shared
def test_real_coverage_texts_are_verbatim() -> None:
    seen: set[str] = set()
    for name, columns in (
        ("airs_211_exports/dc_211_airs_export_2014.csv", ("CoverageArea", "Coverage")),
        ("airs_211_exports/sf_211_airs_export_2014.csv", ("CoverageArea", "Coverage")),
        ("hsds_ohana_smc_sample/services.csv", ("service_areas",)),
    ):
        with (SHARED / name).open(encoding="utf-8-sig", newline="") as fh:
            for row in csv.DictReader(fh):
                seen |= {row[c].strip() for c in columns}
    assert [c.text for c in REAL if c.text not in seen] == []


def test_none_text_and_extent_as_text() -> None:
    assert parse_service_area(None) == Coverage(text="")
    cov = parse_service_area(None, extent="Miami-Dade County", extent_type="text")
    assert cov.counties == [("Miami-Dade", "FL")]


# --- covers ---------------------------------------------------------------------------------

COVERS = [
    # (coverage text, default state, client place, expected)
    ("Miami-Dade County", None, {"postal_code": "33125"}, True),
    ("Miami-Dade County", None, {"postal_code": "20001"}, False),
    ("Miami-Dade County", None, {"county": "Miami-Dade County", "state": "FL"}, True),
    ("Miami-Dade County", None, {"county": "Broward", "state": "FL"}, False),
    ("Miami-Dade County", None, {"state": "FL"}, None),  # somewhere in Florida
    ("Miami-Dade County", None, {"state": "DC"}, False),
    ("Miami-Dade County", None, {"lat": 25.77, "lon": -80.2}, True),
    ("Miami-Dade County", None, {"lat": 38.9, "lon": -77.03}, False),
    ("Broward and Palm Beach Counties", None, {"postal_code": "33301"}, True),
    ("District of Columbia", None, {"state": "DC"}, True),
    ("District of Columbia", None, {"state": "Maryland"}, False),
    ("District of Columbia", None, {"postal_code": "20910"}, False),
    ("District of Columbia", None, {"lat": 38.9, "lon": -77.03}, True),
    ("District of Columbia", None, {"lat": 25.77, "lon": -80.2}, False),
    ("District of Columbia", None, {}, None),  # no place given
    ("Washington, DC", None, {"city": "Washington", "state": "DC"}, True),
    ("ZIP codes 33125, 33126", None, {"postal_code": "33125"}, True),
    ("ZIP codes 33125, 33126", None, {"postal_code": "33127"}, False),
    ("ZIP codes 33125, 33126", None, {"state": "FL"}, None),
    ("ZIP codes 33125, 33126", None, {"state": "NY"}, False),
    ("San Francisco", "CA", {"postal_code": "94110"}, True),
    ("San Francisco", "CA", {"city": "Oakland", "state": "CA"}, False),
    ("San Francisco", "CA", {"postal_code": "10001"}, False),
    ("San Francisco", "CA", {"postal_code": "94015"}, None),  # Daly City, on the city line
    ("Nationwide", None, {"state": "AK"}, True),
    ("DC Metro Area", None, {"state": "DC"}, None),
    ("Ward 6", "DC", {"postal_code": "20002"}, None),
    ("District of Columbia and surrounding DC Metro area", None, {"state": "DC"}, True),
    ("District of Columbia and surrounding DC Metro area", None, {"state": "MD"}, None),
    ("Zip codes: 20032, 20020, Ward 8, and part of Ward 6", None, {"postal_code": "20032"}, True),
    ("Zip codes: 20032, 20020, Ward 8, and part of Ward 6", None, {"postal_code": "20003"}, None),
    ("statewide", None, {"state": "FL"}, None),
    ("Metro DC area including parts of MD and VA", None, {"state": "VA"}, None),
]


@pytest.mark.parametrize(("text", "default", "place", "expected"), COVERS)
def test_covers(text: str, default: str | None, place: dict, expected: bool | None) -> None:
    assert covers(parse_service_area(text, default_state=default), **place) is expected


# --- polygons -------------------------------------------------------------------------------

SQUARE_WITH_HOLE = {
    "type": "Polygon",
    "coordinates": [
        [[-80.0, 25.0], [-79.0, 25.0], [-79.0, 26.0], [-80.0, 26.0], [-80.0, 25.0]],
        [[-79.7, 25.3], [-79.3, 25.3], [-79.3, 25.7], [-79.7, 25.7], [-79.7, 25.3]],
    ],
}
TWO_SQUARES = {
    "type": "MultiPolygon",
    "coordinates": [
        [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]],
        [[[10.0, 10.0], [11.0, 10.0], [11.0, 11.0], [10.0, 11.0]]],  # ring left open
    ],
}


@pytest.mark.parametrize(
    ("geometry", "lat", "lon", "inside"),
    [
        (SQUARE_WITH_HOLE, 25.1, -79.9, True),
        (SQUARE_WITH_HOLE, 25.5, -79.5, False),  # in the hole
        (SQUARE_WITH_HOLE, 26.5, -79.5, False),
        (SQUARE_WITH_HOLE, 25.5, -80.5, False),
        (TWO_SQUARES, 0.5, 0.5, True),
        (TWO_SQUARES, 10.5, 10.5, True),
        (TWO_SQUARES, 5.0, 5.0, False),
        ({"type": "Point", "coordinates": [0, 0]}, 0.0, 0.0, False),
    ],
)
def test_point_in_geometry(geometry: dict, lat: float, lon: float, inside: bool) -> None:
    assert point_in_geometry(lat, lon, geometry) is inside


def test_geojson_extents() -> None:
    text = json.dumps(SQUARE_WITH_HOLE)
    cov = parse_service_area("Our area", extent=text, extent_type="geojson")
    assert (cov.kind, cov.resolved, cov.text) == ("polygon", True, "Our area")
    assert cov.polygon == SQUARE_WITH_HOLE
    assert covers(cov, lat=25.1, lon=-79.9) is True
    assert covers(cov, lat=25.5, lon=-79.5) is False
    assert covers(cov, state="FL") is None
    feature = {"type": "Feature", "properties": {}, "geometry": TWO_SQUARES}
    assert parse_service_area(None, extent=feature).polygon == TWO_SQUARES
    collection = {
        "type": "FeatureCollection",
        "features": [
            {"type": "Feature", "geometry": SQUARE_WITH_HOLE},
            {"type": "Feature", "geometry": TWO_SQUARES},
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 0]}},
        ],
    }
    merged = parse_service_area(None, extent=json.dumps(collection), extent_type="geojson")
    assert merged.polygon is not None and merged.polygon["type"] == "MultiPolygon"
    assert len(merged.polygon["coordinates"]) == 3
    assert covers(merged, lat=10.5, lon=10.5) is True
    # Not GeoJSON, or not an area: fall back to the text.
    assert parse_service_area("Florida", extent="{not json", extent_type="geojson").states == ["FL"]
    assert parse_service_area("Florida", extent=text, extent_type="kml").kind == "state"
    point = json.dumps({"type": "Point", "coordinates": [-80, 25]})
    assert parse_service_area("x", extent=point, extent_type="geojson").kind == "text"


def test_polygon_with_a_zip_only() -> None:
    miami = {
        "type": "Polygon",
        "coordinates": [[[-80.5, 25.5], [-80.0, 25.5], [-80.0, 26.0], [-80.5, 26.0]]],
    }
    cov = parse_service_area(None, extent=miami)
    assert covers(cov, postal_code="33125") is True
    assert covers(cov, postal_code="20001") is None  # a ZIP centroid is too coarse for "no"


def test_json_round_trip() -> None:
    for cov in (
        parse_service_area("District of Columbia, Montgomery and Prince George's Counties in "
                           "Maryland"),
        parse_service_area("San Francisco", default_state="CA"),
        parse_service_area("x", extent=SQUARE_WITH_HOLE),
        parse_service_area("DC Metro Area"),
    ):
        data = json.loads(json.dumps(cov.to_dict()))
        assert Coverage.from_dict(data) == cov
    assert Coverage.from_dict({}) == Coverage()


# --- without the bundled tables -------------------------------------------------------------


@dataclass(frozen=True)
class _Zip:
    zip: str
    lat: float
    lon: float
    city: str
    state: str
    county: str


@dataclass(frozen=True)
class _City:
    city: str
    state: str
    county: str
    zips: tuple[str, ...]


class TinyGeo:
    """Three ZIPs in the columns of data/geo/us_zips.csv, for a test that needs no files."""

    zips = {
        "33125": _Zip("33125", 25.78, -80.24, "Miami", "FL", "Miami-Dade"),
        "33301": _Zip("33301", 26.12, -80.13, "Fort Lauderdale", "FL", "Broward"),
        "20001": _Zip("20001", 38.91, -77.02, "Washington", "DC", "District of Columbia"),
    }

    def zip(self, code: str) -> _Zip | None:
        return self.zips.get(code)

    def state(self, code_or_name: str) -> None:
        return None

    def city(self, city: str, state: str) -> _City | None:
        found = [z.zip for z in self.zips.values() if (z.city, z.state) == (city, state)]
        return _City(city, state, "", tuple(found)) if found else None

    def zips_in_county(self, county: str, state: str) -> set[str]:
        name = county.removesuffix(" County")
        return {z.zip for z in self.zips.values() if (z.county, z.state) == (name, state)}


def test_injected_tables() -> None:
    geo = TinyGeo()
    cov = parse_service_area("Miami-Dade County", geo=geo)
    assert (cov.kind, cov.counties, cov.resolved) == ("county", [("Miami-Dade", "FL")], True)
    assert covers(cov, postal_code="33125", geo=geo) is True
    assert covers(cov, postal_code="20001", geo=geo) is False
    assert covers(cov, postal_code="99999", geo=geo) is None  # unknown ZIP
    city = parse_service_area("Miami", default_state="FL", geo=geo)
    assert city.cities == [("Miami", "FL")]
    assert parse_service_area("Springfield", geo=geo).kind == "text"
