"""Open Referral HSDS 3.x: nested JSON (API-shaped) and the CSV tabular datapackage.

JSON may be one object (a service, organization, service_at_location, location, taxonomy or
taxonomy_term), a list of them, a paged API response (`contents`), a tabular bundle
(`{"services.csv": [...], ...}`), or newline-delimited JSON. Nested objects are flattened into
their HSDS tables with the parent's id written into the child's foreign key.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexer.records import HSDS_FIELDS, Problems, SourceRow

FORMAT = "hsds3"

# The CSV file each table is published in (HSDS 3 datapackage resource paths), and accepted
# alternatives seen in the wild.
CSV_FILES: dict[str, tuple[str, ...]] = {
    "organization": ("organizations.csv", "organization.csv"),
    "program": ("programs.csv", "program.csv"),
    "service": ("services.csv", "service.csv"),
    "location": ("locations.csv", "location.csv"),
    "service_at_location": ("service_at_location.csv", "services_at_location.csv",
                            "service_at_locations.csv"),
    "address": ("addresses.csv", "address.csv"),
    "phone": ("phones.csv", "phone.csv"),
    "contact": ("contacts.csv", "contact.csv"),
    "schedule": ("schedules.csv", "schedule.csv"),
    "service_area": ("service_areas.csv", "service_area.csv"),
    "language": ("languages.csv", "language.csv"),
    "accessibility": ("accessibility.csv",),
    "cost_option": ("cost_options.csv", "cost_option.csv"),
    "funding": ("funding.csv",),
    "required_document": ("required_documents.csv", "required_document.csv"),
    "organization_identifier": ("organization_identifiers.csv", "organization_identifier.csv"),
    "url": ("url.csv", "urls.csv"),
    "unit": ("units.csv", "unit.csv"),
    "service_capacity": ("service_capacity.csv", "service_capacities.csv"),
    "taxonomy": ("taxonomies.csv", "taxonomy.csv"),
    "taxonomy_term": ("taxonomy_terms.csv", "taxonomy_term.csv"),
    "attribute": ("attributes.csv", "attribute.csv"),
    "metadata": ("metadata.csv",),
}
IGNORED_FILES = {"meta_table_descriptions.csv", "datapackage.json"}

# Nested JSON: for each table, its keys that hold child objects -> (child table, how to link).
# "child_fk": the child's field that gets the parent's id; "parent_fk": the parent's field that
# gets the child's id (the child is a one-to-one object such as service.organization).
NESTED: dict[str, dict[str, tuple[str, str, str]]] = {
    "service": {
        "organization": ("organization", "parent_fk", "organization_id"),
        "program": ("program", "parent_fk", "program_id"),
        "phones": ("phone", "child_fk", "service_id"),
        "schedules": ("schedule", "child_fk", "service_id"),
        "service_areas": ("service_area", "child_fk", "service_id"),
        "service_at_locations": ("service_at_location", "child_fk", "service_id"),
        "languages": ("language", "child_fk", "service_id"),
        "funding": ("funding", "child_fk", "service_id"),
        "cost_options": ("cost_option", "child_fk", "service_id"),
        "required_documents": ("required_document", "child_fk", "service_id"),
        "contacts": ("contact", "child_fk", "service_id"),
        "capacities": ("service_capacity", "child_fk", "service_id"),
        "additional_urls": ("url", "child_fk", "service_id"),
    },
    "organization": {
        "funding": ("funding", "child_fk", "organization_id"),
        "contacts": ("contact", "child_fk", "organization_id"),
        "phones": ("phone", "child_fk", "organization_id"),
        "locations": ("location", "child_fk", "organization_id"),
        "programs": ("program", "child_fk", "organization_id"),
        "organization_identifiers": ("organization_identifier", "child_fk", "organization_id"),
        "additional_websites": ("url", "child_fk", "organization_id"),
        "services": ("service", "child_fk", "organization_id"),
    },
    "service_at_location": {
        "service": ("service", "parent_fk", "service_id"),
        "location": ("location", "parent_fk", "location_id"),
        "service_areas": ("service_area", "child_fk", "service_at_location_id"),
        "contacts": ("contact", "child_fk", "service_at_location_id"),
        "phones": ("phone", "child_fk", "service_at_location_id"),
        "schedules": ("schedule", "child_fk", "service_at_location_id"),
    },
    "location": {
        "languages": ("language", "child_fk", "location_id"),
        "addresses": ("address", "child_fk", "location_id"),
        "contacts": ("contact", "child_fk", "location_id"),
        "accessibility": ("accessibility", "child_fk", "location_id"),
        "phones": ("phone", "child_fk", "location_id"),
        "schedules": ("schedule", "child_fk", "location_id"),
    },
    "contact": {"phones": ("phone", "child_fk", "contact_id")},
    "phone": {"languages": ("language", "child_fk", "phone_id")},
    "attribute": {"taxonomy_term": ("taxonomy_term", "parent_fk", "taxonomy_term_id")},
    "taxonomy_term": {"taxonomy_detail": ("taxonomy", "parent_fk", "taxonomy_id")},
    "service_capacity": {"unit": ("unit", "parent_fk", "unit_id")},
    "program": {"services": ("service", "child_fk", "program_id")},
}
# Every object may carry attributes and metadata about itself.
LINKED_KEYS = {"attributes": "attribute", "metadata": "metadata"}
LIST_EXTENSIONS = {"x_categories", "x_eligibility", "x_coverage"}


def detect(path: Path) -> bool:
    """True for an HSDS 3.x datapackage folder, its datapackage.json, or an HSDS JSON file."""
    if path.is_dir():
        package = path / "datapackage.json"
        if package.exists():
            return _package_is_hsds3(package)
        return (path / "services.csv").exists() and (path / "service_at_location.csv").exists()
    if path.name == "datapackage.json":
        return _package_is_hsds3(path)
    return path.suffix.lower() in {".json", ".ndjson", ".jsonl"}


def _package_is_hsds3(package: Path) -> bool:
    try:
        descriptor = json.loads(package.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    names = {r.get("path") for r in descriptor.get("resources", [])}
    # HSDS 3 packages name service_at_location.csv and schedules.csv; 1.x used other names.
    return "service_at_location.csv" in names or "schedules.csv" in names


def read(path: Path, problems: Problems) -> Iterator[SourceRow]:
    """Yield every HSDS row in the file or package at `path`."""
    tables = files(path, problems)
    if tables is None:
        yield from _read_json(path, problems)
        return
    for table, file in tables:
        yield from read_csv_table(file, table, problems)


# --- CSV datapackage -------------------------------------------------------------------------


def files(path: Path, problems: Problems) -> list[tuple[str, Path]] | None:
    """The tables of the CSV package at `path` and their files, in reading order (parents
    first), each read with `read_csv_table`; None when `path` is JSON. Warns of CSV files that
    are not HSDS tables."""
    if not (path.is_dir() or path.name == "datapackage.json"):
        return None
    folder = path if path.is_dir() else path.parent
    known = {name for names in CSV_FILES.values() for name in names} | IGNORED_FILES
    for extra in sorted(p.name for p in folder.glob("*.csv") if p.name not in known):
        problems.warning(extra, None, None, "not an HSDS 3.1 table; file ignored")
    found = []
    for table, names in CSV_FILES.items():
        file = next((folder / n for n in names if (folder / n).exists()), None)
        if file is not None:
            found.append((table, file))
    return found


def decode(file: Path, problems: Problems) -> str:
    """The file's text: UTF-8 (BOM allowed), else Windows-1252 with a warning naming the line."""
    raw = file.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        problems.warning(file.name, line, None,
                         f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); read as Windows-1252")
        return raw.decode("cp1252", errors="replace")


def read_csv_table(file: Path, table: str, problems: Problems) -> Iterator[SourceRow]:
    """Rows of one HSDS CSV table, each with its file name and line number."""
    text = decode(file, problems)
    reader = csv.reader(io.StringIO(text, newline=""), strict=False)
    try:
        header = [h.strip().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        problems.warning(file.name, 1, None, "empty file")
        return
    except csv.Error as exc:
        problems.error(file.name, 1, None, f"unreadable CSV header: {exc}")
        return
    fields = set(HSDS_FIELDS[table])
    unknown = [h for h in header if h and h not in fields and not h.startswith("x_")]
    if unknown:
        problems.warning(file.name, 1, ", ".join(unknown),
                         "columns not in HSDS 3.1 for this table; kept only where Signpost "
                         "knows them")
    width = len(header)
    name = file.name
    line = 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.error(file.name, reader.line_num, None, f"unreadable CSV row: {exc}",
                           table=table)
            break
        line_start = line + 1
        line = reader.line_num
        if not (values and values[0].strip()) and not any(v.strip() for v in values):
            continue  # a blank row (the first field, most often an id, says so at once)
        if len(values) != width:
            problems.error(
                file.name, line_start, None,
                f"row has {len(values)} fields, header has {width} (truncated or misquoted row)",
                table=table,
            )
            if len(values) < width and not text.endswith(("\n", "\r")) and line == _last(text):
                continue  # a cut-off last row: its values cannot be trusted
            values = (values + [""] * width)[:width]
        yield SourceRow(table, dict(zip(header, values, strict=True)), name, line_start)


def _last(text: str) -> int:
    return text.count("\n") + 1


# --- nested JSON ------------------------------------------------------------------------------


def _read_json(path: Path, problems: Problems) -> Iterator[SourceRow]:
    text = decode(path, problems)
    if path.suffix.lower() in {".ndjson", ".jsonl"}:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                problems.error(path.name, number, None, f"not valid JSON: {exc}")
                continue
            yield from _flatten(item, _guess_table(item), path.name, f"line {number}", problems,
                                line=number)
        return
    try:
        document = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        problems.error(path.name, line, None, f"not valid JSON (truncated?): {exc}")
        return
    yield from _walk_document(document, path.name, problems)


def _walk_document(document: Any, file: str, problems: Problems) -> Iterator[SourceRow]:
    if isinstance(document, list):
        for i, item in enumerate(document):
            yield from _flatten(item, _guess_table(item), file, f"[{i}]", problems)
    elif isinstance(document, dict) and isinstance(document.get("contents"), list):
        for i, item in enumerate(document["contents"]):
            yield from _flatten(item, _guess_table(item), file, f"contents[{i}]", problems)
    elif isinstance(document, dict) and any(k.endswith(".csv") for k in document):
        by_file = {name: table for table, names in CSV_FILES.items() for name in names}
        for key, rows in document.items():
            table = by_file.get(key)
            if table is None or not isinstance(rows, list):
                if key not in IGNORED_FILES and key != "meta_table_descriptions.csv":
                    problems.warning(file, None, key, "not an HSDS 3.1 table; ignored")
                continue
            for i, row in enumerate(rows):
                yield from _flatten(row, table, file, f"{key}[{i}]", problems)
    elif isinstance(document, dict):
        yield from _flatten(document, _guess_table(document), file, "", problems)
    else:
        problems.error(file, None, None, "expected a JSON object or list of objects")


def _guess_table(item: Any) -> str | None:
    """Which HSDS object a top-level JSON object is, from the fields it carries."""
    if not isinstance(item, dict):
        return None
    keys = set(item)
    if "service_at_locations" in keys or "status" in keys or "eligibility_description" in keys:
        return "service"
    if isinstance(item.get("service"), dict) or isinstance(item.get("location"), dict):
        return "service_at_location"
    if "service_id" in keys and "location_id" in keys and "name" not in keys:
        return "service_at_location"
    if "location_type" in keys or "addresses" in keys or "latitude" in keys:
        return "location"
    if "taxonomy_detail" in keys or "term_uri" in keys or "code" in keys and "name" in keys:
        return "taxonomy_term"
    if "year_incorporated" in keys or "locations" in keys or "services" in keys \
            or "tax_status" in keys or "legal_status" in keys:
        return "organization"
    if "version" in keys and "name" in keys:
        return "taxonomy"
    if "name" in keys and "description" in keys:
        return "organization"
    return None


def _flatten(item: Any, table: str | None, file: str, path: str, problems: Problems,
             *, line: int | None = None) -> Iterator[SourceRow]:
    if table is None or not isinstance(item, dict):
        problems.error(file, line, None, f"{path or 'document'}: not a recognisable HSDS object")
        return
    # Scalars only (HSDS allows extra fields; the pipeline keeps those it knows), plus the
    # list-valued extension fields Signpost writes itself.
    values = {k: v for k, v in item.items()
              if not isinstance(v, (list, dict)) or k in LIST_EXTENSIONS}
    children: list[tuple[Any, str, str]] = []
    for key, (child_table, link, fk) in NESTED.get(table, {}).items():
        child = item.get(key)
        if child is None:
            continue
        objects = child if isinstance(child, list) else [child]
        for i, obj in enumerate(objects):
            if not isinstance(obj, dict):
                problems.error(file, line, key, f"{path}.{key}: expected an object", table=table)
                continue
            if link == "parent_fk":
                if obj.get("id") is not None and not values.get(fk):
                    values[fk] = obj["id"]
            else:
                obj = {**obj, fk: obj.get(fk) or item.get("id")}
            suffix = f"[{i}]" if isinstance(child, list) else ""
            children.append((obj, child_table, f"{path}.{key}{suffix}"))
    for key, child_table in LINKED_KEYS.items():
        for i, obj in enumerate(item.get(key) or []):
            if not isinstance(obj, dict):
                continue
            if child_table == "attribute":
                obj = {"link_entity": table, **obj, "link_id": obj.get("link_id") or item.get("id")}
                if obj.get("taxonomy_term") and not obj.get("taxonomy_term_id"):
                    obj["taxonomy_term_id"] = obj["taxonomy_term"].get("id")
            else:
                obj = {"resource_type": table, **obj,
                       "resource_id": obj.get("resource_id") or item.get("id")}
            children.append((obj, child_table, f"{path}.{key}[{i}]"))
    yield SourceRow(table, values, file, line, path or None)
    for obj, child_table, child_path in children:
        yield from _flatten(obj, child_table, file, child_path, problems, line=line)
