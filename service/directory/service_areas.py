"""Structured coverage from HSDS `service_area` rows and free-text coverage areas.

211 records say where a service is offered in words ("Miami-Dade County", "Broward and Palm
Beach Counties", "District of Columbia, Maryland, Virginia", "Ward 6", "DC Metro Area"); HSDS 3.1
`service_area` rows may also carry a GeoJSON `extent`. `parse_service_area` turns either into a
`Coverage`, and `covers` answers whether a client's place lies inside it: True, False, or None
when the text could not be resolved and nobody should be turned away on a guess.

Places are checked against the offline tables in ``data/geo`` (read with
`indexer.geocode.GeoTables`), so a county or city is only *resolved* when the tables know it in
that state. A text with several parts ("District of Columbia and surrounding metro area") keeps
what it resolved and is marked unresolved for the rest; `covers` then says True for a place in a
resolved part and None, never False, elsewhere.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

KINDS: tuple[str, ...] = ("nation", "state", "county", "city", "zip", "polygon", "text")
_BREADTH = {"nation": 0, "state": 1, "county": 2, "city": 3, "zip": 4}

# USPS codes and names, used when the geo tables are not available (and for "DC" spellings).
_STATES: dict[str, str] = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "DC": "District of Columbia",
    "FL": "Florida", "GA": "Georgia", "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois",
    "IN": "Indiana", "IA": "Iowa", "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana",
    "ME": "Maine", "MD": "Maryland", "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota",
    "MS": "Mississippi", "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada",
    "NH": "New Hampshire", "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York",
    "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon",
    "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota",
    "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia",
    "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
    "PR": "Puerto Rico", "VI": "Virgin Islands", "GU": "Guam", "AS": "American Samoa",
    "MP": "Northern Mariana Islands",
}
_STATE_SPELLINGS = {
    "d c": "DC", "washington d c": "DC", "washington dc": "DC", "the district of columbia": "DC",
    "us virgin islands": "VI", "u s virgin islands": "VI",
}
_NATION = re.compile(
    r"^(?:nation ?wide|national(?: programs? only)?|united states(?: of america)?|u ?s ?a?|"
    r"all (?:50 )?states|all us|all u s|entire (?:united states|country|nation|us)|"
    r"anywhere in the (?:us|united states)|world ?wide|international|"
    r"all us residents)$"
)
_STATEWIDE = re.compile(r"^(?:state ?wide|entire state|the entire state|all of the state)$")
_FUZZY_AREA = re.compile(
    r"\b(?:metro|metropolitan|region|regional|area|areas|vicinity|surrounding|greater|"
    r"suburbs?|suburban|northern|southern|eastern|western|north|south|east|west|upper|lower|"
    r"central|downtown|ward|wards|neighbou?rhoods?|communit(?:y|ies)|district \d|parts?|"
    r"portions?|near|nearby|except|excluding|within \d)\b"
)
_COUNTY_SUFFIX = re.compile(r"^(?P<name>.+?)\s+(?:county|parish|borough|co\.?)$", re.IGNORECASE)
_CITY_AND_COUNTY = re.compile(r"^city and county of\s+(?P<name>.+)$", re.IGNORECASE)
_CITY_OF = re.compile(r"^(?:the\s+)?(?:city|town|village) of\s+(?P<name>.+)$", re.IGNORECASE)
_ICAROL_PART = re.compile(r"^(?P<st>[A-Z]{2})\s+-\s+(?P<rest>.+)$")
_ZIP = re.compile(r"(?<!\d)(\d{5})(?:-\d{4})?(?!\d)")
# A segment that describes streets or a part of a place is kept as text, whole or from the
# qualifier on: "Florida and Rhode Island Ave", "Metro DC area including parts of MD and VA".
_STREETS = re.compile(
    r"\b(?:st|street|streets|ave|avenue|avenues|rd|road|blvd|boulevard|tracks|river|block|"
    r"quadrants?)\b",
    re.IGNORECASE,
)
_QUALIFIER = re.compile(
    r"\b(?:including|parts? of|portions? of|certain areas of|areas of|sections? of|except|"
    r"excluding|primarily|mainly|mostly|although|however|but)\b",
    re.IGNORECASE,
)
_NOISE_LEAD = re.compile(
    r"^(?:(?:serves|serving|residents? of|residing in|living in|all of|entire|the entire|"
    r"only|throughout|within|in|the|all)\s+)+",
    re.IGNORECASE,
)
_NOISE_TAIL = re.compile(
    r"(?:\s+(?:residents?|only|and surrounding areas?|government))+\.?$", re.IGNORECASE
)


class _Geo(Protocol):
    """The part of `indexer.geocode.GeoTables` used here (tests may pass small fixtures)."""

    def zip(self, code: str) -> Any: ...

    def state(self, code_or_name: str) -> Any: ...

    def city(self, city: str, state: str) -> Any: ...

    def zips_in_county(self, county: str, state: str) -> set[str]: ...


@dataclass
class Coverage:
    """Where a service is offered. `kind` is the broadest level present ("text" if none)."""

    kind: str = "text"
    states: list[str] = field(default_factory=list)
    counties: list[tuple[str, str | None]] = field(default_factory=list)
    cities: list[tuple[str, str | None]] = field(default_factory=list)
    postal_codes: list[str] = field(default_factory=list)
    polygon: dict[str, Any] | None = None
    text: str = ""
    resolved: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (tuples become 2-item lists)."""
        data = asdict(self)
        data["counties"] = [list(c) for c in self.counties]
        data["cities"] = [list(c) for c in self.cities]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Coverage:
        """Rebuild from `to_dict()` output."""
        return cls(
            kind=data.get("kind", "text"),
            states=list(data.get("states") or []),
            counties=[(c[0], c[1]) for c in data.get("counties") or []],
            cities=[(c[0], c[1]) for c in data.get("cities") or []],
            postal_codes=list(data.get("postal_codes") or []),
            polygon=data.get("polygon"),
            text=data.get("text") or "",
            resolved=bool(data.get("resolved", False)),
        )


# --------------------------------------------------------------------------- helpers


def _default_geo() -> _Geo | None:
    """The bundled tables, or None when they (or their module) are not available."""
    try:
        from indexer.geocode import GeoTables

        return GeoTables.default()
    except (ImportError, FileNotFoundError, OSError):
        return None


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _words(text: str) -> str:
    """Lower-case words only: "St. Mary's County" -> "saint marys county"."""
    words = re.sub(r"[^0-9a-z]+", " ", _fold(text).replace("'", "")).split()
    aliases = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount"}
    return " ".join(aliases.get(w, w) for w in words)


def _county_base(name: str) -> str:
    """A county name without its kind word ("City and County of San Francisco": "san francisco")."""
    text = _words(name)
    text = re.sub(r"^city and county of ", "", text)
    text = re.sub(r" (?:county|parish|borough|census area|city and borough|municipality)$", "",
                  text)
    text = re.sub(r"\s*\((?:city|ca)\)$|^city of ", "", text)
    return text.strip()


def _state_code(text: str, geo: _Geo | None, *, strict: bool = True) -> str | None:
    """The USPS code for a state written as its code or full name (and DC's spellings)."""
    raw = text.strip().rstrip(".")
    key = _words(raw)
    if key in _STATE_SPELLINGS:
        return _STATE_SPELLINGS[key]
    if re.fullmatch(r"[A-Za-z]{2}", raw) and raw.upper() in _STATES:
        if strict and raw != raw.upper() and raw.lower() not in ("dc",):
            return None  # "in", "or", "me" are words, not states
        if raw.upper() == "NE":
            return None  # a compass quadrant ("7th St, NE") far more often than Nebraska
        return raw.upper()
    for code, name in _STATES.items():
        if key == _words(name):
            return code
    if geo is not None and not strict:
        info = geo.state(raw)
        if info is not None:
            return str(info.code)
    return None


def _county_states(name: str, geo: _Geo | None) -> list[str]:
    """States whose tables know a county called `name`."""
    if geo is None:
        return []
    return [code for code in _STATES if geo.zips_in_county(name, code)]


def _city_in(name: str, state: str, geo: _Geo | None) -> Any:
    if geo is None:
        return None
    return geo.city(name, state)


def _city_anywhere(name: str, geo: _Geo | None) -> Any:
    """A city named without a state, only when it is a large, unambiguous place."""
    finder = getattr(geo, "city_anywhere", None)
    if finder is None:
        return None
    info = finder(name)
    if info is None or len(getattr(info, "zips", ()) or ()) < 5:
        return None
    return info


# --------------------------------------------------------------------------- GeoJSON


def _geometry(extent: Any, extent_type: str | None) -> dict[str, Any] | None:
    """A Polygon/MultiPolygon geometry from a GeoJSON extent (geometry, Feature or collection)."""
    if extent is None:
        return None
    data = extent
    if isinstance(extent, str):
        text = extent.strip()
        looks_json = text.startswith("{")
        if not looks_json:
            return None
        geo_types = ("geojson", "json", "application/geo+json")
        if extent_type and extent_type.strip().lower() not in geo_types:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            return None
    if not isinstance(data, dict):
        return None
    kind = data.get("type")
    if kind == "Feature":
        return _geometry(data.get("geometry"), None)
    if kind == "FeatureCollection":
        polygons: list[Any] = []
        for feature in data.get("features") or []:
            geom = _geometry(feature, None)
            if geom is None:
                continue
            if geom["type"] == "Polygon":
                polygons.append(geom["coordinates"])
            else:
                polygons.extend(geom["coordinates"])
        if not polygons:
            return None
        if len(polygons) == 1:
            return {"type": "Polygon", "coordinates": polygons[0]}
        return {"type": "MultiPolygon", "coordinates": polygons}
    if kind == "GeometryCollection":
        return _geometry(
            {"type": "FeatureCollection",
             "features": [{"type": "Feature", "geometry": g} for g in data.get("geometries", [])]},
            None,
        )
    if kind in ("Polygon", "MultiPolygon") and isinstance(data.get("coordinates"), list):
        return {"type": kind, "coordinates": data["coordinates"]}
    return None


def _in_ring(lon: float, lat: float, ring: list[list[float]]) -> bool:
    """Ray casting: True if (lon, lat) is inside the closed or open ring."""
    inside = False
    n = len(ring)
    if n < 3:
        return False
    j = n - 1
    for i in range(n):
        xi, yi = float(ring[i][0]), float(ring[i][1])
        xj, yj = float(ring[j][0]), float(ring[j][1])
        if (yi > lat) != (yj > lat):
            x_cross = (xj - xi) * (lat - yi) / (yj - yi) + xi
            if lon < x_cross:
                inside = not inside
        j = i
    return inside


def point_in_geometry(lat: float, lon: float, geometry: dict[str, Any]) -> bool:
    """True if the point lies in the Polygon/MultiPolygon (holes respected)."""
    if geometry.get("type") == "Polygon":
        polygons = [geometry.get("coordinates") or []]
    elif geometry.get("type") == "MultiPolygon":
        polygons = geometry.get("coordinates") or []
    else:
        return False
    for rings in polygons:
        if not rings or not _in_ring(lon, lat, rings[0]):
            continue
        if not any(_in_ring(lon, lat, hole) for hole in rings[1:]):
            return True
    return False


# --------------------------------------------------------------------------- parsing


@dataclass
class _Parts:
    states: list[str] = field(default_factory=list)
    counties: list[tuple[str, str | None]] = field(default_factory=list)
    cities: list[tuple[str, str | None]] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)
    nation: bool = False
    unresolved: list[str] = field(default_factory=list)
    county_names: set[str] = field(default_factory=set)  # unresolved names from "X Counties"

    def add(self, bucket: list[Any], item: Any) -> None:
        if item not in bucket:
            bucket.append(item)


def _split_segment(segment: str) -> list[str]:
    """Parts of one segment, split on commas, "and", "&", "or" and slashes."""
    parts = re.split(r"\s*,\s*(?:and\s+|or\s+|&\s*)?|\s+and\s+|\s*&\s*|\s+or\s+|\s*/\s*", segment)
    return [p.strip(" .:-") for p in parts if p and p.strip(" .:-")]


def _expand_plural_counties(
    segment: str, geo: _Geo | None
) -> tuple[str, list[str], str | None]:
    """Find "Broward and Palm Beach Counties (in Florida)": (rest, county names, state text)."""
    m = re.search(r"\s+[Cc]ounties\b(?:\s+(?:in|of)\s+(?P<state>[A-Z][\w.]*(?:\s+[A-Z][\w.]*)*))?",
                  segment)
    if not m:
        return segment, [], None
    items = [i.strip() for i in segment[: m.start()].split(",")]
    names = _split_segment(items.pop())
    # Walk back over "Calvert, Charles, Montgomery, ..." while the items look like bare names.
    while items:
        item = re.sub(r"^(?:and|&)\s+", "", items[-1]).strip()
        if (
            not item
            or not item[0].isupper()
            or len(item.split()) > 3
            or _state_code(item, geo)
            or re.search(r"\b[a-z]{3,}\b", item)
        ):
            break
        names.insert(0, items.pop().strip())
    rest = ", ".join(items + [segment[m.end() :].strip(" ,")]).strip(" ,;")
    return rest, [re.sub(r"^(?:and|&)\s+", "", n) for n in names], m.group("state")


def _resolve_county(
    name: str, state: str | None, default_state: str | None, geo: _Geo | None
) -> tuple[str, str | None] | None:
    """(normalised county name, state) if the tables know it, or None."""
    base = _county_base(name)
    if not base:
        return None
    display = " ".join(w.capitalize() if w.islower() else w for w in re.sub(
        r"(?i)^city and county of\s+|\s+(?:county|parish|borough|co\.?)$", "", name.strip()
    ).split())
    if geo is None:
        st = state or default_state
        return (display, st) if st else None
    for st in [s for s in (state, default_state) if s]:
        if geo.zips_in_county(name, st) or geo.zips_in_county(display, st):
            return display, st
        if state:
            return None  # named with its state, and the state has no such county
    found = _county_states(display, geo)
    if len(found) == 1:
        return display, found[0]
    return None


def _classify(
    part: str,
    parts: _Parts,
    ctx_state: str | None,
    default_state: str | None,
    geo: _Geo | None,
    *,
    county_hint: bool = False,
    anywhere: bool = False,
) -> str | None:
    """Put one part in `parts`; return "state"/"county"/"city"/... or None if unresolved."""
    raw = part.strip()
    icarol = _ICAROL_PART.match(raw)  # iCarol "CA - Marin County"
    if icarol and _state_code(icarol.group("st"), geo):
        ctx_state = icarol.group("st")
        raw = icarol.group("rest").strip()
    text = _NOISE_TAIL.sub("", _NOISE_LEAD.sub("", raw)).strip(" .")
    if not text:
        return "skip"
    key = _words(text)
    if _NATION.match(key) or _NATION.match(_words(raw)):
        parts.nation = True
        return "nation"
    if _STATEWIDE.match(key):
        st = ctx_state or default_state
        if st:
            parts.add(parts.states, st)
            return "state"
        return None
    m = re.fullmatch(r"(?:state of\s+)?(?P<s>.+?)(?:\s+state)?", text, re.IGNORECASE)
    code = _state_code(m.group("s") if m else text, geo)
    if code and not (county_hint and not re.search(r"(?i)county", text)):
        parts.add(parts.states, code)
        return "state"
    if "(" in text or ")" in text:
        return None  # "San Francisco County (Tenderloin district)" is only part of the county
    county = _CITY_AND_COUNTY.match(text)
    suffix = _COUNTY_SUFFIX.match(text)
    if county or suffix or county_hint:
        name = (county or suffix).group("name") if (county or suffix) else text
        found = _resolve_county(name, ctx_state, default_state, geo)
        if found:
            parts.add(parts.counties, found)
            if county and geo is not None:  # a consolidated city-county is also a city
                city = _city_in(found[0], found[1] or "", geo)
                if city is not None:
                    parts.add(parts.cities, (str(city.city), str(city.state)))
            return "county"
        return None
    name = _CITY_OF.match(text).group("name") if _CITY_OF.match(text) else text
    if not re.search(r"[A-Za-z]", name):
        return None
    for st in [s for s in (ctx_state, default_state) if s]:
        city = _city_in(name, st, geo)
        if city is not None:
            if str(city.state) == "DC" and _words(str(city.city)) == "washington":
                parts.add(parts.states, "DC")  # Washington, DC is the whole District
                return "state"
            parts.add(parts.cities, (str(city.city), str(city.state)))
            return "city"
        if geo is None and ctx_state:
            parts.add(parts.cities, (name, st))
            return "city"
    if anywhere and not ctx_state and not default_state and not _FUZZY_AREA.search(key):
        city = _city_anywhere(name, geo)
        if city is not None:
            parts.add(parts.cities, (str(city.city), str(city.state)))
            return "city"
    return None


def parse_service_area(
    text: str | None,
    *,
    extent: str | dict[str, Any] | None = None,
    extent_type: str | None = None,
    default_state: str | None = None,
    geo: _Geo | None = None,
) -> Coverage:
    """Parse a coverage text and/or HSDS extent into a `Coverage` (text is always kept)."""
    source = text if isinstance(text, str) else ""
    geometry = _geometry(extent, extent_type)
    if geometry is not None:
        return Coverage(kind="polygon", polygon=geometry, text=source, resolved=True)
    if not source.strip() and isinstance(extent, str) and not extent.strip().startswith("{"):
        source = extent
    coverage = Coverage(text=source)
    body = " ".join(source.replace("\u2019", "'").split())
    if not body:
        return coverage
    geo = geo if geo is not None else _default_geo()
    default = _state_code(default_state, geo, strict=False) if default_state else None
    parts = _Parts()

    # "San Francisco County (Zip Codes 94107, 94110)": the ZIPs are the coverage.
    body = re.sub(r"[^,;()]*\(([^)]*)\)", lambda m: m.group(1) if _ZIP.search(m.group(1))
                  else m.group(0), body)
    for z in _ZIP.findall(body):
        parts.add(parts.zips, z)
    body = _ZIP.sub(" ", body)
    body = re.sub(r"(?i)\bzip\s*codes?\s*:?|\bzips?\s*:?", " ", body)
    body = re.sub(r"(?i)\bwashington,?\s+d\.?\s*c\.?(?![\w.])", "District of Columbia", body)

    segments = [seg for seg in re.split(r"\s*[;\n]\s*", body) if seg.strip(" ,.")]
    single = len(segments) == 1 and len(_split_segment(segments[0])) == 1
    for segment in segments:
        if _STREETS.search(segment):
            parts.unresolved.append(segment)
            continue
        colon = segment.find(":")
        prefix = segment[:colon] if colon != -1 else ""
        if prefix and (_FUZZY_AREA.search(_words(prefix)) or " of " in prefix):
            parts.unresolved.append(segment)  # "East of the Anacostia River: DC and ..."
            continue
        qualifier = _QUALIFIER.search(segment)
        if qualifier:
            parts.unresolved.append(segment[qualifier.start() :])
            segment = segment[: qualifier.start()].strip(" ,")
            if not segment:
                continue
        segment, plural, plural_state = _expand_plural_counties(segment, geo)
        ctx = _state_code(plural_state, geo) if plural_state else None
        for name in plural:
            if _classify(name, parts, ctx, default, geo, county_hint=True) is None:
                parts.unresolved.append(name)
                parts.county_names.add(name)
        items = _split_segment(segment)
        last: tuple[str, Any] | None = None  # the previous county/city part, for "X, ST"
        for item in items:
            code = _state_code(item, geo)
            if code and last is not None:
                bucket, value = last
                if bucket == "county" and (geo is None or geo.zips_in_county(value[0], code)):
                    parts.counties.remove(value)
                    parts.add(parts.counties, (value[0], code))
                    last = None
                    continue
                if bucket == "pending":  # a name we could not place until its state came
                    if _classify(value, parts, code, default, geo) is not None:
                        parts.unresolved.remove(value)
                        last = None
                        continue
            before_c, before_t = list(parts.counties), list(parts.cities)
            kind = _classify(item, parts, None, default, geo, anywhere=single)
            if kind is None:
                parts.unresolved.append(item)
                last = ("pending", item)
            elif kind == "county" and parts.counties != before_c:
                last = ("county", parts.counties[-1])
            elif kind == "city" and parts.cities != before_t:
                last = ("city", parts.cities[-1])
            else:
                last = None

    # "Marin County, Santa Cruz County, Statewide": when everything resolved lies in one state,
    # read the ambiguous rest ("Santa Cruz" is also in Arizona) in that state.
    found_states = {*parts.states, *(c[1] for c in parts.counties), *(c[1] for c in parts.cities)}
    if parts.unresolved and len(found_states) == 1 and None not in found_states and not default:
        only = next(iter(found_states))
        for item in list(parts.unresolved):
            hint = item in parts.county_names
            if _classify(item, parts, only, None, geo, county_hint=hint) is not None:
                parts.unresolved.remove(item)

    coverage.states = parts.states
    coverage.counties = parts.counties
    coverage.cities = [c for c in parts.cities]
    coverage.postal_codes = parts.zips
    levels = [lvl for lvl, present in (
        ("nation", parts.nation), ("state", parts.states), ("county", parts.counties),
        ("city", parts.cities), ("zip", parts.zips),
    ) if present]
    coverage.kind = min(levels, key=_BREADTH.__getitem__) if levels else "text"
    coverage.resolved = bool(levels) and not parts.unresolved
    return coverage


# --------------------------------------------------------------------------- matching a place

_BORDER_MILES = 3.0


def _miles(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    from math import asin, cos, radians, sin, sqrt

    p1, p2 = radians(lat1), radians(lat2)
    h = sin((p2 - p1) / 2) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) / 2) ** 2
    return 2 * 3958.7613 * asin(min(1.0, sqrt(h)))


def _near_coverage(lat: float, lon: float, coverage: Coverage, geo: _Geo | None) -> bool:
    """True if a covered ZIP centroid lies within a few miles (the place may straddle a line)."""
    if geo is None:
        return False
    zips: set[str] = set(coverage.postal_codes)
    for name, st in coverage.counties:
        for code in [st] if st else list(_STATES):
            zips |= geo.zips_in_county(name, code)
    for name, st in coverage.cities:
        info = geo.city(name, st) if st else None
        zips |= set(getattr(info, "zips", ()) or ())
    for code in zips:
        info = geo.zip(code)
        if info is not None and _miles(lat, lon, info.lat, info.lon) <= _BORDER_MILES:
            return True
    return False


def covers(
    coverage: Coverage,
    *,
    lat: float | None = None,
    lon: float | None = None,
    postal_code: str | None = None,
    state: str | None = None,
    county: str | None = None,
    city: str | None = None,
    geo: _Geo | None = None,
) -> bool | None:
    """True if the client's place lies in the coverage, False if surely not, None if unknown."""
    has_point = lat is not None and lon is not None
    if not (has_point or postal_code or state or county or city):
        return None
    if geo is None and not (coverage.kind == "polygon" and has_point):
        geo = _default_geo()

    zip_info = geo.zip(str(postal_code)) if (geo is not None and postal_code) else None
    if coverage.kind == "polygon" and coverage.polygon:
        if not has_point:
            if zip_info is not None:  # a ZIP centroid is too coarse to say "no"
                return True if point_in_geometry(zip_info.lat, zip_info.lon, coverage.polygon) \
                    else None
            return None
        return point_in_geometry(float(lat), float(lon), coverage.polygon)  # type: ignore[arg-type]

    if has_point and zip_info is None and geo is not None:
        nearest = getattr(geo, "nearest_zip", None)
        zip_info = nearest(float(lat), float(lon)) if nearest else None  # type: ignore[arg-type]
        from_point = True
    else:
        from_point = False

    st = _state_code(state, geo, strict=False) if state else None
    if st is None and zip_info is not None:
        st = str(zip_info.state)
    client_county = county or (str(zip_info.county) if zip_info is not None else None)
    client_city = city or (str(zip_info.city) if zip_info is not None else None)
    client_zip = str(zip_info.zip) if zip_info is not None and not from_point else None
    if postal_code and client_zip is None:
        m = _ZIP.search(str(postal_code))
        client_zip = m.group(1) if m else None

    if coverage.kind == "nation":
        return True

    # A positive match in any resolved part answers True.
    if st and st in coverage.states:
        return True
    if client_zip and client_zip in coverage.postal_codes:
        return True
    if client_county:
        base = _county_base(client_county)
        for name, cst in coverage.counties:
            if _county_base(name) == base and (cst is None or st is None or cst == st):
                return True
    if client_city:
        base = _words(client_city)
        for name, cst in coverage.cities:
            if _words(name) == base and (cst is None or st is None or cst == st):
                return True

    if not coverage.resolved:
        return None  # an unresolved part may still cover the place

    # Every part is resolved and none matched: say False only when the client's place is known
    # at the level the coverage is written at.
    if coverage.postal_codes and not client_zip:
        if not (st and _other_state_zips(coverage, st, geo)):
            return None
    if coverage.counties and not client_county:
        if not (st and all(cst and cst != st for _n, cst in coverage.counties)):
            return None
    if coverage.cities and not client_city:
        if not (st and all(cst and cst != st for _n, cst in coverage.cities)):
            return None
    if coverage.states and not st:
        return None
    point = (float(lat), float(lon)) if has_point else (  # type: ignore[arg-type]
        (zip_info.lat, zip_info.lon) if zip_info is not None else None
    )
    if point is not None and (coverage.counties or coverage.cities) and _near_coverage(
        point[0], point[1], coverage, geo
    ):
        return None
    if from_point and coverage.states and st not in coverage.states:
        return None if _near_state(point, coverage.states, geo) else False
    return False


def _other_state_zips(coverage: Coverage, state: str, geo: _Geo | None) -> bool:
    """True when every covered ZIP is known to lie outside `state`."""
    if geo is None:
        return False
    for code in coverage.postal_codes:
        info = geo.zip(code)
        if info is None or str(info.state) == state:
            return False
    return True


def _near_state(point: tuple[float, float] | None, states: list[str], geo: _Geo | None) -> bool:
    """True if a point matched to a ZIP lies inside a covered state's rough box."""
    if point is None or geo is None:
        return True
    for code in states:
        info = geo.state(code)
        contains = getattr(info, "contains", None)
        if info is None or contains is None or contains(point[0], point[1]):
            return True
    return False
