"""Turn a loader's `SourceRow` into directory rows: ids resolved, values typed, text parsed.

Everything here is per row and pure apart from the problems it reports; cross-row work
(duplicate ids, missing parents, geocoding, time zones, categories from attributes) happens on
the staged rows in `indexer.pipeline`.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from indexer.ids import directory_id
from indexer.records import (
    EXTENSION_FIELDS,
    FOREIGN_KEYS,
    HSDS_FIELDS,
    NUMBER_FIELDS,
    RECORD_TABLES,
    Problems,
    SourceRow,
)
from service.directory.tables import INTEGER_FIELDS

HSDS_STATUSES = {"active", "inactive", "defunct", "temporarily closed"}
LINK_TABLES = {"service", "organization", "location", "service_at_location", "program",
               "contact", "phone", "address", "schedule", "taxonomy_term", "taxonomy"}
BOOLEAN_EXTENSIONS = {"is_referable", "is_hidden", "is_confidential", "is_closure"}
DATETIME_EXTENSIONS = {"verified_at", "capacity_updated_at"}
PRECISIONS = {"exact", "address", "zip", "city", "state"}
CAPACITY_STATUSES = {"has_capacity", "no_capacity", "waitlist", "assessment_needed"}


class _FieldPlan:
    """How one table's HSDS fields are read, worked out once rather than for each of a large
    import's millions of fields: a row starts as `template` (the id, provenance, then each
    field but the id in schema order, all None: the key order row hashes depend on), and only
    the fields a source filled are then set, text first, then references and numbers."""

    def __init__(self, table: str, fields: list[str]) -> None:
        keys = ["id", "record_source", "record_source_id"] + [f for f in fields if f != "id"]
        self.template: dict[str, Any] = dict.fromkeys(keys)
        targets, numbers = FOREIGN_KEYS[table], NUMBER_FIELDS.get(table, ())
        fields = keys[3:]
        self.refs = [(f, targets[f]) for f in fields if targets.get(f) is not None]
        self.numbers = [f for f in fields if f in numbers and targets.get(f) is None]
        self.texts = [f for f in fields if f not in numbers and targets.get(f) is None]


_FIELD_PLANS = {table: _FieldPlan(table, fields) for table, fields in HSDS_FIELDS.items()}
_EXTENSIONS = {table: [(f, "x_" + f) for f in fields]
               for table, fields in EXTENSION_FIELDS.items()}
_ABSENT = object()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    text = str(value).strip().lower()
    if text in {"true", "t", "yes", "y", "1"}:
        return True
    if text in {"false", "f", "no", "n", "0"}:
        return False
    return None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO date or date-time as an aware UTC datetime, or None."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = _text(value)
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Normalizer:
    """Normalises the rows of one import run (one source name)."""

    def __init__(self, source: str, problems: Problems) -> None:
        self.source = source
        self.problems = problems
        self.sources_seen: set[str] = set()
        self.defaulted_status = 0
        self.tallies: Counter[str] = Counter()

    # -- ids ------------------------------------------------------------------------------------
    def _ids(self, row: SourceRow, values: dict[str, Any]) -> tuple[str, str, str, bool]:
        """(record_source, record_source_id, directory id, ids_are_directory_ids)."""
        own_source = values.get("x_source")  # None in all but Signpost's own exports
        if own_source is not None:
            own_source = _text(own_source)
        own_source_id = _text(values.get("x_source_id")) if own_source else None
        raw_id = values.get("id")
        raw_id = raw_id.strip() or None if raw_id.__class__ is str else _text(raw_id)
        if own_source and own_source_id and raw_id:
            # A package Signpost exported: keep its ids and provenance as they are.
            return own_source, own_source_id, raw_id, True
        if not raw_id:
            content = json.dumps(values, sort_keys=True, default=str)
            raw_id = "~" + hashlib.md5(content.encode()).hexdigest()[:16]
            self.problems.warning(row.file, row.line, "id",
                                  "missing id; a content-derived id was given", table=row.table)
        return self.source, raw_id, directory_id(self.source, row.table, raw_id), False

    def _ref(self, target: str, value: Any, exported: bool) -> str | None:
        text = value.strip() or None if value.__class__ is str else _text(value)
        if text is None:
            return None
        return text if exported else directory_id(self.source, target, text)

    # -- one row ------------------------------------------------------------------------------
    def normalize(self, row: SourceRow) -> dict[str, Any] | None:
        """The row as directory columns (HSDS fields, provenance, extensions), or None."""
        table = row.table
        if table not in HSDS_FIELDS:
            self.problems.warning(row.file, row.line, None, f"unknown table {table!r}; ignored")
            return None
        values = row.values
        for field, why in row.warnings:
            self.problems.warning(row.file, row.line, field, why, table=table,
                                  source_id=row.source_id)
        record_source, record_source_id, row_id, exported = self._ids(row, values)
        self.sources_seen.add(record_source)
        plan = _FIELD_PLANS[table]
        out = plan.template.copy()
        out["id"], out["record_source"], out["record_source_id"] = (
            row_id, record_source, record_source_id)
        get = values.get
        for field in plan.texts:  # most of a row, and often empty: left None
            value = get(field)
            if value.__class__ is str:
                if value:
                    out[field] = value.strip() or None  # what `_text` gives, without the call
            elif value is not None:
                out[field] = _text(value)
        for field, target in plan.refs:
            value = get(field)
            if value is not None:
                out[field] = self._ref(target, value, exported)
        for field in plan.numbers:
            value = get(field)
            if value is not None:
                out[field] = self._number(row, field, value)
        if table == "attribute":
            entity = (out.get("link_entity") or "service").strip().lower()
            if entity not in LINK_TABLES:
                entity = "service"
            out["link_id"] = self._ref(entity, values.get("link_id"), exported)
        elif table == "metadata":
            entity = (out.get("resource_type") or "").strip().lower()
            if entity in LINK_TABLES:
                out["resource_id"] = self._ref(entity, values.get("resource_id"), exported)
        self._extensions(row, table, values, out)
        if table in RECORD_TABLES and "x_is_active" in values:
            out["is_active"] = _bool(values["x_is_active"])  # from a Signpost export
        check = getattr(self, f"_check_{table}", None)
        if check is not None and check(row, out) is False:
            return None
        out["row_hash"] = _hash(out)
        return out

    def _number(self, row: SourceRow, field: str, value: Any) -> float | int | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            number = float(str(value).strip().replace(",", ""))
        except ValueError:
            self.problems.error(row.file, row.line, field, f"not a number: {value!r}",
                                table=row.table, source_id=row.source_id)
            return None
        if math.isnan(number) or math.isinf(number):
            self.problems.error(row.file, row.line, field, f"not a number: {value!r}",
                                table=row.table, source_id=row.source_id)
            return None
        if (row.table, field) in INTEGER_FIELDS:
            if not number.is_integer():
                self.problems.warning(row.file, row.line, field,
                                      f"{value!r} is not a whole number; rounded",
                                      table=row.table, source_id=row.source_id)
            return int(round(number))
        return number

    def _extensions(self, row: SourceRow, table: str, values: dict[str, Any],
                    out: dict[str, Any]) -> None:
        for field, prefixed in _EXTENSIONS.get(table, ()):
            value = values.get(field, _ABSENT)
            if value is _ABSENT:
                value = values.get(prefixed)
            if value is None:
                continue
            if field in BOOLEAN_EXTENSIONS:
                parsed = _bool(value)
                if parsed is None:
                    self.problems.error(row.file, row.line, field, f"not yes/no: {value!r}",
                                        table=table, source_id=row.source_id)
                out[field] = parsed
            elif field in DATETIME_EXTENSIONS:
                out[field] = parse_datetime(value)
            elif field == "categories":
                if isinstance(value, str):
                    value = [v for v in value.replace(";", ",").split(",")]
                out[field] = sorted({str(v).strip() for v in value if str(v).strip()})
            else:
                out[field] = _text(value)
        if table == "schedule":
            out["is_closure"] = bool(out.get("is_closure"))
        if table == "service_at_location":
            status = out.get("capacity_status")
            if status and status not in CAPACITY_STATUSES:
                self.problems.error(row.file, row.line, "capacity_status",
                                    f"unknown capacity status {status!r}", table=table,
                                    source_id=row.source_id)
                out["capacity_status"] = None

    # -- table checks ---------------------------------------------------------------------------
    def _check_service(self, row: SourceRow, out: dict[str, Any]) -> bool:
        if not out.get("name"):
            self.problems.error(row.file, row.line, "name", "service has no name; kept as "
                                "'(unnamed service)'", table="service", source_id=row.source_id)
            out["name"] = "(unnamed service)"
        status = (out.get("status") or "").lower()
        referable = out.get("is_referable")
        if not status:
            self.defaulted_status += 1
            status = "active"
        elif "do not refer" in status or "don't refer" in status:
            status, referable = "active", False
        elif status not in HSDS_STATUSES:
            mapped = "inactive" if "inactive" in status else (
                "temporarily closed" if "closed" in status else None)
            self.problems.warning(row.file, row.line, "status",
                                  f"unknown status {out.get('status')!r}; read as "
                                  f"{mapped or 'active'}", table="service",
                                  source_id=row.source_id)
            status = mapped or "active"
        out["status"] = status
        out["is_referable"] = True if referable is None else referable
        out.setdefault("is_hidden", False)
        if out.get("is_hidden") is None:
            out["is_hidden"] = False
        for field in ("minimum_age", "maximum_age"):
            age = out.get(field)
            if age is not None and not 0 <= age <= 130:
                self.problems.error(row.file, row.line, field, f"age {age} out of range 0-130",
                                    table="service", source_id=row.source_id)
                out[field] = None
        return True

    def _check_organization(self, row: SourceRow, out: dict[str, Any]) -> bool:
        if not out.get("name"):
            self.problems.error(row.file, row.line, "name", "organization has no name; kept as "
                                "'(unnamed organization)'", table="organization",
                                source_id=row.source_id)
            out["name"] = "(unnamed organization)"
        return True

    def _check_location(self, row: SourceRow, out: dict[str, Any]) -> bool:
        lat, lon = out.get("latitude"), out.get("longitude")
        if (lat is None) != (lon is None):
            self.problems.error(row.file, row.line, "latitude" if lat is None else "longitude",
                                "only one coordinate given; location will be geocoded",
                                table="location", source_id=row.source_id)
            out["latitude"] = out["longitude"] = None
        elif lat is not None:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                self.problems.error(row.file, row.line, "latitude",
                                    f"coordinates out of range ({lat}, {lon}); location will "
                                    "be geocoded", table="location", source_id=row.source_id)
                out["latitude"] = out["longitude"] = None
            elif lat == 0 and lon == 0:
                self.problems.error(row.file, row.line, "latitude",
                                    "coordinates (0, 0) are a placeholder; location will be "
                                    "geocoded", table="location", source_id=row.source_id)
                out["latitude"] = out["longitude"] = None
        if out.get("latitude") is None:
            out["geocode_precision"] = None
        elif out.get("geocode_precision") not in PRECISIONS:
            out["geocode_precision"] = "exact"
        if not out.get("location_type"):
            out["location_type"] = "physical"
        if out.get("is_confidential") is None:
            out["is_confidential"] = False
        return True

    def _check_phone(self, row: SourceRow, out: dict[str, Any]) -> bool:
        if not out.get("number"):
            self.problems.error(row.file, row.line, "number", "phone has no number; skipped",
                                table="phone", source_id=row.source_id)
            return False
        return True

    def report_totals(self, file: str) -> None:
        """Problems that are about the whole file rather than one row."""
        if self.defaulted_status:
            self.problems.warning(file, None, "status",
                                  f"{self.defaulted_status} services have no status; read as "
                                  "active")


def _hash(row: dict[str, Any]) -> str:
    # Rows of one table are built in one fixed key order (see Normalizer.normalize), so their
    # repr() is a stable fingerprint of the content.
    return hashlib.md5(repr(row).encode()).hexdigest()
