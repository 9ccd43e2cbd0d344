"""Open Referral HSDS 1.x tabular datapackages (the Open211 Miami export and its kind).

HSDS 1.x split what 3.1 keeps together and named files differently: `physical_addresses.csv`
and `postal_addresses.csv` (3.1 `address` with an `address_type`), `regular_schedules.csv`
(one row per weekday), `holiday_schedules.csv`, `eligibility.csv` (3.1
`service.eligibility_description`), `accessibility_for_disabilities.csv`, `taxonomy.csv` plus
`services_taxonomy.csv` (3.1 `taxonomy_term` plus `attribute`), `payments_accepted.csv`.

What this loader does on the way to HSDS 3.1 rows:

* every cell is stripped, and the literal two characters ``\\n`` some exports wrote for line
  breaks become real line breaks; iCarol's site markers (``###MON###``) are removed from text;
* weekday rows are grouped per service (or location) and turned into weekly rules by
  `rules_from_weekday_rows`, which prefers the rows' shared ``original_text``; each rule becomes
  a schedule row with a stable id (``"{service_id}:{i}"``) that keeps the original text as its
  description, and hours that cannot be read stay as one text-only row (never "closed");
* holidays become closure rows (see `holiday_schedule_rows`, shared with the Ohana loader);
* a blank country next to a US state or ZIP becomes "US"; empty addresses are dropped;
* taxonomy ids that are AIRS or Open Eligibility codes are kept as the term's `code`, so the
  pipeline maps them to directory categories; a service linked to the same term twice gets one
  attribute row;
* broken organization links of iCarol exports are repaired (see `_resolve_organizations`);
* rows that cannot be attached to anything (an eligibility row without a service id) are
  reported once per file, with their count, never guessed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

from indexer.loaders.hsds3 import decode
from indexer.records import Problems, SourceRow
from service.directory.schedules import (
    DayRef,
    HolidayClosure,
    Rule,
    holiday_from_row,
    rules_from_weekday_rows,
    to_hsds_rows,
)

FORMAT = "hsds1"

# Files that only HSDS 1.x packages have (3.x says service_at_location.csv, schedules.csv and
# addresses.csv; the Ohana CSV variant says addresses.csv and mail_addresses.csv).
MARKER_FILES = ("services_at_location.csv", "physical_addresses.csv")
OHANA_FILES = ("mail_addresses.csv", "addresses.csv")
HSDS3_FILES = ("service_at_location.csv", "schedules.csv")
KNOWN_FILES = {
    "organizations.csv", "programs.csv", "services.csv", "locations.csv",
    "services_at_location.csv", "physical_addresses.csv", "postal_addresses.csv", "phones.csv",
    "contacts.csv", "regular_schedules.csv", "holiday_schedules.csv", "funding.csv",
    "eligibility.csv", "service_areas.csv", "required_documents.csv", "payments_accepted.csv",
    "languages.csv", "accessibility_for_disabilities.csv", "taxonomy.csv",
    "services_taxonomy.csv", "metadata.csv", "meta_table_descriptions.csv",
}

# Phone types of HSDS 1.x / Ohana and their HSDS 3.1 names (3.1: text, voice, fax, cell, video,
# pager, textphone).
PHONE_TYPES = {
    "voice": "voice", "fax": "fax", "cell": "cell", "mobile": "cell", "video": "video",
    "pager": "pager", "text": "text", "sms": "text", "tty": "textphone", "tdd": "textphone",
    "textphone": "textphone", "hotline": "voice",
}
US_STATE = re.compile(r"^[A-Za-z]{2}$")
US_ZIP = re.compile(r"^\d{5}(?:-?\d{4})?$")
SITE_MARKER = re.compile(r"[ \t]*#{3}[A-Z0-9_]{2,10}#{3}")
WEEKDAY_ORDER = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALL_DAYS = tuple(DayRef(i) for i in range(7))


# --- detection ---------------------------------------------------------------------------------


def detect(path: Path) -> bool:
    """True for an HSDS 1.x datapackage folder (or its datapackage.json)."""
    if path.name == "datapackage.json" and path.is_file():
        return _names_are_hsds1(_package_names(path) | _csv_names(path.parent))
    if not path.is_dir():
        return False
    names = _csv_names(path)
    if (path / "datapackage.json").exists():
        names |= _package_names(path / "datapackage.json")
    return _names_are_hsds1(names)


def _csv_names(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("*.csv")}


def _package_names(package: Path) -> set[str]:
    try:
        descriptor = json.loads(package.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    resources = descriptor.get("resources", []) if isinstance(descriptor, dict) else []
    return {str(r.get("path")) for r in resources if isinstance(r, dict) and r.get("path")}


def _names_are_hsds1(names: set[str]) -> bool:
    if any(n in names for n in OHANA_FILES) or any(n in names for n in HSDS3_FILES):
        return False
    return any(n in names for n in MARKER_FILES) or (
        "regular_schedules.csv" in names and "services.csv" in names)


# --- shared CSV helpers (also used by the Ohana loader) -------------------------------------


def clean(value: str | None) -> str:
    """A cell stripped, with literal backslash-n sequences turned into line breaks."""
    if not value:
        return ""
    text = value.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\t", " ")
    return text.strip()


def clean_text(value: str | None) -> str:
    """A free-text cell: `clean`, without iCarol site markers, trailing spaces per line."""
    text = SITE_MARKER.sub("", clean(value))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def read_csv(file: Path, problems: Problems) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, row) for each non-blank row of a CSV file, every cell cleaned by `clean`."""
    text = decode(file, problems)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = [h.strip().lstrip("\ufeff").lower() for h in next(reader)]
    except StopIteration:
        problems.warning(file.name, 1, None, "empty file")
        return
    except csv.Error as exc:
        problems.error(file.name, 1, None, f"unreadable CSV header: {exc}")
        return
    width = len(header)
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.error(file.name, reader.line_num, None, f"unreadable CSV row: {exc}")
            break
        start, line = line + 1, reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != width:
            problems.error(file.name, start, None, f"row has {len(values)} fields, header has "
                           f"{width} (truncated or misquoted row)")
            if len(values) < width and line == text.count("\n") + 1 \
                    and not text.endswith(("\n", "\r")):
                continue  # a cut-off last row: its values cannot be trusted
            values = (values + [""] * width)[:width]
        yield start, {h: clean(v) for h, v in zip(header, values, strict=True) if h}


def split_list(value: str) -> list[str]:
    """The items of a comma- or semicolon-separated cell, without blanks or repeats."""
    items = (part.strip() for part in re.split(r"[,;]", value or ""))
    return list(dict.fromkeys(item for item in items if item))


def pick(row: Mapping[str, str], *names: str) -> str:
    """The first non-blank of the named cells, else ""."""
    return next((row[n] for n in names if row.get(n)), "")


def address_values(row: Mapping[str, str], address_id: str, address_type: str
                   ) -> dict[str, Any] | None:
    """An HSDS 3.1 address from a 1.x / Ohana address row, or None when it is empty."""
    lines = [pick(row, "address_1", "address")] + [row.get(f"address_{i}", "") for i in (2, 3, 4)]
    street, *rest = lines
    values: dict[str, Any] = {
        "id": address_id, "location_id": row.get("location_id", ""),
        "attention": row.get("attention", ""), "address_1": street,
        "address_2": ", ".join(part for part in rest if part),
        "city": row.get("city", ""), "region": row.get("region", ""),
        "state_province": pick(row, "state_province", "state"),
        "postal_code": pick(row, "postal_code", "zip"), "country": row.get("country", ""),
        "address_type": address_type,
    }
    if not any(values[f] for f in ("address_1", "address_2", "city", "state_province",
                                   "postal_code")):
        return None
    if not values["country"] and (US_STATE.match(values["state_province"])
                                  or US_ZIP.match(values["postal_code"])):
        values["country"] = "US"
    return values


def phone_type(value: str) -> str:
    """The HSDS 3.1 phone type for a 1.x / Ohana one ("" when unknown or blank)."""
    return PHONE_TYPES.get(value.strip().lower(), "")


def taxonomy_code(term_id: str) -> str:
    """The term id when it is an AIRS or Open Eligibility code the directory maps, else ""."""
    from service.directory.categories import AIRS_CODE, LEGACY_CODE

    return term_id if AIRS_CODE.match(term_id) or LEGACY_CODE.match(term_id) else ""


def schedule_id(parents: Mapping[str, str]) -> str:
    """A stable id base for the schedule rows of one parent: the service id when that is all."""
    service = parents.get("service_id", "")
    others = [f"{k.removesuffix('_id')}={v}" for k, v in parents.items()
              if v and k != "service_id"]
    if not others:
        return service
    return "|".join(([service] if service else []) + others)


def weekday_schedule_rows(rows: list[Mapping[str, str]], parents: Mapping[str, str],
                          text: str | None = None) -> list[dict[str, Any]]:
    """HSDS 3.1 schedule rows for one parent's weekday rows: weekly rules, or one text row.

    `text` is the hours as the source wrote them (kept as each row's description); without it,
    a text is made from the rows for the text-only fallback.
    """
    base = schedule_id(parents)
    links = {k: v for k, v in parents.items() if v}
    rules = rules_from_weekday_rows(rows)
    if not rules:
        return [{"id": f"{base}:0", **links, "description": text or _rows_text(rows)}]
    out = []
    for i, hsds in enumerate(to_hsds_rows(rules)):
        row: dict[str, Any] = {"id": f"{base}:{i}", **links, **hsds}
        if text:
            row["description"] = text
        out.append(row)
    return out


def _rows_text(rows: Iterable[Mapping[str, str]]) -> str:
    """Weekday rows written out as text ("Monday 9:00am-5:00pm; ...")."""
    def order(row: Mapping[str, str]) -> int:
        day = str(row.get("weekday") or "").strip().lower()
        return WEEKDAY_ORDER.index(day) if day in WEEKDAY_ORDER else len(WEEKDAY_ORDER)

    parts = []
    for row in sorted(rows, key=order):
        times = "-".join(filter(None, (row.get("opens_at"), row.get("closes_at"))))
        parts.append(" ".join(filter(None, (str(row.get("weekday") or "").strip(), times))))
    return "; ".join(p for p in parts if p)


def holiday_schedule_rows(row: Mapping[str, str], parents: Mapping[str, str], base_id: str,
                          today: date | None = None) -> list[dict[str, Any]]:
    """HSDS 3.1 closure schedule rows (``is_closure``) for one holiday_schedules row.

    Raises ValueError when the dates or times cannot be read. A holiday written with the
    year 0001 (Ohana: every year) has no HSDS 3.1 equivalent, so it becomes dated closures for
    this year and the next (a yearly re-import keeps them current). Special opening hours
    (``closed`` false, with times) become closures outside those hours plus an opening for them.
    """
    holiday = holiday_from_row(row)
    links = {k: v for k, v in parents.items() if v}
    today = today or date.today()
    if holiday.annual:
        dated = [(str(year), _in_year(holiday, year)) for year in (today.year, today.year + 1)]
        note = "every year"
    else:
        dated = [("", holiday)]
        note = None
    out = []
    for suffix, one in dated:
        rules = _holiday_rules(one)
        for i, hsds in enumerate(to_hsds_rows(rules)):
            rule = rules[i]
            hsds["is_closure"] = rule.is_closure
            if note:
                hsds["notes"] = note
            row_id = ":".join(filter(None, (base_id, suffix, str(i))))
            out.append({"id": row_id, **links, **hsds})
    return out


def _in_year(holiday: HolidayClosure, year: int) -> HolidayClosure:
    start = _on(year, holiday.start_date)
    end_year = year + 1 if (holiday.end_date.month, holiday.end_date.day) < (
        holiday.start_date.month, holiday.start_date.day) else year
    return replace(holiday, start_date=start, end_date=_on(end_year, holiday.end_date),
                   annual=False)


def _on(year: int, day: date) -> date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def _holiday_rules(holiday: HolidayClosure) -> list[Rule]:
    if holiday.closed:
        return holiday.to_rules()
    if holiday.opens_at is None or holiday.closes_at is None:
        raise ValueError("a holiday that is not closed needs both opening times")
    closures = replace(holiday, closed=True).to_rules()
    special = Rule(freq="WEEKLY", byday=ALL_DAYS, interval=1, opens_at=holiday.opens_at,
                   closes_at=holiday.closes_at, valid_from=holiday.start_date,
                   valid_to=holiday.end_date, description="Special hours")
    return [*closures, special]


# --- reading -------------------------------------------------------------------------------


class _Package:
    """One HSDS 1.x folder being read: files, problems and what earlier files told us."""

    def __init__(self, folder: Path, problems: Problems) -> None:
        self.folder = folder
        self.problems = problems
        self._cache: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.service_org: dict[str, str] = {}   # service id -> resolved organization id
        self.location_org: dict[str, str] = {}  # location id -> organization id to use

    def rows(self, name: str) -> Iterator[tuple[int, dict[str, str]]]:
        if name in self._cache:
            yield from self._cache[name]
            return
        file = self.folder / name
        if file.exists():
            yield from read_csv(file, self.problems)

    def keep(self, *names: str) -> None:
        """Read these files once and keep their rows (they are needed more than once)."""
        for name in names:
            self._cache[name] = list(self.rows(name))

    def row(self, table: str, values: dict[str, Any], file: str, line: int | None
            ) -> SourceRow:
        return SourceRow(table, {k: v for k, v in values.items() if v not in ("", None)},
                         file, line)


def read(path: Path, problems: Problems) -> Iterator[SourceRow]:
    """Yield HSDS 3.1 rows for the HSDS 1.x package at `path` (folder or datapackage.json)."""
    folder = path if path.is_dir() else path.parent
    pkg = _Package(folder, problems)
    for extra in sorted(_csv_names(folder) - KNOWN_FILES):
        problems.warning(extra, None, None, "not an HSDS 1.x table; file ignored")
    pkg.keep("organizations.csv", "services.csv", "services_at_location.csv")
    _resolve_organizations(pkg)
    yield from _organizations(pkg)
    yield from _programs(pkg)
    yield from _services(pkg)
    yield from _locations(pkg)
    yield from _services_at_location(pkg)
    yield from _addresses(pkg)
    yield from _phones(pkg)
    yield from _contacts(pkg)
    yield from _regular_schedules(pkg)
    yield from _holiday_schedules(pkg)
    yield from _service_details(pkg)
    yield from _languages(pkg)
    yield from _accessibility(pkg)
    yield from _taxonomy(pkg)
    yield from _metadata(pkg)


def _resolve_organizations(pkg: _Package) -> None:
    """Repair organization links the way iCarol exports break them.

    iCarol keeps agency -> site -> program records. Open211 Miami's export gave a program (a
    service) its *site* as `organization_id` when the site was not itself an agency, and gave
    every location its own id as `organization_id`. A service's parent that is not an
    organization but is another service record is followed up to its agency; a location whose
    organization is not in the package takes the organization of the services offered there.
    """
    organizations = {r["id"] for _line, r in pkg.rows("organizations.csv") if r.get("id")}
    parent = {r["id"]: r.get("organization_id", "") for _line, r in pkg.rows("services.csv")
              if r.get("id")}
    followed = 0
    for service_id, org_id in parent.items():
        seen = {service_id}
        while org_id and org_id not in organizations and org_id in parent \
                and org_id not in seen:
            seen.add(org_id)
            org_id = parent[org_id]
        if org_id in organizations and org_id != parent[service_id]:
            pkg.service_org[service_id] = org_id
            followed += 1
    if followed:
        pkg.problems.warning(
            "services.csv", None, "organization_id",
            f"{followed} services name a parent record that is a site, not an organization in "
            "organizations.csv; each was linked to that site's organization", table="service")
    by_location: dict[str, set[str]] = {}
    for _line, r in pkg.rows("services_at_location.csv"):
        service_id = r.get("service_id", "")
        org_id = pkg.service_org.get(service_id, parent.get(service_id, ""))
        if r.get("location_id") and org_id in organizations:
            by_location.setdefault(r["location_id"], set()).add(org_id)
    location_file = pkg.folder / "locations.csv"
    if not location_file.exists():
        return
    moved = 0
    for _line, r in read_csv(location_file, Problems()):
        orgs = by_location.get(r.get("id", ""), set())
        if r.get("organization_id") not in organizations and len(orgs) == 1:
            pkg.location_org[r["id"]] = next(iter(orgs))
            moved += 1
    if moved:
        pkg.problems.warning(
            "locations.csv", None, "organization_id",
            f"{moved} locations name an organization that is not in organizations.csv; each "
            "was linked to the organization of the services offered there", table="location")


def _organizations(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("organizations.csv"):
        yield pkg.row("organization", {
            "id": r.get("id"), "name": r.get("name"), "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")), "email": r.get("email"),
            "website": pick(r, "website", "url"), "tax_status": r.get("tax_status"),
            "tax_id": r.get("tax_id"), "year_incorporated": r.get("year_incorporated"),
            "legal_status": r.get("legal_status"), "logo": r.get("logo"), "uri": r.get("uri"),
            "parent_organization_id": r.get("parent_organization_id"),
        }, "organizations.csv", line)


def _programs(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("programs.csv"):
        yield pkg.row("program", {
            "id": r.get("id"), "organization_id": r.get("organization_id"),
            "name": r.get("name"), "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")),
        }, "programs.csv", line)


def _eligibility(pkg: _Package) -> dict[str, str]:
    """eligibility.csv text per service id; rows without one are reported, not guessed."""
    texts: dict[str, list[str]] = {}
    orphans: list[int] = []
    for line, r in pkg.rows("eligibility.csv"):
        text = clean_text(r.get("eligibility"))
        if not text:
            continue
        if not r.get("service_id"):
            orphans.append(line)
            continue
        texts.setdefault(r["service_id"], []).append(text)
    if orphans:
        pkg.problems.warning(
            "eligibility.csv", orphans[0], "service_id",
            f"{len(orphans)} eligibility rows have no service_id, so they cannot be attached to "
            "a service; their text was not imported", table="service")
    return {sid: "\n\n".join(dict.fromkeys(parts)) for sid, parts in texts.items()}


def _services(pkg: _Package) -> Iterator[SourceRow]:
    eligibility = _eligibility(pkg)
    for line, r in pkg.rows("services.csv"):
        yield pkg.row("service", {
            "id": r.get("id"),
            "organization_id": pkg.service_org.get(r.get("id", ""), r.get("organization_id")),
            "program_id": r.get("program_id"), "name": r.get("name"),
            "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")), "url": r.get("url"),
            "email": r.get("email"), "status": r.get("status"),
            "interpretation_services": r.get("interpretation_services"),
            "application_process": clean_text(r.get("application_process")),
            "fees_description": clean_text(pick(r, "fees_description", "fees")),
            "wait_time": r.get("wait_time"), "accreditations": r.get("accreditations"),
            "licenses": r.get("licenses"),
            "eligibility_description": eligibility.get(r.get("id", ""), ""),
            "minimum_age": r.get("minimum_age"), "maximum_age": r.get("maximum_age"),
        }, "services.csv", line)


def _locations(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("locations.csv"):
        yield pkg.row("location", {
            "id": r.get("id"),
            "organization_id": pkg.location_org.get(r.get("id", ""), r.get("organization_id")),
            "name": r.get("name"), "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")),
            "transportation": clean_text(r.get("transportation")),
            "latitude": r.get("latitude"), "longitude": r.get("longitude"),
        }, "locations.csv", line)


def _services_at_location(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("services_at_location.csv"):
        yield pkg.row("service_at_location", {
            "id": r.get("id"), "service_id": r.get("service_id"),
            "location_id": r.get("location_id"), "description": clean_text(r.get("description")),
        }, "services_at_location.csv", line)


def _addresses(pkg: _Package) -> Iterator[SourceRow]:
    for name, kind, prefix in (("physical_addresses.csv", "physical", ""),
                               ("postal_addresses.csv", "postal", "postal:")):
        for line, r in pkg.rows(name):
            values = address_values(r, prefix + (r.get("id") or f"line{line}"), kind)
            if values is not None:
                yield pkg.row("address", values, name, line)


def _phones(pkg: _Package) -> Iterator[SourceRow]:
    blank: list[int] = []
    for line, r in pkg.rows("phones.csv"):
        if not r.get("number"):
            blank.append(line)
            continue
        phone_id = r.get("id") or f"line{line}"
        yield pkg.row("phone", {
            "id": phone_id, "location_id": r.get("location_id"),
            "service_id": r.get("service_id"), "organization_id": r.get("organization_id"),
            "contact_id": r.get("contact_id"),
            "service_at_location_id": r.get("service_at_location_id"),
            "number": r["number"], "extension": r.get("extension"),
            "type": phone_type(r.get("type", "")),
            "description": " ".join(filter(None, (r.get("description"), r.get("department")))),
        }, "phones.csv", line)
        for language in split_list(r.get("language", "")):
            yield pkg.row("language", {"id": f"phone:{phone_id}:{language}",
                                       "phone_id": phone_id, "name": language},
                          "phones.csv", line)
    if blank:
        pkg.problems.warning("phones.csv", blank[0], "number",
                             f"{len(blank)} phone rows have no number; skipped", table="phone")


def _contacts(pkg: _Package) -> Iterator[SourceRow]:
    partial: list[int] = []
    for line, r in pkg.rows("contacts.csv"):
        fields = ("name", "title", "department", "email")
        if not any(r.get(f) for f in fields):
            continue
        contact_id = r.get("id") or f"line{line}"
        yield pkg.row("contact", {
            "id": contact_id, "organization_id": r.get("organization_id"),
            "service_id": r.get("service_id"),
            "service_at_location_id": r.get("service_at_location_id"),
            "location_id": r.get("location_id"), **{f: r.get(f) for f in fields},
        }, "contacts.csv", line)
        number = r.get("phone_number", "")
        if not number:
            continue
        full = " ".join(filter(None, (r.get("phone_areacode"), number)))
        if len(re.sub(r"\D", "", full)) < 10:
            partial.append(line)
            continue
        yield pkg.row("phone", {"id": f"contact:{contact_id}", "contact_id": contact_id,
                                "number": full, "extension": r.get("phone_extension")},
                      "contacts.csv", line)
    if partial:
        pkg.problems.warning(
            "contacts.csv", partial[0], "phone_number",
            f"{len(partial)} contact phone numbers have fewer than 10 digits with their area "
            "code (incomplete); not imported", table="phone")


def _regular_schedules(pkg: _Package) -> Iterator[SourceRow]:
    groups: dict[tuple[str, str, str], list[tuple[int, dict[str, str]]]] = {}
    for line, r in pkg.rows("regular_schedules.csv"):
        key = (r.get("service_id", ""), r.get("location_id", ""),
               r.get("service_at_location_id", ""))
        if not any(key):
            pkg.problems.error("regular_schedules.csv", line, "service_id", "schedule row "
                               "belongs to no service or location; skipped", table="schedule")
            continue
        groups.setdefault(key, []).append((line, r))
    for (service_id, location_id, sal_id), members in groups.items():
        rows = [r for _line, r in members]
        texts = list(dict.fromkeys(clean_text(r.get("original_text")) for r in rows))
        texts = [t for t in texts if t]
        parents = {"service_id": service_id, "location_id": location_id,
                   "service_at_location_id": sal_id}
        for values in weekday_schedule_rows(rows, parents, "\n".join(texts) or None):
            yield pkg.row("schedule", values, "regular_schedules.csv", members[0][0])


def _holiday_schedules(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("holiday_schedules.csv"):
        yield from holiday_source_rows(pkg.problems, "holiday_schedules.csv", line, r,
                                       ("service_id", "location_id", "service_at_location_id"))


def holiday_source_rows(problems: Problems, file: str, line: int, r: Mapping[str, str],
                        fks: tuple[str, ...]) -> Iterator[SourceRow]:
    """Schedule rows for one holiday_schedules row, with problems reported for bad ones."""
    parents = {fk: r.get(fk, "") for fk in fks}
    if not any(parents.values()):
        problems.error(file, line, fks[0], "holiday belongs to no service or location; skipped",
                       table="schedule", source_id=r.get("id"))
        return
    base = "holiday:" + (r.get("id") or f"{schedule_id(parents)}:line{line}")
    try:
        rows = holiday_schedule_rows(r, parents, base)
    except (KeyError, ValueError) as exc:
        problems.error(file, line, "start_date", f"holiday not understood ({exc}); skipped",
                       table="schedule", source_id=r.get("id"))
        return
    for values in rows:
        yield SourceRow("schedule", values, file, line)


def _service_details(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("funding.csv"):
        yield pkg.row("funding", {"id": r.get("id") or f"line{line}",
                                  "organization_id": r.get("organization_id"),
                                  "service_id": r.get("service_id"), "source": r.get("source")},
                      "funding.csv", line)
    for line, r in pkg.rows("service_areas.csv"):
        yield pkg.row("service_area", {
            "id": r.get("id") or f"line{line}", "service_id": r.get("service_id"),
            "name": pick(r, "service_area", "name"), "description": r.get("description"),
        }, "service_areas.csv", line)
    for line, r in pkg.rows("required_documents.csv"):
        yield pkg.row("required_document", {
            "id": r.get("id") or f"line{line}", "service_id": r.get("service_id"),
            "document": r.get("document"),
        }, "required_documents.csv", line)
    for line, r in pkg.rows("payments_accepted.csv"):
        if r.get("payment"):
            yield pkg.row("attribute", {
                "id": f"payment:{r.get('id') or line}", "link_id": r.get("service_id"),
                "link_entity": "service", "label": "payments_accepted",
                "value": r.get("payment"),
            }, "payments_accepted.csv", line)


def _languages(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("languages.csv"):
        for language in split_list(r.get("language", "")):
            owner = r.get("id") or f"{r.get('service_id', '')}|{r.get('location_id', '')}"
            yield pkg.row("language", {
                "id": f"{owner}:{language}", "service_id": r.get("service_id"),
                "location_id": r.get("location_id"), "name": language,
            }, "languages.csv", line)


def _accessibility(pkg: _Package) -> Iterator[SourceRow]:
    for line, r in pkg.rows("accessibility_for_disabilities.csv"):
        description = clean_text(r.get("accessibility"))
        details = clean_text(r.get("details"))
        if description or details:
            yield pkg.row("accessibility", {
                "id": r.get("id") or f"line{line}", "location_id": r.get("location_id"),
                "description": description, "details": details,
            }, "accessibility_for_disabilities.csv", line)


def _taxonomy(pkg: _Package) -> Iterator[SourceRow]:
    file = "taxonomy.csv"
    terms: dict[str, dict[str, Any]] = {}
    vocabularies: dict[str, int] = {}
    for line, r in pkg.rows(file):
        term_id = r.get("id", "")
        if not term_id:
            pkg.problems.error(file, line, "id", "taxonomy term without id; skipped",
                               table="taxonomy_term")
            continue
        vocabulary = r.get("vocabulary", "")
        if vocabulary and vocabulary not in vocabularies:
            vocabularies[vocabulary] = line
            yield pkg.row("taxonomy", {"id": vocabulary, "name": vocabulary}, file, line)
        values = {"id": term_id, "code": taxonomy_code(term_id), "name": r.get("name"),
                  "parent_id": r.get("parent_id"), "taxonomy": vocabulary,
                  "taxonomy_id": vocabulary}
        if term_id in terms:
            if terms[term_id] != values:
                pkg.problems.warning(file, line, "id", f"taxonomy term {term_id!r} is listed "
                                     f"again as {values['name']!r}; the first was kept "
                                     f"({terms[term_id]['name']!r})", table="taxonomy_term",
                                     source_id=term_id)
            continue
        terms[term_id] = values
        yield pkg.row("taxonomy_term", values, file, line)
    for name in ("services_taxonomy.csv", "service_taxonomy.csv"):
        if (pkg.folder / name).exists():
            yield from _service_terms(pkg, name, terms)
            break


def _service_terms(pkg: _Package, file: str, terms: dict[str, dict[str, Any]]
                   ) -> Iterator[SourceRow]:
    seen: set[tuple[str, str]] = set()
    repeats = 0
    unknown: Counter[str] = Counter()
    for line, r in pkg.rows(file):
        service_id, term_id = r.get("service_id", ""), r.get("taxonomy_id", "")
        if not service_id or not term_id:
            pkg.problems.error(file, line, "service_id" if not service_id else "taxonomy_id",
                               "link without a service or a term; skipped", table="attribute")
            continue
        if (service_id, term_id) in seen:
            repeats += 1
            continue
        seen.add((service_id, term_id))
        if term_id not in terms:
            # A term the taxonomy file does not list: keep the link, with the id as its code.
            unknown[term_id] += 1
            terms[term_id] = {"id": term_id, "code": taxonomy_code(term_id)}
            yield pkg.row("taxonomy_term", terms[term_id], file, line)
        yield pkg.row("attribute", {
            "id": r.get("id") or f"{service_id}:{term_id}", "link_id": service_id,
            "link_entity": "service", "taxonomy_term_id": term_id,
            "value": r.get("taxonomy_detail"),
        }, file, line)
    if repeats:
        pkg.problems.warning(file, None, None, f"{repeats} rows repeat a service-term link "
                             "already given; each link was kept once", table="attribute")
    if unknown:
        pkg.problems.warning(file, None, "taxonomy_id", f"{len(unknown)} terms are not in "
                             f"taxonomy.csv (e.g. {next(iter(unknown))!r}); kept by code only",
                             table="taxonomy_term")


def _metadata(pkg: _Package) -> Iterator[SourceRow]:
    fields = ("id", "resource_id", "resource_type", "last_action_date", "last_action_type",
              "field_name", "previous_value", "replacement_value", "updated_by")
    for line, r in pkg.rows("metadata.csv"):
        yield pkg.row("metadata", {f: r.get(f) for f in fields}, "metadata.csv", line)
