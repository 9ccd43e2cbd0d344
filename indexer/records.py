"""The one shape every loader produces: HSDS 3.1 table rows keyed by the source's own ids.

A loader (HSDS 3.x JSON or CSV, HSDS 1.x, Ohana, AIRS, a flat list) yields `SourceRow`s. Each row
names its HSDS 3.1 table, carries HSDS field names with the *source's* ids in `id` and in the
foreign-key fields, and says where it came from (file and line) so that every problem can be
reported precisely. The pipeline (`indexer.pipeline`) turns source ids into directory ids,
validates, geocodes, parses hours, eligibility and service areas, and stages the rows.

Signpost knows more than HSDS: those fields are listed in `EXTENSION_FIELDS` and may be set by a
loader on the matching table (for example an AIRS loader sets `is_referable=False` for "Active,
but do not refer", or `is_confidential=True` for a private address).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# HSDS 3.1 tables and their scalar fields, in the schema's order (../shared/hsds/v3.1/schema).
HSDS_FIELDS: dict[str, tuple[str, ...]] = {
    "organization": (
        "id", "name", "alternate_name", "description", "email", "website", "tax_status",
        "tax_id", "year_incorporated", "legal_status", "logo", "uri", "parent_organization_id",
    ),
    "program": ("id", "organization_id", "name", "alternate_name", "description"),
    "service": (
        "id", "organization_id", "program_id", "name", "alternate_name", "description", "url",
        "email", "status", "interpretation_services", "application_process", "fees_description",
        "wait_time", "fees", "accreditations", "eligibility_description", "minimum_age",
        "maximum_age", "assured_date", "assurer_email", "licenses", "alert", "last_modified",
    ),
    "location": (
        "id", "location_type", "url", "organization_id", "name", "alternate_name", "description",
        "transportation", "latitude", "longitude", "external_identifier",
        "external_identifier_type",
    ),
    "service_at_location": ("id", "service_id", "location_id", "description"),
    "address": (
        "id", "location_id", "attention", "address_1", "address_2", "city", "region",
        "state_province", "postal_code", "country", "address_type",
    ),
    "phone": (
        "id", "location_id", "service_id", "organization_id", "contact_id",
        "service_at_location_id", "number", "extension", "type", "description",
    ),
    "contact": (
        "id", "organization_id", "service_id", "service_at_location_id", "location_id", "name",
        "title", "department", "email",
    ),
    "schedule": (
        "id", "service_id", "location_id", "service_at_location_id", "valid_from", "valid_to",
        "dtstart", "timezone", "until", "count", "wkst", "freq", "interval", "byday", "byweekno",
        "bymonthday", "byyearday", "description", "opens_at", "closes_at", "schedule_link",
        "attending_type", "notes",
    ),
    "service_area": (
        "id", "service_id", "service_at_location_id", "name", "description", "extent",
        "extent_type", "uri",
    ),
    "language": ("id", "service_id", "location_id", "phone_id", "name", "code", "note"),
    "accessibility": ("id", "location_id", "description", "details", "url"),
    "cost_option": (
        "id", "service_id", "valid_from", "valid_to", "option", "currency", "amount",
        "amount_description",
    ),
    "funding": ("id", "organization_id", "service_id", "source"),
    "required_document": ("id", "service_id", "document", "uri"),
    "organization_identifier": (
        "id", "organization_id", "identifier_scheme", "identifier_type", "identifier",
    ),
    "url": ("id", "label", "url", "organization_id", "service_id"),
    "unit": ("id", "name", "scheme", "identifier", "uri"),
    "service_capacity": (
        "id", "service_id", "unit_id", "available", "maximum", "description", "updated",
    ),
    "taxonomy": ("id", "name", "description", "uri", "version"),
    "taxonomy_term": (
        "id", "code", "name", "description", "parent_id", "taxonomy", "language", "taxonomy_id",
        "term_uri",
    ),
    "attribute": (
        "id", "link_id", "taxonomy_term_id", "link_type", "link_entity", "value", "label",
    ),
    "metadata": (
        "id", "resource_id", "resource_type", "last_action_date", "last_action_type",
        "field_name", "previous_value", "replacement_value", "updated_by",
    ),
}

# Foreign-key fields and the table they point at. `attribute.link_id` and `metadata.resource_id`
# point at the table named by `link_entity` / `resource_type` and are resolved by the pipeline.
FOREIGN_KEYS: dict[str, dict[str, str]] = {
    "organization": {"parent_organization_id": "organization"},
    "program": {"organization_id": "organization"},
    "service": {"organization_id": "organization", "program_id": "program"},
    "location": {"organization_id": "organization"},
    "service_at_location": {"service_id": "service", "location_id": "location"},
    "address": {"location_id": "location"},
    "phone": {
        "location_id": "location", "service_id": "service", "organization_id": "organization",
        "contact_id": "contact", "service_at_location_id": "service_at_location",
    },
    "contact": {
        "organization_id": "organization", "service_id": "service",
        "service_at_location_id": "service_at_location", "location_id": "location",
    },
    "schedule": {
        "service_id": "service", "location_id": "location",
        "service_at_location_id": "service_at_location",
    },
    "service_area": {"service_id": "service", "service_at_location_id": "service_at_location"},
    "language": {"service_id": "service", "location_id": "location", "phone_id": "phone"},
    "accessibility": {"location_id": "location"},
    "cost_option": {"service_id": "service"},
    "funding": {"organization_id": "organization", "service_id": "service"},
    "required_document": {"service_id": "service"},
    "organization_identifier": {"organization_id": "organization"},
    "url": {"organization_id": "organization", "service_id": "service"},
    "unit": {},
    "service_capacity": {"service_id": "service", "unit_id": "unit"},
    "taxonomy": {},
    "taxonomy_term": {"parent_id": "taxonomy_term", "taxonomy_id": "taxonomy"},
    "attribute": {"taxonomy_term_id": "taxonomy_term"},
    "metadata": {},
}

# HSDS fields typed as numbers in the schema.
NUMBER_FIELDS: dict[str, frozenset[str]] = {
    "organization": frozenset({"year_incorporated"}),
    "service": frozenset({"minimum_age", "maximum_age"}),
    "location": frozenset({"latitude", "longitude"}),
    "phone": frozenset({"extension"}),
    "schedule": frozenset({"timezone", "count", "interval"}),
    "cost_option": frozenset({"amount"}),
    "service_capacity": frozenset({"available", "maximum"}),
}

# Tables whose records are deactivated (never deleted) when a newer export of the same source
# no longer has them. Rows of the other tables belong to one of these and are replaced with it.
RECORD_TABLES = ("organization", "service", "location", "service_at_location")

# Signpost's own fields beyond HSDS, which a loader may set on the named table.
EXTENSION_FIELDS: dict[str, tuple[str, ...]] = {
    "service": (
        "is_referable",          # False for "active, do not refer"
        "is_hidden",             # True for records a 211 excludes from its website
        "verified_at", "verified_by", "verification_method",
        "categories",            # list of the directory's category ids (data/taxonomy)
    ),
    "location": (
        "is_confidential",       # survivor shelters: the address is never shown or exported
        "geocode_precision",     # exact | address | zip | city | state (kept from an export)
        "time_zone",             # IANA name (kept from an export; else from the coordinates)
    ),
    "schedule": (
        "is_closure",            # a holiday closure: closed between valid_from and valid_to
    ),
    "service_at_location": (
        "capacity_status",       # has_capacity | no_capacity | waitlist | assessment_needed
        "capacity_updated_at",
    ),
}


@dataclass(slots=True)
class SourceRow:
    """One HSDS 3.1 row as a source gave it, before the pipeline resolves its ids."""

    table: str
    values: dict[str, Any]
    file: str
    line: int | None = None  # 1-based line in `file`, or None when the format has no lines
    path: str | None = None  # a JSON path such as "contents[3].phones[0]" for nested formats
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (field, why), from the loader

    @property
    def source_id(self) -> str:
        return str(self.values.get("id") or "")


@dataclass(slots=True)
class Problem:
    """Something wrong with the input, precise enough for an admin to find and fix it."""

    severity: str  # "error": the value or row was not used as given; "warning": used, but note it
    file: str
    line: int | None
    field: str | None
    why: str
    table: str | None = None
    source_id: str | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        what = f" {self.table}.{self.field}" if self.table and self.field else (
            f" {self.field}" if self.field else "")
        return f"{self.severity}: {where}{what}: {self.why}"


class Problems(list[Problem]):
    """Collects every problem of one import run; loaders call `error` and `warning`."""

    def error(self, file: str, line: int | None, field: str | None, why: str, *,
              table: str | None = None, source_id: str | None = None) -> None:
        self.append(Problem("error", file, line, field, why, table, source_id))

    def warning(self, file: str, line: int | None, field: str | None, why: str, *,
                table: str | None = None, source_id: str | None = None) -> None:
        self.append(Problem("warning", file, line, field, why, table, source_id))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self if p.severity == "error"]
