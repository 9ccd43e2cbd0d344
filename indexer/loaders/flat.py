"""Flat lists (one row per site) read through a declared column mapping per source.

National and city facility lists (SAMHSA, HRSA, HUD, VA, USDA, Open Data DC, NYC Open Data, ...)
are one CSV row or one GeoJSON feature per site. Each source has a small TOML mapping in
`indexer/mappings/<source>.toml` that says which file it reads, which columns hold which HSDS
field, how to give each row a stable id, and which categories, notes and filters apply. Every
kept row becomes an organization (shared between rows when the mapping gives an organization
`key`), a service, a location with its address, a service_at_location, and any phones, schedule
text, service-area text, languages and accessibility notes.

Mapping file, top level:
  source, title, licence, attribution   the source name the pipeline stores rows under, etc.
  files            file-name globs this mapping reads (used by `detect`)
  format           "csv" (default) or "geojson" (properties + Point geometry, CRS84)
  encoding         "utf-8" (default; a BOM is fine, bad bytes fall back to Latin-1 per line)
  detect_columns   header columns that identify the file
  id_columns       the source's record id column(s), or with `id_kind = "natural"` the columns
                   of a stable natural key (hashed); never row order unless nothing else exists
  categories       Open Eligibility ids for every service (see data/taxonomy/categories.json)
  null_values      cell values read as empty (default "NA", "N/A", "NULL", "http://" ...)
  bounds           [min_lon, min_lat, max_lon, max_lat]; coordinates outside are rejected
  languages        a value listing languages ("Russian, Spanish")
  [organization] [service] [location] [address]   HSDS field = value (see below); the
                   organization may also have `key`: rows with the same key share it
  [[phones]]       number, type, description;  [[schedules]] / [[service_areas]] description
  [[rules]]        when / contains / unless / filled / empty conditions (all must hold), then
                   skip = "reason" | categories = [...] | note | eligibility | accessibility
  [flags]          truthy = ["Yes"], heading, columns = {COLUMN = {label, categories}}
  [value_map.COLUMN]  "source value" = "value to use" (matched ignoring case)
  extends          another mapping's source name to start from (tables merged, lists replaced)

A value is a template: "{column}" is the cleaned cell (with `|title`, `|state`, `|upper`,
`|lower`, `|first_line`, `|before_comma` filters), other text is literal, and a template with an
empty column renders as nothing. A list is tried in order until one renders; a table
`{join = [...], sep = ", "}` joins the parts that render.

Cleaning is built in: spaces (and no-break spaces) trimmed, single-line fields collapsed to one
line, ZIPs that lost leading zeros restored ("6708" -> "06708", "601" -> "00601"), ZIP+4 cut to
five digits, "0" read as no ZIP, phones split ("a | b", "a or b", "x134" extensions, a bare " x"
dropped), PO boxes marked as postal addresses, bad coordinates reported and left for geocoding.
"""

from __future__ import annotations

import csv
import fnmatch
import functools
import hashlib
import io
import json
import re
import string
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from indexer.records import EXTENSION_FIELDS, HSDS_FIELDS, Problems, SourceRow

FORMAT = "flat"
MAPPINGS_DIR = Path(__file__).resolve().parent.parent / "mappings"

DEFAULT_NULLS = ("NA", "N/A", "#N/A", "NULL", "None", "nan", "http://", "https://", "-")
TABLES = ("organization", "service", "location", "address")
MULTILINE_FIELDS = {"description", "eligibility_description", "application_process",
                    "fees_description", "transportation"}
TOP_LEVEL_KEYS = {
    "source", "title", "licence", "attribution", "files", "format", "encoding",
    "detect_columns", "id_columns", "id_kind", "categories", "null_values", "bounds",
    "languages", "organization", "service", "location", "address", "phones", "schedules",
    "service_areas", "rules", "flags", "value_map", "extends", "notes",
}
RULE_KEYS = {"when", "contains", "unless", "filled", "empty", "skip", "categories", "note",
             "eligibility", "accessibility"}
PHONE_TYPES = {"text", "voice", "fax", "cell", "video", "pager", "textphone"}
ACCEPTED_CRS = {"urn:ogc:def:crs:OGC:1.3:CRS84", "urn:ogc:def:crs:OGC::CRS84", "EPSG:4326",
                "urn:ogc:def:crs:EPSG::4326"}
MAX_ENCODING_WARNINGS = 20

US_STATES = {
    "alabama": "AL", "alaska": "AK", "arizona": "AZ", "arkansas": "AR", "california": "CA",
    "colorado": "CO", "connecticut": "CT", "delaware": "DE", "district of columbia": "DC",
    "florida": "FL", "georgia": "GA", "hawaii": "HI", "idaho": "ID", "illinois": "IL",
    "indiana": "IN", "iowa": "IA", "kansas": "KS", "kentucky": "KY", "louisiana": "LA",
    "maine": "ME", "maryland": "MD", "massachusetts": "MA", "michigan": "MI", "minnesota": "MN",
    "mississippi": "MS", "missouri": "MO", "montana": "MT", "nebraska": "NE", "nevada": "NV",
    "new hampshire": "NH", "new jersey": "NJ", "new mexico": "NM", "new york": "NY",
    "north carolina": "NC", "north dakota": "ND", "ohio": "OH", "oklahoma": "OK",
    "oregon": "OR", "pennsylvania": "PA", "rhode island": "RI", "south carolina": "SC",
    "south dakota": "SD", "tennessee": "TN", "texas": "TX", "utah": "UT", "vermont": "VT",
    "virginia": "VA", "washington": "WA", "west virginia": "WV", "wisconsin": "WI",
    "wyoming": "WY", "puerto rico": "PR", "virgin islands": "VI", "guam": "GU",
    "american samoa": "AS", "northern mariana islands": "MP",
}
KEEP_UPPER = {"PO", "NE", "NW", "SE", "SW", "US", "USA", "VA", "HUD", "CHC", "FQHC", "HIV",
              "YMCA", "YWCA", "II", "III", "IV", "VI", "DC", "HA", "PHA", "LLC", "AME", "MD",
              "DBA", "CDC", "NYC", "RHA", "CHA", "HHS", "ACS"}
SMALL_WORDS = {"AND", "OF", "THE", "AT", "IN", "FOR", "ON", "TO"}
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")
_ORDINAL = re.compile(r"^\d+(ST|ND|RD|TH)$")
_INITIALS = re.compile(r"^([A-Z]\.)+[A-Z]?$")
_PO_BOX = re.compile(r"^\s*(P\.?\s*O\.?\s*)?BOX\s+\d|\bP\.?\s*O\.?\s*BOX\b", re.I)
_URL = re.compile(r"^(https?://)?([a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}(:\d+)?([/?#]\S*)?$",
                  re.I)
_PHONE = re.compile(
    r"(?<![\d])(?:\+?1[\s.-]*)?\(?\s*([2-9]\d{2})\s*\)?[\s.-]*(\d{3})[\s.-]*(\d{4})(?!\d)"
    r"(?:\s*(?:x|ext\.?|extension|#)\s*(\d+(?:\s*,\s*\d+)*))?"
    r"(?:\s*/\s*(\d{4})(?!\d))?",
    re.I,
)
_EMAIL = re.compile(r"^[\w.+-]+@([a-z0-9-]+\.)+[a-z]{2,}$", re.I)
_LANGUAGE_SPLIT = re.compile(r"\s*(?:,|;|/|\band\b)\s*", re.I)
_PUNCT_ONLY = set(string.punctuation + " ")


class MappingError(ValueError):
    """A mapping file is malformed (unknown key, bad template, unknown HSDS field)."""


# -- cell filters ---------------------------------------------------------------------------------

def title_case(value: str) -> str:
    """Title-case an ALL-CAPS value ("4300 BONIFACE PARKWAY" -> "4300 Boniface Parkway")."""
    if not value or any(c.islower() for c in value):
        return value

    def word(w: str) -> str:
        if "-" in w and len(w) > 1:
            return "-".join(word(p) for p in w.split("-"))
        core = w.strip(".,()")
        if core in KEEP_UPPER or _INITIALS.match(core):
            return w
        if _ORDINAL.match(w):
            return w.lower()
        if any(c.isdigit() for c in w):
            return w
        return w[:1] + w[1:].lower()

    words = [word(w) for w in value.split(" ")]
    return " ".join(w.lower() if i and w.upper() in SMALL_WORDS else w
                    for i, w in enumerate(words))


def state_code(value: str) -> str:
    """A US state or territory as its two-letter code when recognised, else unchanged."""
    if len(value) == 2 and value.isalpha():
        return value.upper()
    return US_STATES.get(" ".join(value.split()).lower(), value)


FILTERS: dict[str, Callable[[str], str]] = {
    "title": title_case,
    "state": state_code,
    "upper": str.upper,
    "lower": str.lower,
    "first_line": lambda v: v.splitlines()[0].strip() if v else v,
    "before_comma": lambda v: v.split(",")[0].strip(),
}


# -- templates ------------------------------------------------------------------------------------

class _Template:
    """Literal text with {column|filter} placeholders; empty when any placeholder is empty."""

    __slots__ = ("parts", "columns")

    def __init__(self, text: str) -> None:
        self.parts: list[str | tuple[str, tuple[Callable[[str], str], ...]]] = []
        self.columns: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            if m.start() > pos:
                self.parts.append(text[pos:m.start()])
            column, *names = m.group(1).split("|")
            column = column.strip()
            unknown = [n for n in names if n.strip() not in FILTERS]
            if unknown:
                raise MappingError(f"unknown filter {unknown[0]!r} in {text!r}")
            self.parts.append((column, tuple(FILTERS[n.strip()] for n in names)))
            self.columns.append(column)
            pos = m.end()
        if pos < len(text):
            self.parts.append(text[pos:])

    def render(self, get: Callable[[str], str]) -> str:
        """The text for one row."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = get(part[0])
            for f in part[1]:
                value = f(value) if value else value
            if not value:
                return ""
            out.append(value)
        return "".join(out)


class _First:
    """The first of several specs that renders."""

    __slots__ = ("options", "columns")

    def __init__(self, options: list[Any]) -> None:
        self.options = options
        self.columns = [c for o in options for c in o.columns]

    def render(self, get: Callable[[str], str]) -> str:
        """The first non-empty rendering."""
        for option in self.options:
            text = option.render(get)
            if text:
                return text
        return ""


class _Join:
    """The parts that render, joined with a separator."""

    __slots__ = ("parts", "sep", "columns")

    def __init__(self, parts: list[Any], sep: str) -> None:
        self.parts = parts
        self.sep = sep
        self.columns = [c for p in parts for c in p.columns]

    def render(self, get: Callable[[str], str]) -> str:
        """The non-empty parts joined."""
        return self.sep.join(t for t in (p.render(get) for p in self.parts) if t)


Spec = _Template | _First | _Join


def compile_spec(value: Any, where: str) -> Spec:
    """A template string, a list of fallbacks, or {join = [...], sep = "..."}."""
    if isinstance(value, str):
        return _Template(value)
    if isinstance(value, list) and value:
        return _First([compile_spec(v, where) for v in value])
    if isinstance(value, dict) and set(value) <= {"join", "sep"} and "join" in value:
        return _Join([compile_spec(v, where) for v in value["join"]], value.get("sep", " "))
    raise MappingError(f"{where}: expected a template, a list of templates or a join table")


# -- the mapping ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Conditions on a row's cells, and what to do when all of them hold."""

    when: dict[str, frozenset[str]]
    contains: dict[str, tuple[str, ...]]
    unless: dict[str, frozenset[str]]
    filled: tuple[str, ...]
    empty: tuple[str, ...]
    skip: str | None
    categories: tuple[str, ...]
    note: Spec | None
    eligibility: Spec | None
    accessibility: Spec | None

    @property
    def columns(self) -> list[str]:
        """Every column the rule reads."""
        cols = [*self.when, *self.contains, *self.unless, *self.filled, *self.empty]
        for spec in (self.note, self.eligibility, self.accessibility):
            if spec is not None:
                cols += spec.columns
        return cols

    def matches(self, get: Callable[[str], str]) -> bool:
        """True when every condition holds for the row."""
        for col, values in self.when.items():
            if get(col).casefold() not in values:
                return False
        for col, values in self.unless.items():
            if get(col).casefold() in values:
                return False
        for col, parts in self.contains.items():
            cell = get(col).casefold()
            if not any(p in cell for p in parts):
                return False
        return all(get(c) for c in self.filled) and not any(get(c) for c in self.empty)


@dataclass(frozen=True)
class Flag:
    """A yes/blank service column: its label in the description and its categories."""

    column: str
    label: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class FlatMapping:
    """One source's declared column mapping, compiled from its TOML file."""

    source: str
    title: str
    path: Path | None
    files: tuple[str, ...]
    format: str
    encoding: str
    detect_columns: tuple[str, ...]
    id_columns: tuple[str, ...]
    id_kind: str
    categories: tuple[str, ...]
    null_values: frozenset[str]
    bounds: tuple[float, float, float, float] | None
    fields: dict[str, dict[str, Spec]]
    organization_key: Spec | None
    phones: tuple[dict[str, Spec], ...]
    schedules: tuple[Spec, ...]
    service_areas: tuple[Spec, ...]
    languages: Spec | None
    rules: tuple[Rule, ...]
    flags: tuple[Flag, ...]
    flag_truthy: frozenset[str]
    flag_heading: str
    value_map: dict[str, dict[str, str]]
    licence: str = ""
    attribution: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def columns(self) -> list[str]:
        """Every source column the mapping reads, in first-use order."""
        cols: list[str] = list(self.id_columns)
        specs: list[Spec] = [s for t in self.fields.values() for s in t.values()]
        specs += [s for p in self.phones for s in p.values()]
        specs += [*self.schedules, *self.service_areas]
        for extra in (self.organization_key, self.languages):
            if extra is not None:
                specs.append(extra)
        for spec in specs:
            cols += spec.columns
        for rule in self.rules:
            cols += rule.columns
        cols += [f.column for f in self.flags]
        return list(dict.fromkeys(cols))

    def matches_name(self, name: str) -> bool:
        """True when the file name fits one of the mapping's globs."""
        return any(fnmatch.fnmatch(name.lower(), g.lower()) for g in self.files)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> FlatMapping:
        """Compile a mapping from its parsed TOML."""
        where = str(path or raw.get("source", "mapping"))
        unknown = set(raw) - TOP_LEVEL_KEYS
        if unknown:
            raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("source", "files"):
            if not raw.get(key):
                raise MappingError(f"{where}: {key!r} is required")
        fmt = raw.get("format", "csv")
        if fmt not in ("csv", "geojson"):
            raise MappingError(f"{where}: format must be csv or geojson, not {fmt!r}")
        id_kind = raw.get("id_kind", "column")
        if id_kind not in ("column", "natural"):
            raise MappingError(f"{where}: id_kind must be 'column' or 'natural'")
        fields: dict[str, dict[str, Spec]] = {}
        org_key = None
        for table in TABLES:
            fields[table] = {}
            for name, value in raw.get(table, {}).items():
                if table == "organization" and name == "key":
                    org_key = compile_spec(value, f"{where} [organization].key")
                    continue
                allowed = set(HSDS_FIELDS[table]) | set(EXTENSION_FIELDS.get(table, ()))
                if name not in allowed or name == "id" or name.endswith("_id"):
                    raise MappingError(f"{where}: [{table}] has no settable field {name!r}")
                fields[table][name] = compile_spec(value, f"{where} [{table}].{name}")
        phones = []
        for i, phone in enumerate(raw.get("phones", [])):
            bad = set(phone) - {"number", "type", "description"}
            if bad or "number" not in phone:
                raise MappingError(f"{where}: phones[{i}] needs number (and type, description)")
            if phone.get("type", "voice") not in PHONE_TYPES:
                raise MappingError(f"{where}: phones[{i}] type must be one of {PHONE_TYPES}")
            phones.append({k: compile_spec(v, f"{where} phones[{i}].{k}")
                           for k, v in phone.items()})
        rules = tuple(_compile_rule(r, f"{where} rules[{i}]")
                      for i, r in enumerate(raw.get("rules", [])))
        flags_raw = raw.get("flags", {})
        flags = tuple(
            Flag(col, spec.get("label", col.replace("_", " ").lower()),
                 tuple(spec.get("categories", ())))
            for col, spec in flags_raw.get("columns", {}).items())
        bounds = raw.get("bounds")
        if bounds is not None and len(bounds) != 4:
            raise MappingError(f"{where}: bounds is [min_lon, min_lat, max_lon, max_lat]")
        return cls(
            source=raw["source"],
            title=raw.get("title", raw["source"]),
            path=path,
            files=tuple(raw["files"]),
            format=fmt,
            encoding=raw.get("encoding", "utf-8"),
            detect_columns=tuple(raw.get("detect_columns", ())),
            id_columns=tuple(raw.get("id_columns", ())),
            id_kind=id_kind,
            categories=tuple(raw.get("categories", ())),
            null_values=frozenset(v.casefold() for v in raw.get("null_values", DEFAULT_NULLS)),
            bounds=tuple(float(b) for b in bounds) if bounds else None,  # type: ignore[arg-type]
            fields=fields,
            organization_key=org_key,
            phones=tuple(phones),
            schedules=tuple(compile_spec(s["description"], f"{where} schedules")
                            for s in raw.get("schedules", [])),
            service_areas=tuple(compile_spec(s["description"], f"{where} service_areas")
                                for s in raw.get("service_areas", [])),
            languages=compile_spec(raw["languages"], where) if raw.get("languages") else None,
            rules=rules,
            flags=flags,
            flag_truthy=frozenset(v.casefold() for v in flags_raw.get("truthy", ["yes"])),
            flag_heading=flags_raw.get("heading", "Services offered"),
            value_map={col: {k.casefold(): v for k, v in table.items()}
                       for col, table in raw.get("value_map", {}).items()},
            licence=raw.get("licence", ""),
            attribution=raw.get("attribution", ""),
            raw=raw,
        )


def _compile_rule(raw: dict[str, Any], where: str) -> Rule:
    """A rule from its TOML table."""
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")

    def values(table: dict[str, Any]) -> dict[str, frozenset[str]]:
        return {c: frozenset(v.casefold() for v in ([vs] if isinstance(vs, str) else vs))
                for c, vs in table.items()}

    def spec(key: str) -> Spec | None:
        return compile_spec(raw[key], f"{where}.{key}") if key in raw else None

    return Rule(
        when=values(raw.get("when", {})),
        contains={c: tuple(v.casefold() for v in ([vs] if isinstance(vs, str) else vs))
                  for c, vs in raw.get("contains", {}).items()},
        unless=values(raw.get("unless", {})),
        filled=tuple(raw.get("filled", ())),
        empty=tuple(raw.get("empty", ())),
        skip=raw.get("skip"),
        categories=tuple(raw.get("categories", ())),
        note=spec("note"),
        eligibility=spec("eligibility"),
        accessibility=spec("accessibility"),
    )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`base` with `over` on top: tables merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@functools.lru_cache(maxsize=4)
def load_mappings(directory: Path = MAPPINGS_DIR) -> dict[str, FlatMapping]:
    """Every mapping in `directory`, by source name (`extends` resolved)."""
    raws: dict[str, tuple[dict[str, Any], Path]] = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
        name = raw.get("source") or path.stem
        if name in raws:
            raise MappingError(f"{path}: source {name!r} is also declared in {raws[name][1]}")
        raws[name] = (raw, path)

    def resolved(name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
        raw, path = raws[name]
        parent = raw.get("extends")
        if not parent:
            return raw
        if parent not in raws or parent in seen:
            raise MappingError(f"{path}: extends unknown or circular mapping {parent!r}")
        merged = _merge(resolved(parent, (*seen, name)), raw)
        merged.pop("extends", None)
        return merged

    return {name: FlatMapping.from_dict(resolved(name), path)
            for name, (_, path) in raws.items()}


def get_mapping(source: str) -> FlatMapping:
    """The mapping for a source name (KeyError when there is none)."""
    mappings = load_mappings()
    if source not in mappings:
        raise KeyError(f"no flat-list mapping named {source!r}; known: {sorted(mappings)}")
    return mappings[source]


# -- detection ------------------------------------------------------------------------------------

def _header(path: Path, fmt: str) -> list[str] | None:
    """A CSV file's header, or the property names of a GeoJSON file's first feature."""
    try:
        if fmt == "geojson":
            data = json.loads(path.read_bytes().decode("utf-8-sig"))
            features = data.get("features") if isinstance(data, dict) else None
            if not features:
                return None
            return [str(k).strip() for k in (features[0].get("properties") or {})]
        with path.open("rb") as fh:
            text = fh.read(65536).decode("utf-8-sig", errors="replace")
        first = next(csv.reader(io.StringIO(text, newline="")), None)
        return [c.strip() for c in first] if first else None
    except (OSError, ValueError, csv.Error, AttributeError):
        return None


def detect(path: Path) -> FlatMapping | None:
    """The mapping whose header columns (and, to break ties, file-name glob) fit the file."""
    path = Path(path)
    if not path.is_file():
        return None
    suffix = path.suffix.lower()
    fmt = "geojson" if suffix in (".geojson", ".json") else "csv"
    if fmt == "csv" and suffix not in (".csv", ".txt"):
        return None
    header = _header(path, fmt)
    if not header:
        return None
    columns = set(header)
    best: tuple[tuple[bool, int], FlatMapping] | None = None
    tie = False
    for mapping in load_mappings().values():
        if mapping.format != fmt or not mapping.detect_columns:
            continue
        if not set(mapping.detect_columns) <= columns:
            continue
        score = (mapping.matches_name(path.name), len(mapping.detect_columns))
        if best is None or score > best[0]:
            best, tie = (score, mapping), False
        elif score == best[0]:
            tie = True
    if best is None or tie:
        return None
    return best[1]


# -- cleaning helpers -----------------------------------------------------------------------------

def clean_zip(value: str) -> tuple[str, bool, str | None]:
    """(five-digit ZIP or "", restored leading zeros?, why it was rejected or None)."""
    v = value.strip()
    if not v or v.strip("0") == "":
        return "", False, None
    m = re.fullmatch(r"(\d{3,9})(?:\s*-\s*(\d{4}))?", v)
    if not m:
        return "", False, f"not a US ZIP code: {value!r}"
    digits, plus4 = m.group(1), m.group(2)
    if plus4 is None and len(digits) in (8, 9):  # ZIP+4 written without the dash
        digits = digits.zfill(9)[:5]
    if len(digits) == 5:
        return digits, False, None
    if len(digits) in (3, 4) and not digits.startswith("0"):
        return digits.zfill(5), True, None
    return "", False, f"not a US ZIP code: {value!r}"


@dataclass(frozen=True)
class Phone:
    """One number parsed from a phone cell."""

    number: str
    extension: str = ""
    note: str = ""


def parse_phones(value: str) -> tuple[list[Phone], str | None]:
    """Every North American number in a cell, and a warning when the cell held something else."""
    text = value.strip()
    if not text:
        return [], None
    phones: list[Phone] = []
    for m in _PHONE.finditer(text):
        area, exchange, line, ext, alt = m.groups()
        extension, note = "", ""
        if ext:
            exts = [e.strip() for e in ext.split(",")]
            extension = exts[0]
            if len(exts) > 1:
                note = "Extensions " + ", ".join(exts)
        phones.append(Phone(f"{area}-{exchange}-{line}", extension, note))
        if alt:
            phones.append(Phone(f"{area}-{exchange}-{alt}"))
    if phones:
        return phones, None
    if re.fullmatch(r"[2-9]11", text):
        return [Phone(text)], None  # 211, 311, ... dialling codes
    if text.startswith("+") and sum(c.isdigit() for c in text) >= 7:
        return [Phone(text)], f"not a North American number; kept as given: {text!r}"
    return [], f"not a phone number: {text!r}; left out"


def clean_url(value: str) -> tuple[str, str | None]:
    """(URL with a scheme, or "", why it was dropped)."""
    v = value.strip().replace("\\", "/")
    if not v:
        return "", None
    if not _URL.match(v):
        return "", f"not a web address: {value!r}"
    if not v.lower().startswith(("http://", "https://")):
        v = "http://" + v
    return v, None


def email_in_url(value: str) -> str:
    """The email address a website cell holds instead of a URL ("http://a@b.org"), or ""."""
    v = re.sub(r"^https?://", "", value.strip(), flags=re.I)
    return v if _EMAIL.match(v) else ""


def _stable_hash(values: Iterable[str]) -> str:
    """A short id from natural-key values, ignoring case and spacing."""
    key = "\x1f".join(" ".join(v.casefold().split()) for v in values)
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


# -- reading --------------------------------------------------------------------------------------

@dataclass
class FlatStats:
    """What one `read` did with the file's rows (rows skipped by filters are not problems)."""

    rows: int = 0            # data rows (CSV records or GeoJSON features), blank lines excluded
    loaded: int = 0          # rows that became a service
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows, from mapping rules
    duplicates: int = 0      # exact repeats of an earlier row, left out
    bad: int = 0             # rows left out because of an error (no name, truncated)
    blank: int = 0           # rows with nothing in any mapped column
    with_coordinates: int = 0
    bad_coordinates: int = 0
    zip_restored: int = 0    # ZIPs that had lost leading zeros
    zip_cut: int = 0         # ZIP+4 cut to five digits
    zip_rejected: int = 0    # not a ZIP; left empty
    phones: int = 0
    organizations: int = 0

    @property
    def skipped_total(self) -> int:
        """Rows left out by the mapping's filters."""
        return sum(self.skipped.values())


@dataclass
class _Record:
    """One raw row: cells by column, where it was, and which cells came from Latin-1 bytes."""

    cells: dict[str, str]
    line: int | None
    path: str | None = None
    latin1: bool = False
    short: int | None = None     # fields present when fewer than the header's
    truncated: bool = False


def read(path: Path, problems: Problems, *, mapping: FlatMapping | str | None = None,
         stats: FlatStats | None = None) -> Iterator[SourceRow]:
    """HSDS rows for every kept row of a flat file, read through its mapping."""
    path = Path(path)
    label = str(path)
    if isinstance(mapping, str):
        mapping = get_mapping(mapping)
    if mapping is None:
        mapping = detect(path)
        if mapping is None:
            problems.error(label, None, None, "no flat-list mapping matches this file")
            return
    reader = _Reader(mapping, label, problems, stats if stats is not None else FlatStats())
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.error(label, None, None, f"cannot read file: {exc}")
        return
    records = reader.geojson(data) if mapping.format == "geojson" else reader.csv(data)
    for record in records:
        yield from reader.rows(record)


class _Reader:
    """Turns one file's raw records into SourceRows for one mapping."""

    def __init__(self, mapping: FlatMapping, label: str, problems: Problems,
                 stats: FlatStats) -> None:
        self.m = mapping
        self.file = label
        self.problems = problems
        self.stats = stats
        self.columns = mapping.columns
        self.missing: set[str] = set()
        self.seen: dict[str, tuple[int | None, tuple[str, ...]]] = {}
        self.orgs: set[str] = set()
        self.id_columns = mapping.id_columns
        self.natural = mapping.id_kind == "natural"

    # -- file formats -------------------------------------------------------------------------
    def _decode(self, data: bytes) -> tuple[str, set[int]]:
        """The text, and the (1-based) lines that were not UTF-8 and were read as Latin-1."""
        encoding = self.m.encoding.lower().replace("_", "-")
        if encoding not in ("utf-8", "utf8", "utf-8-sig"):
            return data.decode(encoding), set()
        try:
            return data.decode("utf-8-sig"), set()
        except UnicodeDecodeError:
            pass
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        lines, bad = [], set()
        for number, raw in enumerate(data.splitlines(keepends=True), start=1):
            try:
                lines.append(raw.decode("utf-8"))
            except UnicodeDecodeError:
                bad.add(number)
                try:
                    lines.append(raw.decode("cp1252"))
                except UnicodeDecodeError:
                    lines.append(raw.decode("latin-1"))
        return "".join(lines), bad

    def csv(self, data: bytes) -> Iterator[_Record]:
        """Records of a CSV file, with their first line numbers."""
        text, latin1 = self._decode(data)
        if len(latin1) > MAX_ENCODING_WARNINGS:
            self.problems.warning(self.file, min(latin1), None,
                                  f"{len(latin1)} lines are not valid UTF-8; they were read as "
                                  "Latin-1")
            latin1 = set()  # one warning for the file, not one per row
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            self.problems.error(self.file, None, None, "empty file")
            return
        except csv.Error as exc:
            self.problems.error(self.file, 1, None, f"unreadable header: {exc}")
            return
        header = [h.replace("\ufeff", "").strip() for h in header]
        self._check_columns(header)
        width = len(header)
        ends_with_newline = text.endswith(("\n", "\r"))
        pending: tuple[list[str], int, int] | None = None  # one record of look-ahead
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                self.problems.error(self.file, start, None, f"unreadable row: {exc}")
                continue
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if pending is not None:
                yield self._csv_record(header, width, *pending, last=False, latin1=latin1)
            pending = (row, start, reader.line_num)
        if pending is not None:
            row = pending[0]
            cut = not ends_with_newline or (row and row[-1].endswith(("\n", "\r")))
            yield self._csv_record(header, width, *pending, last=bool(cut), latin1=latin1)

    def _csv_record(self, header: list[str], width: int, row: list[str], start: int, end: int,
                    *, last: bool, latin1: set[int]) -> _Record:
        """A record from one parsed CSV row (short and long rows noted)."""
        cells = dict(zip(header, row, strict=False))
        record = _Record(cells, start)
        if latin1 and any(n in latin1 for n in range(start, end + 1)):
            record.latin1 = True
        if len(row) < width:
            record.short = len(row)
            record.truncated = last
            for col in header[len(row):]:
                cells[col] = ""
        elif len(row) > width and any(c.strip() for c in row[width:]):
            self.problems.warning(self.file, start, None,
                                  f"{len(row)} fields where the header has {width}; "
                                  "the extra fields were ignored")
        return record

    def geojson(self, data: bytes) -> Iterator[_Record]:
        """Records of a GeoJSON FeatureCollection: properties plus Point coordinates."""
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (UnicodeDecodeError, ValueError) as exc:
            self.problems.error(self.file, getattr(exc, "lineno", None), None,
                                f"not valid GeoJSON: {exc}")
            return
        features = doc.get("features") if isinstance(doc, dict) else None
        if not isinstance(features, list):
            self.problems.error(self.file, None, None, "not a GeoJSON FeatureCollection")
            return
        crs = ((doc.get("crs") or {}).get("properties") or {}).get("name")
        use_geometry = True
        if crs and crs not in ACCEPTED_CRS:
            self.problems.error(self.file, None, "crs", f"unsupported CRS {crs!r}; point "
                                "geometry ignored (use longitude/latitude properties)")
            use_geometry = False
        header = list(dict.fromkeys(
            k for f in features[:50] if isinstance(f, dict)
            for k in (f.get("properties") or {})))
        self._check_columns([*header, "geometry.longitude", "geometry.latitude"])
        for i, feature in enumerate(features):
            props = feature.get("properties") if isinstance(feature, dict) else None
            cells = {str(k).strip(): _cell(v) for k, v in (props or {}).items()}
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            if use_geometry and isinstance(geometry, dict):
                coords = geometry.get("coordinates")
                if geometry.get("type") == "Point" and isinstance(coords, list) and len(
                        coords) >= 2:
                    cells["geometry.longitude"] = _cell(coords[0])
                    cells["geometry.latitude"] = _cell(coords[1])
                else:
                    self.problems.warning(self.file, None, "geometry",
                                          f"features[{i}]: geometry is not a Point; ignored")
            yield _Record(cells, None, path=f"features[{i}]")

    def _check_columns(self, header: list[str]) -> None:
        """One warning per mapped column the file does not have."""
        present = set(header)
        for col in self.columns:
            if col not in present:
                self.missing.add(col)
                self.problems.warning(self.file, 1 if self.m.format == "csv" else None, col,
                                      f"column {col!r} is not in the file; "
                                      "what the mapping takes from it is left empty")

    # -- one record ---------------------------------------------------------------------------
    def _where(self, record: _Record) -> str:
        """The feature path prefix for problems in formats without lines."""
        return f"{record.path}: " if record.path else ""

    def _error(self, record: _Record, field_: str | None, why: str, **kw: Any) -> None:
        """Report an error at the record."""
        self.problems.error(self.file, record.line, field_, self._where(record) + why, **kw)

    def _warning(self, record: _Record, field_: str | None, why: str, **kw: Any) -> None:
        """Report a warning at the record."""
        self.problems.warning(self.file, record.line, field_, self._where(record) + why, **kw)

    def _getter(self, record: _Record) -> Callable[[str], str]:
        """Cell lookup for one record: trimmed, nulls emptied, value_map applied, memoised."""
        cells = record.cells
        nulls = self.m.null_values
        value_map = self.m.value_map
        cache: dict[str, str] = {}

        def get(col: str) -> str:
            if col in cache:
                return cache[col]
            value = cells.get(col) or ""
            value = value.strip().strip("\ufeff\u200b").strip()
            if value and (value.casefold() in nulls or set(value) <= _PUNCT_ONLY):
                value = ""
            mapped = value_map.get(col)
            if mapped is not None and value.casefold() in mapped:
                value = mapped[value.casefold()]
            cache[col] = value
            return value

        return get

    def _render(self, spec: Spec, get: Callable[[str], str], single_line: bool = True) -> str:
        """A spec's text with spaces collapsed (keeping line breaks in multi-line fields)."""
        text = spec.render(get)
        if single_line:
            return " ".join(text.split())
        return "\n".join(" ".join(line.split()) for line in text.strip().splitlines()).strip()

    def _row_id(self, record: _Record, get: Callable[[str], str]) -> str | None:
        """The record's id: its id column(s), a natural-key hash, or a name+address hash."""
        cols = [c for c in self.id_columns if c not in self.missing]
        values = [get(c) for c in cols]
        if cols and not self.natural and all(values):
            return "/".join(values)
        if cols and self.natural and any(values):
            return _stable_hash(values)
        if cols and not self.natural:
            self._warning(record, cols[0], "no record id; an id was made from the name and "
                          "address")
        fallback = []
        for table, names in (("service", ("name",)), ("organization", ("name",)),
                             ("address", ("address_1", "city", "state_province",
                                          "postal_code"))):
            for name in names:
                spec = self.m.fields[table].get(name)
                if spec is not None:
                    fallback.append(spec.render(get))
        if any(fallback):
            return _stable_hash(fallback)
        return None

    def rows(self, record: _Record) -> Iterator[SourceRow]:
        """The HSDS rows for one record (none when it is filtered out or unusable)."""
        m, stats = self.m, self.stats
        stats.rows += 1
        get = self._getter(record)
        if record.truncated:
            stats.bad += 1
            header = list(record.cells)
            self._error(record, _first_missing(record),
                        f"truncated last line: it ends in column {header[record.short - 1]!r} "
                        f"({record.short} of {len(header)} fields); row left out")
            return
        if record.short is not None:
            self._warning(record, _first_missing(record), f"only {record.short} field(s) where "
                          "the header has more; the missing fields were read as empty")
        if not any(get(c) for c in self.columns if c not in self.missing):
            stats.blank += 1
            return

        categories: list[str] = list(m.categories)
        notes: list[str] = []
        eligibility: list[str] = []
        accessibility: list[str] = []
        for rule in m.rules:
            if not rule.matches(get):
                continue
            if rule.skip:
                stats.skipped[rule.skip] += 1
                return
            categories += rule.categories
            for spec, out in ((rule.note, notes), (rule.eligibility, eligibility),
                              (rule.accessibility, accessibility)):
                if spec is not None:
                    text = self._render(spec, get, single_line=False)
                    if text:
                        out.append(text)
        labels = []
        for flag in m.flags:
            if get(flag.column).casefold() in m.flag_truthy:
                labels.append(flag.label)
                categories += flag.categories
        if labels:
            notes.append(f"{m.flag_heading}: {', '.join(labels)}.")
        if record.latin1:
            bad = [c for c in self.columns if any(ord(ch) > 127 for ch in get(c))]
            self._warning(record, bad[0] if bad else None,
                          "bytes that are not UTF-8 were read as Latin-1"
                          + (f" in {', '.join(bad)}" if bad else ""))

        rid = self._row_id(record, get)
        if rid is None:
            rid = f"line-{record.line}" if record.line else (record.path or "row")
            self._warning(record, None, "nothing to make a stable id from; the row's position "
                          "was used")
        values = {t: {name: self._render(spec, get, name not in MULTILINE_FIELDS)
                      for name, spec in m.fields[t].items()} for t in TABLES}
        org, svc, loc, adr = (values[t] for t in TABLES)
        if not svc.get("name"):
            svc["name"] = org.get("name", "")
        if not org.get("name"):
            org["name"] = svc.get("name", "")
        if not svc["name"]:
            stats.bad += 1
            spec = m.fields["service"].get("name") or m.fields["organization"].get("name")
            self._error(record, spec.columns[0] if spec and spec.columns else "name",
                        "no name; row left out", table="service", source_id=rid)
            return

        fingerprint = tuple(get(c) for c in self.columns)
        if rid in self.seen:
            first_line, first_print = self.seen[rid]
            where = f"line {first_line}" if first_line else "an earlier feature"
            if first_print == fingerprint:
                stats.duplicates += 1
                self._warning(record, None, f"exact repeat of {where}; left out",
                              table="service", source_id=rid)
                return
            n = 2
            while f"{rid}~{n}" in self.seen:
                n += 1
            self._warning(record, self.id_columns[0] if self.id_columns else None,
                          f"id {rid!r} is also used on {where}; this row was given "
                          f"{rid}~{n}", table="service", source_id=rid)
            rid = f"{rid}~{n}"
        self.seen[rid] = (record.line, fingerprint)
        urls: dict[str, str] = {}

        # organization
        org_id = rid
        if m.organization_key is not None:
            key = " ".join(m.organization_key.render(get).casefold().split())
            org_id = key or rid
        if org_id not in self.orgs:
            self.orgs.add(org_id)
            stats.organizations += 1
            self._url(record, org, "website", m.fields["organization"], rid, urls)
            yield self._row("organization", {"id": org_id, **_filled(org)}, record)

        # service
        self._url(record, svc, "url", m.fields["service"], rid, urls)
        description = "\n\n".join(t for t in [svc.get("description", ""), " ".join(notes)] if t)
        svc["description"] = description
        svc["eligibility_description"] = "; ".join(
            t for t in [svc.get("eligibility_description", ""), *eligibility] if t)
        if not svc.get("status"):
            svc["status"] = "active"
        service = {"id": rid, "organization_id": org_id, **_filled(svc)}
        if categories:
            service["categories"] = list(dict.fromkeys(categories))
        yield self._row("service", service, record)

        # location and address
        if not loc.get("location_type"):
            loc["location_type"] = "physical"
        if not loc.get("name"):
            loc["name"] = svc["name"]
        lat, lon = self._coordinates(record, loc, rid)
        location = {"id": rid, "organization_id": org_id, **_filled(loc)}
        location.pop("latitude", None)
        location.pop("longitude", None)
        if lat is not None and lon is not None:
            location["latitude"], location["longitude"] = lat, lon
            stats.with_coordinates += 1
        yield self._row("location", location, record)
        self._postal_code(record, adr, rid)
        if adr.get("state_province"):
            adr["state_province"] = state_code(adr["state_province"])
        if any(adr.get(k) for k in ("address_1", "city", "postal_code")):
            adr.setdefault("country", "US")
            if not adr.get("address_type"):
                adr["address_type"] = "postal" if _PO_BOX.search(
                    adr.get("address_1", "")) else "physical"
            yield self._row("address", {"id": rid, "location_id": rid, **_filled(adr)}, record)
        yield self._row("service_at_location",
                        {"id": rid, "service_id": rid, "location_id": rid}, record)

        # phones
        seen_numbers: set[tuple[str, str]] = set()
        n = 0
        for spec in m.phones:
            cell = self._render(spec["number"], get)
            phones, why = parse_phones(cell)
            if why:
                col = spec["number"].columns[0] if spec["number"].columns else "phone"
                self._warning(record, col, why, table="phone", source_id=rid)
            for phone in phones:
                if (phone.number, phone.extension) in seen_numbers:
                    continue
                seen_numbers.add((phone.number, phone.extension))
                n += 1
                stats.phones += 1
                row = {"id": f"{rid}#phone{n}", "service_id": rid, "location_id": rid,
                       "number": phone.number, "type": "voice"}
                if phone.extension:
                    row["extension"] = phone.extension
                if "type" in spec:
                    row["type"] = self._render(spec["type"], get) or "voice"
                text = " ".join(t for t in [
                    self._render(spec["description"], get) if "description" in spec else "",
                    phone.note] if t)
                if text:
                    row["description"] = text
                yield self._row("phone", row, record)

        # free text the pipeline parses
        for i, spec in enumerate(m.schedules, start=1):
            text = self._render(spec, get, single_line=False)
            if text:
                yield self._row("schedule", {"id": f"{rid}#schedule{i}", "service_id": rid,
                                             "description": text}, record)
        for i, spec in enumerate(m.service_areas, start=1):
            text = self._render(spec, get, single_line=False)
            if text:
                yield self._row("service_area", {"id": f"{rid}#area{i}", "service_id": rid,
                                                 "description": text}, record)
        if m.languages is not None:
            for i, name in enumerate(_languages(self._render(m.languages, get)), start=1):
                yield self._row("language", {"id": f"{rid}#language{i}", "service_id": rid,
                                             "name": name}, record)
        for i, text in enumerate(dict.fromkeys(accessibility), start=1):
            yield self._row("accessibility", {"id": f"{rid}#access{i}", "location_id": rid,
                                              "description": text}, record)
        stats.loaded += 1

    def _row(self, table: str, values: dict[str, Any], record: _Record) -> SourceRow:
        """A SourceRow located at the record."""
        return SourceRow(table, values, self.file, record.line, record.path)

    def _url(self, record: _Record, values: dict[str, str], name: str,
             specs: dict[str, Spec], rid: str, seen: dict[str, str]) -> None:
        """Check a web address; one warning per row and cell; an email moves to `email`."""
        raw = values.get(name)
        if not raw:
            return
        email = email_in_url(raw)
        if raw not in seen:
            url, why = clean_url(raw)
            seen[raw] = url
            if why:
                spec = specs[name]
                col = spec.columns[0] if spec.columns else name
                self._warning(record, col, f"an email address, not a web address: {raw!r}; "
                              "used as the email" if email else why + "; left out",
                              source_id=rid)
        values[name] = seen[raw]
        if email and not values.get("email"):
            values["email"] = email

    def _coordinates(self, record: _Record, loc: dict[str, str],
                     rid: str) -> tuple[float | None, float | None]:
        """Checked (latitude, longitude), or (None, None) with an error when unusable."""
        lat_text, lon_text = loc.get("latitude", ""), loc.get("longitude", "")
        if not lat_text and not lon_text:
            return None, None
        specs = self.m.fields["location"]
        lat_col = specs["latitude"].columns[0] if specs["latitude"].columns else "latitude"
        lon_col = specs["longitude"].columns[0] if specs["longitude"].columns else "longitude"
        try:
            lat = float(lat_text) if lat_text else None
        except ValueError:
            lat = None
            self._bad_coordinates(record, lat_col, f"latitude is not a number: {lat_text!r}", rid)
            return None, None
        try:
            lon = float(lon_text) if lon_text else None
        except ValueError:
            self._bad_coordinates(record, lon_col, f"longitude is not a number: {lon_text!r}",
                                  rid)
            return None, None
        if lat is None or lon is None:
            self._bad_coordinates(record, lat_col if lat is None else lon_col,
                                  "only one coordinate given", rid)
            return None, None
        if lat != lat or lon != lon or not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self._bad_coordinates(record, lat_col, f"coordinates out of range ({lat}, {lon})",
                                  rid)
            return None, None
        if lat == 0 and lon == 0:
            self._bad_coordinates(record, lat_col, "coordinates (0, 0) are a placeholder", rid)
            return None, None
        b = self.m.bounds
        if b is not None and not (b[0] <= lon <= b[2] and b[1] <= lat <= b[3]):
            self._bad_coordinates(record, lat_col, f"coordinates ({lat}, {lon}) are outside "
                                  f"the source's area {list(b)}", rid)
            return None, None
        return lat, lon

    def _bad_coordinates(self, record: _Record, col: str, why: str, rid: str) -> None:
        """Report coordinates that were dropped."""
        self.stats.bad_coordinates += 1
        self._error(record, col, why + "; kept without coordinates (to be geocoded from the "
                    "address)", table="location", source_id=rid)

    def _postal_code(self, record: _Record, adr: dict[str, str], rid: str) -> None:
        """Clean the address's ZIP in place, counting restorations and reporting rejects."""
        raw = adr.get("postal_code", "")
        if not raw:
            return
        code, restored, why = clean_zip(raw)
        spec = self.m.fields["address"]["postal_code"]
        col = spec.columns[0] if spec.columns else "postal_code"
        if why:
            self.stats.zip_rejected += 1
            self._error(record, col, why + "; left empty", table="address", source_id=rid)
        elif restored:
            self.stats.zip_restored += 1
        elif len(re.sub(r"\D", "", raw)) > 5:
            self.stats.zip_cut += 1
        adr["postal_code"] = code


def _cell(value: Any) -> str:
    """A GeoJSON property value as cell text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _filled(values: dict[str, Any]) -> dict[str, Any]:
    """The values that are not empty."""
    return {k: v for k, v in values.items() if v not in ("", None)}


def _first_missing(record: _Record) -> str | None:
    """The first column a short row does not reach."""
    header = list(record.cells)
    if record.short is None or record.short >= len(header):
        return None
    return header[record.short]


def _languages(text: str) -> list[str]:
    """Language names from a list such as "French, Haitian Creole and Spanish only"."""
    names = []
    for part in _LANGUAGE_SPLIT.split(text):
        name = re.sub(r"\bonly\b", "", part, flags=re.I).strip(" .")
        if name and name.casefold() not in {n.casefold() for n in names}:
            names.append(name)
    return names
