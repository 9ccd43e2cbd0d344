"""The Ohana API CSV layout (Code for America's HSDS 1.0 variant), as in its sample-csv folder.

In Ohana a service points straight at one location (`services.location_id`), a location at
its organization, and addresses come in two files: `addresses.csv` (the physical address) and
`mail_addresses.csv` (postal). Lists live in single cells ("Spanish, Tagalog"). Mapping to HSDS
3.1:

* each service gets the organization of its location and one `service_at_location` row (same
  id as the service);
* `addresses.csv` -> address (physical), `mail_addresses.csv` -> address (postal; ids
  prefixed ``mail:`` because the two files number their rows independently);
* phones attach to the contact, location, organization or service their columns name; Ohana's
  `number_type` becomes the HSDS 3.1 `type` (sms -> text, tty -> textphone, hotline -> voice),
  `department` and a vanity number go into the description;
* location `accessibility` codes -> accessibility rows with Ohana's own labels, `languages`
  -> language rows, `virtual` -> location_type "virtual"; `short_desc` is used only when there
  is no description; admin e-mails are not imported;
* service `eligibility` -> eligibility_description, `fees` -> fees_description, `website` ->
  url, `funding_sources` / `required_documents` / `service_areas` / `languages` -> rows of
  those tables; `keywords`, `audience` and `accepted_payments` have no HSDS 3.1 field and are
  kept as `attribute` rows (link_entity service) labelled with the column name, value as given;
* `taxonomy_ids` (old Open Eligibility codes such as ``101-01``) -> attribute rows linking the
  service to taxonomy_term rows whose `code` is the Open Eligibility code, so the pipeline maps
  them to directory categories; `taxonomy.csv` gives the terms' names and parents;
* organization `date_incorporated` -> year_incorporated; `funding_sources` -> funding rows;
  organization `accreditations` / `licenses` (service fields in 3.1) -> attribute rows;
* regular_schedules -> weekly rules per location or service (`rules_from_weekday_rows`), or
  one text-only row when a row cannot be read; holiday_schedules -> closure rows
  (``is_closure``), see `indexer.loaders.hsds1.holiday_schedule_rows`.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from indexer.loaders.hsds1 import (
    address_values,
    clean_text,
    holiday_source_rows,
    phone_type,
    read_csv,
    split_list,
    weekday_schedule_rows,
)
from indexer.records import Problems, SourceRow

FORMAT = "ohana"

OHANA_FILES = (
    "organizations.csv", "programs.csv", "locations.csv", "addresses.csv", "mail_addresses.csv",
    "phones.csv", "contacts.csv", "services.csv", "regular_schedules.csv",
    "holiday_schedules.csv", "taxonomy.csv",
)
# Ohana's location accessibility codes and the labels Ohana shows for them.
ACCESSIBILITY = {
    "cd": "Information on CD",
    "deaf_interpreter": "Interpreter for the deaf",
    "disabled_parking": "Disabled parking",
    "elevator": "Elevator",
    "ramp": "Ramp",
    "restroom": "Disabled restroom",
    "tape_braille": "Information on tape or in Braille",
    "tty": "TTY",
    "wheelchair": "Wheelchair accessible",
    "wheelchair_van": "Wheelchair-accessible van",
}
TAXONOMY = "open_eligibility"
TAXONOMY_NAME = "Open Eligibility (Ohana)"
SERVICE_ATTRIBUTES = ("keywords", "audience", "accepted_payments")
CODE_SPLIT = re.compile(r"[\s,;]+")


def detect(path: Path) -> bool:
    """True for a folder of Ohana CSV files (mail_addresses.csv, or services with location_id)."""
    folder = path if path.is_dir() else None
    if folder is None:
        return False
    if (folder / "mail_addresses.csv").exists():
        return True
    services = folder / "services.csv"
    if not (folder / "addresses.csv").exists() or not services.exists():
        return False
    try:
        with services.open(encoding="utf-8-sig", errors="replace") as handle:
            header = {h.strip().lower() for h in handle.readline().split(",")}
    except OSError:
        return False
    return "location_id" in header


class _Reader:
    """One Ohana folder being read."""

    def __init__(self, folder: Path, problems: Problems) -> None:
        self.folder = folder
        self.problems = problems

    def rows(self, name: str) -> Iterator[tuple[int, dict[str, str]]]:
        file = self.folder / name
        if file.exists():
            yield from read_csv(file, self.problems)

    @staticmethod
    def row(table: str, values: dict[str, Any], file: str, line: int | None) -> SourceRow:
        return SourceRow(table, {k: v for k, v in values.items() if v not in ("", None)},
                         file, line)


def read(path: Path, problems: Problems) -> Iterator[SourceRow]:
    """Yield HSDS 3.1 rows for the Ohana CSV folder at `path`."""
    folder = path if path.is_dir() else path.parent
    reader = _Reader(folder, problems)
    known = set(OHANA_FILES)
    for extra in sorted(p.name for p in folder.glob("*.csv") if p.name not in known):
        problems.warning(extra, None, None, "not an Ohana CSV file; ignored")
    location_org: dict[str, str] = {}
    yield from _organizations(reader)
    yield from _programs(reader)
    yield from _locations(reader, location_org)
    yield from _addresses(reader)
    yield from _contacts(reader)
    yield from _phones(reader)
    terms = yield from _taxonomy(reader)
    yield from _services(reader, location_org, terms)
    yield from _regular_schedules(reader)
    for line, r in reader.rows("holiday_schedules.csv"):
        yield from holiday_source_rows(problems, "holiday_schedules.csv", line, r,
                                       ("service_id", "location_id"))


def _year(value: str) -> str:
    match = re.search(r"\b(\d{4})\b", value or "")
    return match.group(1) if match and int(match.group(1)) > 1000 else ""


def _text_attribute(entity: str, link_id: str, label: str, value: str) -> dict[str, Any]:
    return {"id": f"{entity}:{link_id}:{label}", "link_id": link_id, "link_entity": entity,
            "label": label, "value": value}


def _organizations(reader: _Reader) -> Iterator[SourceRow]:
    file = "organizations.csv"
    for line, r in reader.rows(file):
        org_id = r.get("id", "")
        yield reader.row("organization", {
            "id": org_id, "name": r.get("name"), "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")), "email": r.get("email"),
            "website": r.get("website"), "tax_status": r.get("tax_status"),
            "tax_id": r.get("tax_id"), "legal_status": r.get("legal_status"),
            "year_incorporated": _year(r.get("date_incorporated", "")),
        }, file, line)
        for i, source in enumerate(split_list(r.get("funding_sources", ""))):
            yield reader.row("funding", {"id": f"organization:{org_id}:{i}",
                                         "organization_id": org_id, "source": source},
                             file, line)
        for label in ("accreditations", "licenses"):
            if r.get(label):
                yield reader.row("attribute", _text_attribute("organization", org_id, label,
                                                              r[label]), file, line)


def _programs(reader: _Reader) -> Iterator[SourceRow]:
    for line, r in reader.rows("programs.csv"):
        yield reader.row("program", {
            "id": r.get("id"), "organization_id": r.get("organization_id"),
            "name": r.get("name"), "alternate_name": r.get("alternate_name"),
        }, "programs.csv", line)


def _locations(reader: _Reader, location_org: dict[str, str]) -> Iterator[SourceRow]:
    file = "locations.csv"
    for line, r in reader.rows(file):
        loc_id = r.get("id", "")
        if loc_id and r.get("organization_id"):
            location_org[loc_id] = r["organization_id"]
        virtual = r.get("virtual", "").lower() in {"true", "t", "yes", "1"}
        yield reader.row("location", {
            "id": loc_id, "organization_id": r.get("organization_id"), "name": r.get("name"),
            "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")) or clean_text(r.get("short_desc")),
            "transportation": r.get("transportation"), "url": r.get("website"),
            "latitude": r.get("latitude"), "longitude": r.get("longitude"),
            "location_type": "virtual" if virtual else "physical",
        }, file, line)
        for code in split_list(r.get("accessibility", "")):
            key = code.lower().replace(" ", "_")
            yield reader.row("accessibility", {
                "id": f"{loc_id}:{key}", "location_id": loc_id,
                "description": ACCESSIBILITY.get(key, code),
            }, file, line)
        for language in split_list(r.get("languages", "")):
            yield reader.row("language", {"id": f"location:{loc_id}:{language}",
                                          "location_id": loc_id, "name": language}, file, line)


def _addresses(reader: _Reader) -> Iterator[SourceRow]:
    for file, kind, prefix in (("addresses.csv", "physical", ""),
                               ("mail_addresses.csv", "postal", "mail:")):
        for line, r in reader.rows(file):
            values = address_values(r, prefix + (r.get("id") or f"line{line}"), kind)
            if values is not None:
                yield reader.row("address", values, file, line)


def _contacts(reader: _Reader) -> Iterator[SourceRow]:
    for line, r in reader.rows("contacts.csv"):
        yield reader.row("contact", {
            "id": r.get("id"), "location_id": r.get("location_id"),
            "organization_id": r.get("organization_id"), "service_id": r.get("service_id"),
            "name": r.get("name"), "title": r.get("title"), "email": r.get("email"),
            "department": r.get("department"),
        }, "contacts.csv", line)


def _phones(reader: _Reader) -> Iterator[SourceRow]:
    file = "phones.csv"
    for line, r in reader.rows(file):
        kind = r.get("number_type", "")
        number = r.get("number", "")
        prefix = r.get("country_prefix", "").strip()
        if prefix and prefix not in {"1", "+1"} and number and not number.startswith("+"):
            number = f"{prefix if prefix.startswith('+') else '+' + prefix} {number}"
        description = r.get("department", "")
        if kind.lower() == "hotline" and "hotline" not in description.lower():
            description = " ".join(filter(None, (description, "(hotline)")))
        if r.get("vanity_number"):
            description = " ".join(filter(None, (description, f"({r['vanity_number']})")))
        yield reader.row("phone", {
            "id": r.get("id"), "contact_id": r.get("contact_id"),
            "location_id": r.get("location_id"), "organization_id": r.get("organization_id"),
            "service_id": r.get("service_id"), "number": number,
            "extension": r.get("extension"), "type": phone_type(kind),
            "description": description,
        }, file, line)


def _taxonomy(reader: _Reader) -> Generator[SourceRow, None, set[str]]:
    """Terms of taxonomy.csv; returns the ids seen (the generator's return value)."""
    file = "taxonomy.csv"
    terms: set[str] = set()
    first = True
    for line, r in reader.rows(file):
        term_id = r.get("taxonomy_id") or r.get("id", "")
        if not term_id or term_id in terms:
            continue
        if first:
            yield reader.row("taxonomy", {"id": TAXONOMY, "name": TAXONOMY_NAME}, file, line)
            first = False
        terms.add(term_id)
        yield reader.row("taxonomy_term", {
            "id": term_id, "code": term_id, "name": r.get("name"),
            "parent_id": r.get("parent_id"), "taxonomy": TAXONOMY_NAME,
            "taxonomy_id": TAXONOMY,
        }, file, line)
    return terms


def _services(reader: _Reader, location_org: dict[str, str], terms: set[str]
              ) -> Iterator[SourceRow]:
    file = "services.csv"
    unknown: list[str] = []
    for line, r in reader.rows(file):
        sid = r.get("id", "")
        loc_id = r.get("location_id", "")
        if loc_id and loc_id not in location_org:
            reader.problems.warning(file, line, "location_id", f"location {loc_id!r} is not in "
                                    "locations.csv (or has no organization); the service has "
                                    "no organization", table="service", source_id=sid)
        yield reader.row("service", {
            "id": sid, "organization_id": location_org.get(loc_id, ""),
            "program_id": r.get("program_id"), "name": r.get("name"),
            "alternate_name": r.get("alternate_name"),
            "description": clean_text(r.get("description")), "url": r.get("website"),
            "email": r.get("email"), "status": r.get("status"),
            "interpretation_services": r.get("interpretation_services"),
            "application_process": clean_text(r.get("application_process")),
            "fees_description": clean_text(r.get("fees")), "wait_time": r.get("wait_time"),
            "eligibility_description": clean_text(r.get("eligibility")),
        }, file, line)
        if loc_id:
            yield reader.row("service_at_location", {"id": sid, "service_id": sid,
                                                     "location_id": loc_id}, file, line)
        for label in SERVICE_ATTRIBUTES:
            if r.get(label):
                yield reader.row("attribute", _text_attribute("service", sid, label, r[label]),
                                 file, line)
        for i, source in enumerate(split_list(r.get("funding_sources", ""))):
            yield reader.row("funding", {"id": f"service:{sid}:{i}", "service_id": sid,
                                         "source": source}, file, line)
        for i, document in enumerate(split_list(r.get("required_documents", ""))):
            yield reader.row("required_document", {"id": f"{sid}:{i}", "service_id": sid,
                                                   "document": document}, file, line)
        for i, area in enumerate(split_list(r.get("service_areas", ""))):
            yield reader.row("service_area", {"id": f"{sid}:{i}", "service_id": sid,
                                              "name": area}, file, line)
        for language in split_list(r.get("languages", "")):
            yield reader.row("language", {"id": f"service:{sid}:{language}",
                                          "service_id": sid, "name": language}, file, line)
        codes = [c for c in CODE_SPLIT.split(r.get("taxonomy_ids", "")) if c]
        for code in dict.fromkeys(codes):
            if code not in terms:
                terms.add(code)
                unknown.append(code)
                yield reader.row("taxonomy_term", {"id": code, "code": code,
                                                   "taxonomy_id": TAXONOMY}, file, line)
            yield reader.row("attribute", {
                "id": f"{sid}:{code}", "link_id": sid, "link_entity": "service",
                "taxonomy_term_id": code,
            }, file, line)
    if unknown:
        reader.problems.warning(file, None, "taxonomy_ids", f"{len(unknown)} taxonomy ids are "
                                f"not in taxonomy.csv (e.g. {unknown[0]!r}); kept by code only",
                                table="taxonomy_term")


def _regular_schedules(reader: _Reader) -> Iterator[SourceRow]:
    file = "regular_schedules.csv"
    groups: dict[tuple[str, str], list[tuple[int, dict[str, str]]]] = {}
    for line, r in reader.rows(file):
        key = (r.get("service_id", ""), r.get("location_id", ""))
        if not any(key):
            reader.problems.error(file, line, "location_id", "schedule row belongs to no "
                                  "service or location; skipped", table="schedule",
                                  source_id=r.get("id"))
            continue
        groups.setdefault(key, []).append((line, r))
    for (service_id, location_id), members in groups.items():
        parents = {"service_id": service_id, "location_id": location_id}
        rows = [r for _line, r in members]
        for values in weekday_schedule_rows(rows, parents):
            yield reader.row("schedule", values, file, members[0][0])
