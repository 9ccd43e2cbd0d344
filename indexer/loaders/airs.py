"""AIRS / iCarol flat 211 exports: one CSV row per Agency, Site, Program or ProgramAtSite record.

Every row has a record number (`ResourceAgencyNum`), a level (`TaxonomyLevelName`) and, below
the agency, its agency's number (`ParentAgencyNum`; "0" on agencies). A ProgramAtSite row joins
a program and a site through `ConnectsToProgramNum` and `ConnectsToSiteNum`. Real exports use
the levels very differently: the 2014 DC 211 export is almost only Agency -> Program, each
program with its own address; the San Francisco one is almost only Agency -> Site, where the
site rows carry what a service would (hours, languages, eligibility, status, exclusion).

How the records are assembled (ids are the source's record numbers; the pipeline namespaces
them per table, so a number may be both an organization and a service):

* Agency -> organization (with its phones, tax status, funding). A site or program whose agency
  row is missing gets an organization named from its `ParentAgency` column, with a warning.
* Site -> location (address from Physical*, mailing address, coordinates, phones, access).
* Program -> service. Its locations: the sites its ProgramAtSite rows connect it to; else, if
  it has a street or coordinates, the location of its agency (a site, the agency's own address
  or another program's) with the same street and ZIP, or a location of its own; else, when its
  agency has exactly one location of its own (a site or its address), that one; else, when it
  has a ZIP (a private address keeps only that), a location of its own placed by the ZIP.
* ProgramAtSite -> service_at_location (with its own hours and phones). One naming a program
  or site that is not in the export is an error (a missing site is replaced by the row's own
  address when it has one).
* A Site that no program is placed at is the agency's own service at that site (how 211s that
  do not enter programs record their services): a service with the site's number, named and
  described after its agency, with the site's hours, eligibility, languages, application
  process, status and exclusion, the agency's taxonomy, and the agency's phones when the site
  has none of its own.
* An agency with neither sites nor programs (common in 211 exports) is an organization and,
  when its row has a description, taxonomy or address (a ZIP is enough), also a service (the
  agency's number) at a location from its own address, so that it can be found.
* An agency's own street address is a location of the organization unless one of its sites is
  at the same street and ZIP; its office hours and languages are that location's.
* Rows of one agency at the same street and ZIP (see `street_key`; a "Confidential" street
  matches nothing) share one location, whose coordinates are the first ones given by the rows
  sharing it (sites, then the agency, then programs, each in file order). Sites never merge.
* Phones: an agency's belong to its organization (and to its own service, if it has one), a
  site's to its location, a program's to its service, a program-at-site's to that link.

Flags: `ExcludeFromWebsite` = Yes on the record or its agency -> `is_hidden`; `AgencyStatus`
"Inactive" on the record or its agency -> status "inactive" (kept); "Active, but do not refer"
-> `is_referable` False; `PhysicalAddressIsPrivate` = Yes, or a street that only says
"Confidential" (DC's way: it has no such column), -> location `is_confidential` (the pipeline
then blanks the street and coarsens the point). Private phones (`Phone…IsPrivate`) are never
imported.

Free text is kept as text for the pipeline to parse: `HoursOfOperation` (else the `Hours`
column when it has times) is a text-only schedule row; `Eligibility`, `FeeStructureSource`,
`ApplicationProcess`, `DocumentsRequired`, `CoverageArea` go to their HSDS fields and rows.
`LanguagesOffered` becomes one language row per language named (ISO 639-1 codes from a small
table; the original text in `note`). `TaxonomyCodes` ("BD-1800.2000; RX-8450 * YS-2000.9500":
`;` between terms, `*` joining a term and its target) become AIRS taxonomy_term rows and
attribute rows linking the service; a term's name is the source's own `TaxonomyTerm` text for
that position when the columns line up, else the code. SF's `Tax` (one term name per agency)
is linked the same way. AIRS term names are licensed: they are only ever taken from the file.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from indexer.loaders.hsds3 import decode
from indexer.records import Problems, SourceRow

FORMAT = "airs"

LEVELS = ("Agency", "Site", "Program", "ProgramAtSite")
_LEVEL_NAMES = {level.lower(): level for level in LEVELS}  # "Program at Site" -> ProgramAtSite
ID_COLUMN = "ResourceAgencyNum"
LEVEL_COLUMN = "TaxonomyLevelName"
TAXONOMY_ID = "airs"
TAXONOMY_NAME = "AIRS/211 LA County Taxonomy"

_YES = {"yes", "y", "true", "1", "-1"}
_UNKNOWN = {"", "-1", "none or unknown", "n/a", "na", "none"}
_DC_QUADRANT = re.compile(r"^(?:NW|NE|SW|SE)$")  # DC exports put the quadrant in access fields
_WITHHELD = re.compile(r"^\W*(?:confidential|undisclosed)(?: (?:address|location))?\W*$",
                       re.IGNORECASE)
_AIRS_CODE = re.compile(r"^[A-Z]{1,2}(?:-\d{4}(?:\.\d{4}(?:-\d{3}(?:\.\d{2})?)?)?)?$")
_EXTENSION = re.compile(r"\s*(?:,\s*)?(?:x|ext\.?|extension)\s*(\d{1,6})\s*$", re.IGNORECASE)
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(?:br\s*/?|/p|p)\s*>", re.IGNORECASE)
_COUNTRIES = {"united states": "US", "usa": "US", "us": "US", "united states of america": "US"}

# Numbered phones, then the named phone columns: (number column, label, type).
_NAMED_PHONES = (
    ("PhoneFax", "Fax", "fax"),
    ("PhoneTTY", "TTY", "textphone"),
    ("PhoneTollFree", "Toll free", "voice"),
    ("PhoneNumberHotline", "Hotline", "voice"),
    ("PhoneNumberBusinessLine", "Business line", "voice"),
    ("PhoneNumberOutOfArea", "Out of area", "voice"),
    ("PhoneNumberAfterHours", "After hours", "voice"),
)

# Language names as 211s write them -> (name, ISO 639-1 code). Varieties take their
# macrolanguage's code (Cantonese -> zh); American Sign Language has no ISO 639-1 code and
# takes its ISO 639-3 one, which HSDS also allows.
LANGUAGES: dict[str, tuple[str, str | None]] = {
    "english": ("English", "en"), "spanish": ("Spanish", "es"), "french": ("French", "fr"),
    "portuguese": ("Portuguese", "pt"), "vietnamese": ("Vietnamese", "vi"),
    "amharic": ("Amharic", "am"), "chinese": ("Chinese", "zh"), "cantonese": ("Cantonese", "zh"),
    "mandarin": ("Mandarin", "zh"), "toisanese": ("Toisanese", "zh"),
    "taishanese": ("Taishanese", "zh"), "oromo": ("Oromo", "om"), "polish": ("Polish", "pl"),
    "hindi": ("Hindi", "hi"), "hindu": ("Hindi", "hi"), "arabic": ("Arabic", "ar"),
    "german": ("German", "de"), "russian": ("Russian", "ru"), "tagalog": ("Tagalog", "tl"),
    "filipino": ("Filipino", "tl"), "haitian creole": ("Haitian Creole", "ht"),
    "somali": ("Somali", "so"), "italian": ("Italian", "it"), "tigrinya": ("Tigrinya", "ti"),
    "tigrigna": ("Tigrinya", "ti"), "lao": ("Lao", "lo"), "laotian": ("Lao", "lo"),
    "hebrew": ("Hebrew", "he"), "urdu": ("Urdu", "ur"), "cambodian": ("Khmer", "km"),
    "khmer": ("Khmer", "km"), "punjabi": ("Punjabi", "pa"), "tamil": ("Tamil", "ta"),
    "swedish": ("Swedish", "sv"), "thai": ("Thai", "th"), "turkish": ("Turkish", "tr"),
    "korean": ("Korean", "ko"), "farsi": ("Farsi", "fa"), "persian": ("Persian", "fa"),
    "japanese": ("Japanese", "ja"), "dutch": ("Dutch", "nl"), "swahili": ("Swahili", "sw"),
    "greek": ("Greek", "el"), "bengali": ("Bengali", "bn"), "bangla": ("Bengali", "bn"),
    "nepali": ("Nepali", "ne"), "gujarati": ("Gujarati", "gu"), "ukrainian": ("Ukrainian", "uk"),
    "romanian": ("Romanian", "ro"), "czech": ("Czech", "cs"), "hungarian": ("Hungarian", "hu"),
    "indonesian": ("Indonesian", "id"), "malay": ("Malay", "ms"), "burmese": ("Burmese", "my"),
    "yoruba": ("Yoruba", "yo"), "igbo": ("Igbo", "ig"), "twi": ("Twi", "tw"),
    "wolof": ("Wolof", "wo"), "pashto": ("Pashto", "ps"), "kurdish": ("Kurdish", "ku"),
    "armenian": ("Armenian", "hy"), "albanian": ("Albanian", "sq"), "bosnian": ("Bosnian", "bs"),
    "croatian": ("Croatian", "hr"), "serbian": ("Serbian", "sr"), "hmong": ("Hmong", None),
    "serbo-croatian": ("Serbo-Croatian", None), "dari": ("Dari", None),
    "american sign language": ("American Sign Language", "ase"),
    "sign language": ("American Sign Language", "ase"), "asl": ("American Sign Language", "ase"),
    "ilocano": ("Ilocano", None), "samoan": ("Samoan", "sm"), "tongan": ("Tongan", "to"),
    "mongolian": ("Mongolian", "mn"), "georgian": ("Georgian", "ka"), "latvian": ("Latvian", "lv"),
    "lithuanian": ("Lithuanian", "lt"), "slovak": ("Slovak", "sk"), "danish": ("Danish", "da"),
    "norwegian": ("Norwegian", "no"), "finnish": ("Finnish", "fi"), "yiddish": ("Yiddish", "yi"),
    "haitian": ("Haitian Creole", "ht"), "kreyol": ("Haitian Creole", "ht"),
    "kiswahili": ("Swahili", "sw"), "toisan": ("Toisanese", "zh"), "ibo": ("Igbo", "ig"),
    "shanghainese": ("Shanghainese", "zh"), "american sign": ("American Sign Language", "ase"),
    # Misspellings seen in real exports.
    "gujrati": ("Gujarati", "gu"), "itallian": ("Italian", "it"), "cambodia": ("Khmer", "km"),
    "tigrinyan": ("Tigrinya", "ti"), "tegrinyan": ("Tigrinya", "ti"),
    "amharie": ("Amharic", "am"),
}
_LANGUAGE_RE = re.compile(
    r"(?<![A-Za-z])(" + "|".join(re.escape(k) for k in sorted(LANGUAGES, key=len, reverse=True))
    + r")(?![A-Za-z])", re.IGNORECASE)
_CAMEL = re.compile(r"(?<=[a-z)])(?=[A-Z][a-z])")  # "SpanishChinese": lost line breaks
_LIST_SPLIT = re.compile(r"\s*(?:[,;/&]|\band\b)\s*", re.IGNORECASE)
# Words that make a segment a remark rather than a language name.
_NOT_LANGUAGE = frozenset({
    "none", "tdd", "tty", "tdy", "bilingual", "other", "others", "interpreter", "interpreters",
    "interpretation", "translation", "translator", "translators", "language", "languages",
    "service", "services", "serivce", "available", "only", "all", "multiple", "call", "with",
    "notice", "some", "limited", "staff", "line", "speaking", "written", "materials", "upon",
    "request", "by", "appointment", "monday", "tuesday", "wednesday", "thursday", "friday",
    "saturday", "sunday", "various", "many", "most", "bring", "own", "advance", "na", "as",
    "needed", "required", "little", "including", "testing", "deaf", "telephone", "braille",
    "ttd", "sign",
})


# --- reading ----------------------------------------------------------------------------------


@dataclass
class Record:
    """One CSV row: its number, level, line and stripped cell values."""

    num: str
    level: str
    line: int
    values: dict[str, str]

    def get(self, column: str) -> str:
        """The cell's text, stripped ('' when absent)."""
        return self.values.get(column, "")

    def yes(self, column: str) -> bool:
        """True when the cell says yes."""
        return self.get(column).lower() in _YES


def detect(path: Path) -> bool:
    """True for a CSV whose header has `TaxonomyLevelName` and `ResourceAgencyNum`."""
    if not path.is_file() or path.suffix.lower() not in {".csv", ".txt"}:
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(65536)
    except OSError:
        return False
    first = head.decode("utf-8-sig", errors="replace").splitlines()[:1]
    if not first:
        return False
    columns = {c.strip().strip('"').lstrip("\ufeff") for c in first[0].split(",")}
    return LEVEL_COLUMN in columns and ID_COLUMN in columns


def read(path: Path, problems: Problems) -> Iterator[SourceRow]:
    """Yield the HSDS rows assembled from every record of the export at `path`."""
    records = _read_records(path, problems)
    if records:
        yield from _Assembler(records, path.name, problems).rows()


def _read_records(path: Path, problems: Problems) -> list[Record]:
    """The export's records in file order; unreadable, unknown or repeated ones reported."""
    text = decode(path, problems)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        problems.warning(path.name, 1, None, "empty file")
        return []
    except csv.Error as exc:
        problems.error(path.name, 1, None, f"unreadable CSV header: {exc}")
        return []
    missing = [c for c in (ID_COLUMN, LEVEL_COLUMN, "ParentAgencyNum") if c not in header]
    if missing:
        problems.error(path.name, 1, ", ".join(missing), "not an AIRS export: column missing")
        return []
    width = len(header)
    records: list[Record] = []
    seen: set[str] = set()
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.error(path.name, reader.line_num, None, f"unreadable CSV row: {exc}")
            break
        start, line = line + 1, reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != width:
            problems.error(path.name, start, None, f"row has {len(cells)} fields, header has "
                           f"{width} (truncated or misquoted row)")
            cells = (cells + [""] * width)[:width]
        values = {h: c.strip() for h, c in zip(header, cells, strict=True) if h}
        num = values.get(ID_COLUMN, "")
        level = _LEVEL_NAMES.get(re.sub(r"\W", "", values.get(LEVEL_COLUMN, "")).lower(),
                                 values.get(LEVEL_COLUMN, ""))
        if not num:
            problems.error(path.name, start, ID_COLUMN, "record has no number; skipped")
            continue
        if level not in LEVELS:
            problems.error(path.name, start, LEVEL_COLUMN, f"unknown level {level!r} (expected "
                           f"{', '.join(LEVELS)}); record skipped", source_id=num)
            continue
        if num in seen:
            problems.error(path.name, start, ID_COLUMN, f"duplicate record number {num}; the "
                           "first row was kept", source_id=num)
            continue
        seen.add(num)
        records.append(Record(num, level, start, values))
    return records


# --- assembling -------------------------------------------------------------------------------


@dataclass
class _Location:
    """A location being assembled: the row that owns it and every row placed there."""

    id: str
    owner: Record
    members: list[Record] = field(default_factory=list)


@dataclass
class _Group:
    """One agency and its records."""

    num: str
    agency: Record | None  # None when the agency row is missing from the export
    name: str
    sites: list[Record] = field(default_factory=list)
    programs: list[Record] = field(default_factory=list)
    at_sites: list[Record] = field(default_factory=list)
    locations: dict[str, _Location] = field(default_factory=dict)
    by_address: dict[tuple[str, str], _Location] = field(default_factory=dict)
    agency_location: _Location | None = None
    program_locations: dict[str, list[_Location]] = field(default_factory=dict)


class _Assembler:
    """Builds the HSDS rows of one export from its records."""

    def __init__(self, records: list[Record], file: str, problems: Problems) -> None:
        self.records = records
        self.file = file
        self.problems = problems
        self.by_num = {r.num: r for r in records}
        self.groups: dict[str, _Group] = {}
        self.term_names: dict[str, str] = {}
        self.name_codes: dict[str, str] = {}
        self.emitted_terms: set[str] = set()
        self.placed_sites: set[str] = set()
        self.site_locations: dict[str, _Location] = {}
        # program number -> its program-at-site rows and where each one is
        self.links: dict[str, list[tuple[Record, _Location]]] = {}

    # -- plan ---------------------------------------------------------------------------------
    def _group_of(self, record: Record) -> _Group | None:
        """The group of a site or program: its agency's, made up when the agency is missing."""
        parent = record.get("ParentAgencyNum")
        if not parent or parent == "0":
            self.problems.error(self.file, record.line, "ParentAgencyNum",
                                f"{record.level} record has no agency; skipped",
                                source_id=record.num)
            return None
        group = self.groups.get(parent)
        if group is None:
            agency = self.by_num.get(parent)
            if agency is not None and agency.level != "Agency":
                self.problems.error(self.file, record.line, "ParentAgencyNum",
                                    f"parent {parent} is a {agency.level}, not an agency; "
                                    "record skipped", source_id=record.num)
                return None
            name = record.get("ParentAgency") or f"Agency {parent}"
            group = self.groups[parent] = _Group(parent, None, name)
        return group

    def _plan(self) -> None:
        """Group records by agency, then place sites, agencies, links and programs."""
        for record in self.records:
            if record.level == "Agency":
                self.groups[record.num] = _Group(record.num, record, record.get("PublicName"))
        for record in self.records:
            if record.level == "Agency":
                continue
            group = self._group_of(record)
            if group is None:
                continue
            {"Site": group.sites, "Program": group.programs,
             "ProgramAtSite": group.at_sites}[record.level].append(record)
        for group in self.groups.values():
            for site in group.sites:
                self.site_locations[site.num] = self._new_location(group, site)
        for group in self.groups.values():
            agency = group.agency
            if agency is not None and (_has_point(agency) or (
                    _has_zip(agency) and not group.sites and not group.programs)):
                group.agency_location = self._join(group, agency)
        for group in self.groups.values():
            for link in group.at_sites:
                self._link(group, link)
        for group in self.groups.values():
            self._place_programs(group)
        self._collect_term_names()

    def _new_location(self, group: _Group, owner: Record) -> _Location:
        """A location owned by `owner`, findable by its street and ZIP within the agency."""
        location = _Location(owner.num, owner, [owner])
        group.locations[owner.num] = location
        key = _address_key(owner)
        if key is not None:
            group.by_address.setdefault(key, location)
        return location

    def _join(self, group: _Group, record: Record) -> _Location:
        """The location of `record`: one of its agency at the same street and ZIP, or new."""
        key = _address_key(record)
        location = group.by_address.get(key) if key is not None else None
        if location is None:
            return self._new_location(group, record)
        location.members.append(record)
        return location

    def _link(self, group: _Group, link: Record) -> None:
        """Place a program-at-site row at its site (or its own address), or report why not."""
        program = self.by_num.get(link.get("ConnectsToProgramNum"))
        if program is None or program.level != "Program":
            self.problems.error(
                self.file, link.line, "ConnectsToProgramNum",
                f"program-at-site connects to program {link.get('ConnectsToProgramNum')!r}, "
                "which is not in this export; not imported (its site is)",
                table="service_at_location", source_id=link.num)
            return
        if link.get("AgencyStatus").lower() == "inactive" or link.yes("ExcludeFromWebsite"):
            self.problems.warning(self.file, link.line, "AgencyStatus", "program-at-site is "
                                  "inactive or excluded from the website; the program is not "
                                  "offered there", table="service_at_location",
                                  source_id=link.num)
            return
        site = link.get("ConnectsToSiteNum")
        location = self.site_locations.get(site)
        if location is None and (_has_point(link) or _has_zip(link)):
            location = self._new_location(group, link)
            self.problems.warning(self.file, link.line, "ConnectsToSiteNum",
                                  f"site {site!r} is not in this export; the program-at-site's "
                                  "own address was used", table="service_at_location",
                                  source_id=link.num)
        if location is None:
            self.problems.error(self.file, link.line, "ConnectsToSiteNum",
                                f"site {site!r} is not in this export and the row has no "
                                "address; not imported", table="service_at_location",
                                source_id=link.num)
            return
        if location.owner.level == "Site":
            self.placed_sites.add(location.owner.num)
        self.links.setdefault(program.num, []).append((link, location))

    def _place_programs(self, group: _Group) -> None:
        """Decide the locations of each program of the agency (see the module docstring)."""
        own = [loc for loc in group.locations.values() if loc.owner.level in ("Site", "Agency")]
        for program in group.programs:
            if program.num in self.links:
                places = [location for _, location in self.links[program.num]]
            elif _has_point(program):
                places = [self._join(group, program)]
            elif len(own) == 1:
                own[0].members.append(program)
                places = own[:1]
            elif _has_zip(program):  # placed by its ZIP alone (private addresses)
                places = [self._new_location(group, program)]
            else:
                places = []
                if own:
                    self.problems.warning(
                        self.file, program.line, "PhysicalAddress1",
                        f"program has no address and its agency has {len(own)} locations; "
                        "not placed at any (findable by text, not by distance)",
                        table="service", source_id=program.num)
            for location in places:
                if location.owner.level == "Site":
                    self.placed_sites.add(location.owner.num)
            group.program_locations[program.num] = places

    def _collect_term_names(self) -> None:
        """Each AIRS code's name as the file gives it (first aligned use), for any code."""
        for record in self.records:
            codes = _split_terms(record.get("TaxonomyCodes"))
            if not codes:
                continue
            terms = [t.strip() for t in record.get("TaxonomyTerm").split(";") if t.strip()]
            paths = [t.strip() for t in record.get("TaxonomyTermsNotDeactivated").split(";")
                     if t.strip()]
            for i, entry in enumerate(codes):
                names: list[str | None] = [None] * len(entry)
                if len(paths) == len(codes):
                    parts = [p.strip() for p in paths[i].split("*")]
                    if len(parts) == len(entry):
                        names = [p.split(" - ")[-1].strip() or None for p in parts]
                if len(terms) == len(codes):
                    names[0] = terms[i]
                for code, name in zip(entry, names, strict=True):
                    if name and code not in self.term_names:
                        self.term_names[code] = name
                        self.name_codes.setdefault(name.lower(), code)

    # -- rows ---------------------------------------------------------------------------------
    def rows(self) -> Iterator[SourceRow]:
        """Every HSDS row of the export."""
        self._plan()
        yield self._row("taxonomy", {"id": TAXONOMY_ID, "name": TAXONOMY_NAME,
                                     "uri": "https://211taxonomy.org"}, self.records[0])
        for group in self.groups.values():
            yield from self._group_rows(group)

    def _row(self, table: str, values: dict[str, Any], record: Record,
             warnings: list[tuple[str, str]] | None = None) -> SourceRow:
        """A SourceRow of `table` from `record`'s line, without empty values."""
        clean = {k: v for k, v in values.items() if v is not None and v != ""}
        return SourceRow(table, clean, self.file, record.line, warnings=warnings or [])

    def _group_rows(self, group: _Group) -> Iterator[SourceRow]:
        """Every row of one agency: organization, locations, services, links."""
        agency = group.agency
        yield from self._organization(group)
        for location in group.locations.values():
            yield from self._location(group, location)
        agency_service = self._agency_service(group)
        if agency is not None and group.agency_location is not None and not agency_service:
            # The agency's own office hours and languages describe its location.
            location_id = group.agency_location.id
            hours = _hours_text(agency)
            if hours:
                yield self._row("schedule", {"id": f"{agency.num}:hours",
                                             "location_id": location_id,
                                             "description": hours}, agency)
            yield from self._languages(agency, {"location_id": location_id})
        for program in group.programs:
            yield from self._service(group, program, program,
                                     group.program_locations[program.num])
        for program in group.programs:
            for link, location in self.links.get(program.num, []):
                yield from self._program_at_site(program, link, location)
        for site in group.sites:
            if site.num not in self.placed_sites:
                yield from self._service(group, site, agency, [group.locations[site.num]])
        if agency is not None and agency_service:
            places = [group.agency_location] if group.agency_location is not None else []
            yield from self._service(group, agency, agency, places)

    def _agency_service(self, group: _Group) -> bool:
        """True when the agency row itself is the only record and says enough to be found."""
        agency = group.agency
        if agency is None or group.sites or group.programs:
            return False
        return bool(agency.get("AgencyDescription") or _has_point(agency) or _has_zip(agency)
                    or agency.get("TaxonomyCodes") or agency.get("Tax"))

    # organization
    def _organization(self, group: _Group) -> Iterator[SourceRow]:
        """The organization (real or made up from `ParentAgency`) and its phones and funding."""
        agency = group.agency
        if agency is None:
            first = (group.sites + group.programs + group.at_sites)[0]
            yield self._row("organization", {"id": group.num, "name": group.name}, first, [
                ("id", f"agency {group.num} is not in this export; organization named from "
                       "its records' ParentAgency")])
            return
        values = {
            "id": agency.num, "name": agency.get("PublicName") or agency.get("OfficialName"),
            "alternate_name": agency.get("AlternateName"),
            "description": _clean_text(agency.get("AgencyDescription")),
            "email": agency.get("EmailAddressMain"), "website": _url(agency.get("WebsiteAddress")),
            "tax_status": _known(agency.get("IRSStatus")), "tax_id": agency.get("FEIN"),
            "year_incorporated": agency.get("YearIncorporated"),
            "legal_status": _known(agency.get("LegalStatus")),
            "parent_organization_id": parent if (parent := agency.get("ParentAgencyNum")) not in (
                "", "0", agency.num) else None,
        }
        yield self._row("organization", values, agency)
        service_id = agency.num if self._agency_service(group) else None
        yield from self._phones(agency, {"organization_id": agency.num, "service_id": service_id})
        if agency.get("SourceOfFunds"):
            yield self._row("funding", {"id": f"{agency.num}:funding",
                                        "organization_id": agency.num,
                                        "source": agency.get("SourceOfFunds").rstrip("; ")},
                            agency)

    # location
    def _location(self, group: _Group, location: _Location) -> Iterator[SourceRow]:
        """A location with its addresses, accessibility and (for a site) phones."""
        owner = location.owner
        point = next(((r.get("Latitude"), r.get("Longitude")) for r in location.members
                      if r.get("Latitude") and r.get("Longitude")), (None, None))
        confidential = any(_is_confidential(r) for r in location.members)
        values = {
            "id": location.id, "organization_id": group.num,
            "name": (owner.get("PublicName") if owner.level == "Site" else None) or group.name,
            "location_type": "physical",
            "description": owner.get("PhysicalLocationDescription"),
            "transportation": owner.get("BusServiceAccess")
            or owner.get("PublicAccessTransportation"),
            "latitude": point[0], "longitude": point[1], "is_confidential": confidential,
            "external_identifier": owner.num, "external_identifier_type": "AIRS record number",
        }
        yield self._row("location", values, owner)
        physical = _address(owner, "Physical")
        if physical:
            yield self._row("address", {"id": f"{location.id}:physical",
                                        "location_id": location.id, "address_type": "physical",
                                        **physical}, owner)
        mailing = _address(owner, "Mailing")
        if mailing and not owner.yes("MailingAddressIsPrivate") and not _is_withheld(
                owner.get("MailingAddress1")) and (
                _street_key(mailing) != _street_key(physical)):
            attention = owner.get("MailingAttentionName")
            yield self._row("address", {"id": f"{location.id}:postal",
                                        "location_id": location.id, "address_type": "postal",
                                        "attention": attention, **mailing}, owner)
        access = owner.get("DisabilitiesAccess")
        if access and not _DC_QUADRANT.match(access):
            yield self._row("accessibility", {"id": f"{location.id}:access",
                                              "location_id": location.id,
                                              "description": access}, owner)
        if owner.level == "Site":
            yield from self._phones(owner, {"location_id": location.id})

    # service
    def _service(self, group: _Group, record: Record, described_by: Record | None,
                 places: list[_Location]) -> Iterator[SourceRow]:
        """A service from a program, a site (described by its agency) or an agency."""
        agency = group.agency
        desc = described_by or record
        warnings: list[tuple[str, str]] = []
        name = record.get("PublicName") if record.level == "Program" else (
            desc.get("PublicName") if described_by is not None else group.name)
        if not name:
            name = group.name
            warnings.append(("name", "record has no PublicName; named after its agency"))
        flags = [record] + ([agency] if agency is not None and agency is not record else [])
        statuses = [r.get("AgencyStatus").lower() for r in flags]
        if any(s == "inactive" for s in statuses):
            status: str | None = "inactive"
        elif any(statuses):
            status = "active"
        else:
            status = None
        values: dict[str, Any] = {
            "id": record.num, "organization_id": group.num, "name": name,
            "alternate_name": record.get("AlternateName") or desc.get("AlternateName"),
            "description": _clean_text(desc.get("AgencyDescription")),
            "url": _url(record.get("WebsiteAddress") or desc.get("WebsiteAddress")),
            "email": record.get("EmailAddressMain") or desc.get("EmailAddressMain"),
            "status": status,
            "is_referable": not any("do not refer" in s for s in statuses),
            "is_hidden": any(r.yes("ExcludeFromWebsite") for r in flags),
            "application_process": _known_text(record.get("ApplicationProcess")),
            "fees_description": _known_text(record.get("FeeStructureSource")),
            "eligibility_description": _known_text(record.get("Eligibility")),
            "interpretation_services": _interpretation(record.get("LanguagesOffered")),
            "wait_time": _known_text(record.get("NormalWaitTime"))
            or _known_text(record.get("AvailabilityPeriod")),
            "accreditations": record.get("LicenseAccreditation"),
            "alert": _alert(record),
            "last_modified": _datetime(record.get("UpdatedOn")),
            "verified_at": _datetime(record.get("LastVerifiedOn")),
        }
        yield self._row("service", values, record, warnings)
        sid = record.num
        linked = record.level == "Program" and sid in self.links
        for location in [] if linked else places:  # program-at-site rows write their own
            yield self._row("service_at_location", {"id": f"{sid}@{location.id}",
                                                    "service_id": sid,
                                                    "location_id": location.id}, record)
        if record.level == "Program":
            yield from self._phones(record, {"service_id": sid})
        elif record.level == "Site" and agency is not None and not _phone_cells(record):
            # The agency's phones reach the service at a site that lists none of its own.
            yield from self._phones(agency, {"service_id": sid}, prefix=f"{sid}:agency")
        hours = _hours_text(record)
        if hours:
            yield self._row("schedule", {"id": f"{sid}:hours", "service_id": sid,
                                         "description": hours}, record)
        yield from self._languages(record, {"service_id": sid})
        if record.get("CoverageArea"):
            yield self._row("service_area", {"id": f"{sid}:area", "service_id": sid,
                                             "name": record.get("CoverageArea")}, record)
        if record.get("DocumentsRequired"):
            yield self._row("required_document", {"id": f"{sid}:documents", "service_id": sid,
                                                  "document": record.get("DocumentsRequired")},
                            record)
        yield from self._taxonomy(sid, desc if record.level == "Site" else record)

    def _program_at_site(self, program: Record, link: Record,
                         location: _Location) -> Iterator[SourceRow]:
        """A program-at-site row: the link, with its own hours, phones and notes."""
        notes = [f"{label}: {text}" for column, label in (
            ("Eligibility", "Eligibility"), ("FeeStructureSource", "Fees"),
            ("ApplicationProcess", "How to apply")) if (text := _known_text(link.get(column)))]
        yield self._row("service_at_location", {
            "id": link.num, "service_id": program.num, "location_id": location.id,
            "description": "\n".join(notes) or None}, link)
        hours = _hours_text(link)
        if hours:
            yield self._row("schedule", {"id": f"{link.num}:hours",
                                         "service_at_location_id": link.num,
                                         "description": hours}, link)
        yield from self._phones(link, {"service_at_location_id": link.num})

    # children
    def _phones(self, record: Record, links: dict[str, str | None],
                prefix: str | None = None) -> Iterator[SourceRow]:
        """The record's public phones, linked as `links` says, ids under `prefix`."""
        prefix = prefix or record.num
        for suffix, number, phone_type, label, extra in _phone_cells(record):
            phone_id = f"{prefix}:{suffix}"
            if not re.search(r"\d", number):
                if prefix == record.num:  # once per record, not for each copy
                    self.problems.warning(self.file, record.line, suffix, f"not a phone number: "
                                      f"{number!r}; skipped", table="phone",
                                          source_id=phone_id)
                continue
            extension = None
            match = _EXTENSION.search(number)
            if match:
                number, extension = number[:match.start()].strip(), match.group(1)
            ext_match = re.fullmatch(r"(?:x|ext\.?|extension)\s*(\d{1,6})", extra,
                                     re.IGNORECASE)
            if ext_match and extension is None:
                extension, extra = ext_match.group(1), ""
            description = ": ".join(p for p in (label, extra) if p) or None
            yield self._row("phone", {"id": phone_id, **links, "number": number,
                                      "extension": extension, "type": phone_type,
                                      "description": description}, record)

    def _languages(self, record: Record, links: dict[str, str]) -> Iterator[SourceRow]:
        """One language row per language the record offers."""
        text = record.get("LanguagesOffered")
        owner = links.get("service_id") or links.get("location_id")
        for name, code in parse_languages(text):
            yield self._row("language", {"id": f"{owner}:language:{name.lower()}", **links,
                                         "name": name, "code": code, "note": text}, record)

    def _taxonomy(self, service_id: str, record: Record) -> Iterator[SourceRow]:
        """Taxonomy terms (each once per file) and attributes linking them to the service."""
        terms: list[tuple[str, str | None, str]] = []  # (term id, code, name)
        for entry in _split_terms(record.get("TaxonomyCodes")):
            for code in entry:
                terms.append((code, code, self.term_names.get(code, code)))
        tax = record.get("Tax")
        if tax:
            for name in (t.strip() for t in tax.split(";")):
                if not name:
                    continue
                code = self.name_codes.get(name.lower())
                terms.append((code, code, self.term_names[code]) if code
                             else (f"name:{name}", None, name))
        linked: set[str] = set()
        for term_id, code, name in terms:
            if term_id in linked:
                continue
            linked.add(term_id)
            if term_id not in self.emitted_terms:
                self.emitted_terms.add(term_id)
                if code is not None and not _AIRS_CODE.match(code):
                    self.problems.warning(self.file, record.line, "TaxonomyCodes",
                                          f"{code!r} is not an AIRS code; kept as given",
                                          table="taxonomy_term", source_id=term_id)
                yield self._row("taxonomy_term", {
                    "id": term_id, "code": code, "name": name, "taxonomy": "AIRS",
                    "taxonomy_id": TAXONOMY_ID}, record)
            yield self._row("attribute", {
                "id": f"{service_id}:{term_id}", "link_id": service_id,
                "link_entity": "service", "link_type": "service_type",
                "taxonomy_term_id": term_id}, record)


# --- helpers ----------------------------------------------------------------------------------


def _phone_cells(record: Record) -> list[tuple[str, str, str, str, str]]:
    """(id suffix, number, type, label, extra text) of each public phone cell of a record."""
    out = []
    for i in range(1, 6):
        number = record.get(f"Phone{i}Number")
        if not number or record.yes(f"Phone{i}IsPrivate"):
            continue
        label = record.get(f"Phone{i}Name")
        low = f"{label} {record.get(f'Phone{i}Type')}".lower()
        phone_type = "fax" if "fax" in low else (
            "textphone" if re.search(r"\b(?:tty|tdd)\b", low) else "voice")
        out.append((f"phone{i}", number, phone_type, label, record.get(f"Phone{i}Description")))
    for column, label, phone_type in _NAMED_PHONES:
        number = record.get(column)
        if number and not record.yes(f"{column}IsPrivate"):
            out.append((column, number, phone_type, label, record.get(f"{column}Description")))
    return out


def _split_terms(text: str) -> list[list[str]]:
    """"A; B * C" -> [["A"], ["B", "C"]] (codes upper-cased, blanks dropped)."""
    out = []
    for entry in text.split(";"):
        codes = [c.strip().upper().replace(" ", "") for c in entry.split("*")]
        codes = [c for c in codes if c]
        if codes:
            out.append(codes)
    return out


def parse_languages(text: str) -> list[tuple[str, str | None]]:
    """(name, ISO code) for each language named in a free-text `LanguagesOffered` value."""
    if not text or text.strip().lower() in {"none", "n/a", "na"}:
        return []
    text = _CAMEL.sub("; ", text)
    found: dict[str, str | None] = {}
    for segment in _LIST_SPLIT.split(re.sub(r"[()]", ",", text)):
        segment = segment.strip(" .:-")
        if not segment:
            continue
        names = [LANGUAGES[m.group(1).lower()] for m in _LANGUAGE_RE.finditer(segment)]
        if names:
            for name, code in names:
                found.setdefault(name, code)
            continue
        words = segment.split()
        if len(words) <= 2 and all(w.isalpha() for w in words) and not any(
                w.lower() in _NOT_LANGUAGE for w in words):
            found.setdefault(" ".join(w[:1].upper() + w[1:] for w in words), None)
    return list(found.items())


def _interpretation(text: str) -> str | None:
    """Language text that names no language, or speaks of interpreters, kept as a note."""
    if not text or text.lower().strip(" .") in {"none", "n/a", "na"}:
        return None
    if not parse_languages(text) or re.search(r"interpret|translat|language line", text,
                                               re.IGNORECASE):
        return text
    return None


def _has_point(record: Record) -> bool:
    """True when the record gives a street address or coordinates."""
    return bool(record.get("PhysicalAddress1") or (record.get("Latitude")
                                                    and record.get("Longitude")))


def _has_zip(record: Record) -> bool:
    """True when the record gives a postal code (private addresses keep only that)."""
    return bool(record.get("PhysicalPostalCode"))


def _address_key(record: Record) -> tuple[str, str] | None:
    """The record's physical street and ZIP as a `street_key`."""
    return street_key(record.get("PhysicalAddress1"), record.get("PhysicalPostalCode"))


_ORDINALS = {"first": "1st", "second": "2nd", "third": "3rd", "fourth": "4th", "fifth": "5th",
             "sixth": "6th", "seventh": "7th", "eighth": "8th", "ninth": "9th", "tenth": "10th"}
_STREET_TYPES = frozenset({
    "street", "st", "avenue", "ave", "av", "boulevard", "blvd", "road", "rd", "drive", "dr",
    "place", "pl", "court", "ct", "lane", "ln", "way", "terrace", "ter", "parkway", "pkwy",
    "highway", "hwy", "circle", "cir", "square", "sq", "alley", "aly",
})
_UNIT = re.compile(r"\b(?:suite|ste|unit|room|rm|apt|bldg|building)\b\.?\s*#?\s*[\w-]+"
                   r"|#\s*[\w-]+|\b\w+\s+(?:floor|fl)\b|\bfloor\s+\w+", re.IGNORECASE)


def street_key(street: str, postal_code: str) -> tuple[str, str] | None:
    """What two rows must share to be one place: the street and the ZIP, spelled alike.

    Units, punctuation, spacing and street types are ignored and ordinal words are numbers, so
    "360 Fourth Street" and "360 - 4th Street" (or "1156 Valencia" and "1156 Valencia Street,
    Suite 2") match. A withheld street ("Confidential") matches nothing.
    """
    if not street or _is_withheld(street):
        return None
    words = re.findall(r"[a-z0-9]+", _UNIT.sub(" ", street.lower()))
    words = [_ORDINALS.get(w, w) for w in words if w not in _STREET_TYPES]
    if not words:
        return None
    return "".join(words), re.sub(r"\D", "", postal_code)[:5]


def _is_withheld(street: str) -> bool:
    """True for a street that says it is confidential (DC exports have no private flag)."""
    return bool(_WITHHELD.match(street))


def _is_confidential(record: Record) -> bool:
    """True when the record's address is private (flag, or a withheld street)."""
    return record.yes("PhysicalAddressIsPrivate") or _is_withheld(
        record.get("PhysicalAddress1")) or _is_withheld(record.get("PhysicalAddress2"))


def _street_key(address: dict[str, str | None] | None) -> str:
    """An address row's street, lower-cased, for comparing mailing and physical."""
    if not address:
        return ""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", (address.get("address_1") or "").lower()).split())


def _address(record: Record, prefix: str) -> dict[str, str | None] | None:
    """The Physical or Mailing address columns as HSDS address fields, or None."""
    street = record.get(f"{prefix}Address1")
    city = record.get(f"{prefix}City")
    postal = _zip(record.get(f"{prefix}PostalCode"))
    if not (street or city or postal):
        return None
    country = record.get(f"{prefix}Country")
    return {
        "address_1": street, "address_2": record.get(f"{prefix}Address2") or None,
        "city": city, "region": _known(record.get(f"{prefix}County")),
        "state_province": _known(record.get(f"{prefix}StateProvince")),
        "postal_code": postal,
        "country": _COUNTRIES.get(country.lower(), country if len(country) == 2 else None),
    }


def _zip(value: str) -> str | None:
    """A ZIP as given, with a bare nine-digit ZIP+4 hyphenated."""
    digits = re.sub(r"\D", "", value)
    if len(digits) == 9 and len(value) == 9:
        return f"{digits[:5]}-{digits[5:]}"
    return value or None


def _known(value: str) -> str | None:
    """The value, or None for placeholders ("-1", "None or unknown")."""
    return None if value.strip().lower() in _UNKNOWN else value.strip()


def _known_text(value: str) -> str | None:
    """Free text without markup, and without placeholders that say nothing ("-1", "N/A")."""
    return None if value.strip().lower() in {"", "-1", "n/a", "na"} else _clean_text(value)


def _clean_text(value: str) -> str | None:
    """Description text without HTML markup and padding."""
    if not value:
        return None
    if "<" in value:
        value = _TAG.sub("", _BREAK.sub("\n", value))
    value = html.unescape(value).replace("\t", " ")
    lines = [" ".join(line.split()) for line in value.splitlines()]
    text = "\n".join(line for line in lines if line)
    return text or None


def _url(value: str) -> str | None:
    """A web address, with "http://" added to a bare domain."""
    value = value.strip()
    if not value:
        return None
    if "://" not in value and " " not in value and "." in value and "@" not in value:
        return "http://" + value
    return value


def _hours_text(record: Record) -> str | None:
    """`HoursOfOperation`, else the `Hours` column when it has times, on one line."""
    text = " ".join(record.get("HoursOfOperation").split())
    if text:
        return text
    hours = " ".join(record.get("Hours").split()).strip("; ")
    return hours if re.search(r"\d", hours) else None


def _datetime(value: str) -> str | None:
    """"8/17/11 10:11" or "5/21/13" as an ISO date-time, else None."""
    for pattern in ("%m/%d/%y %H:%M", "%m/%d/%y", "%m/%d/%Y %H:%M", "%m/%d/%Y",
                    "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), pattern).isoformat()
        except ValueError:
            continue
    return None


def _alert(record: Record) -> str | None:
    """The temporary message, while it has not expired."""
    message = record.get("TemporaryMessage")
    if not message:
        return None
    expires = _datetime(record.get("TemporaryMessageExpires"))
    if expires and expires < datetime.now().isoformat():
        return None
    return message
