"""The directory's tables: HSDS 3.1 fields, plus Signpost's provenance and extension columns.

The HSDS fields come from `indexer.records.HSDS_FIELDS`, so the schema, the importer, the
exporter and the HSDS API all agree on one list. Every table also records where each row came
from (`record_source`, `record_source_id`: the feed's name and the feed's own id) and a hash of
its HSDS content so a re-import writes only what changed. The four record tables (organization,
service, location, service_at_location) are deactivated rather than deleted, and remember the
fields a partner or admin edited locally (`local_edits`) so a re-import does not undo them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from indexer.records import FOREIGN_KEYS, HSDS_FIELDS, NUMBER_FIELDS, RECORD_TABLES

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

INTEGER_FIELDS = {
    ("organization", "year_incorporated"),
    ("service", "minimum_age"),
    ("service", "maximum_age"),
    ("phone", "extension"),
    ("schedule", "count"),
    ("schedule", "interval"),
}

# Extension columns per table (Signpost's knowledge beyond HSDS), see README "HSDS profile".
def _extension_columns() -> dict[str, list[Column]]:
    """New Column objects per table (a Column belongs to exactly one Table)."""
    return {
        "service": [
            Column("is_referable", Boolean, nullable=False, default=True),
            Column("is_hidden", Boolean, nullable=False, default=False),
            Column("eligibility", JSON),  # service.directory.eligibility.Eligibility.to_dict()
            Column("verified_at", DateTime(timezone=True)),
            Column("verified_by", Text),
            Column("verification_method", Text),
            Column("duplicate_of", String(36)),
        ],
        "location": [
            Column("is_confidential", Boolean, nullable=False, default=False),
            Column("geocode_precision", String(16)),  # exact | address | zip | city | state
            Column("time_zone", String(64)),  # IANA name from the coordinates, offline
        ],
        "service_at_location": [
            Column("capacity_status", String(24)),
            Column("capacity_updated_at", DateTime(timezone=True)),
        ],
        "schedule": [
            Column("is_closure", Boolean, nullable=False, default=False),  # a holiday closure
        ],
        "service_area": [
            Column("coverage", JSON),  # service.directory.service_areas.Coverage.to_dict()
        ],
    }


def _hsds_column(table: str, name: str) -> Column:
    if name == "id":
        return Column("id", String(36), primary_key=True)
    target = FOREIGN_KEYS.get(table, {}).get(name)
    if target:
        return Column(name, String(36), ForeignKey(f"{target}.id"), index=True)
    if (table, name) in INTEGER_FIELDS:
        return Column(name, Integer)
    if name in NUMBER_FIELDS.get(table, ()):
        return Column(name, Float)
    return Column(name, Text)


def _build(table: str) -> Table:
    columns = [_hsds_column(table, name) for name in HSDS_FIELDS[table]]
    columns += [
        Column("record_source", String(64), nullable=False),
        Column("record_source_id", Text, nullable=False),
        Column("row_hash", String(32), nullable=False),
    ]
    if table in RECORD_TABLES:
        columns += [
            Column("is_active", Boolean, nullable=False, default=True),
            Column("created_at", DateTime(timezone=True), nullable=False),
            Column("updated_at", DateTime(timezone=True), nullable=False),
            Column("local_edits", JSON),
        ]
    columns += _extension_columns().get(table, [])
    return Table(
        table,
        metadata,
        *columns,
        UniqueConstraint("record_source", "record_source_id"),
    )


hsds_tables: dict[str, Table] = {name: _build(name) for name in HSDS_FIELDS}
organization = hsds_tables["organization"]
service = hsds_tables["service"]
location = hsds_tables["location"]
service_at_location = hsds_tables["service_at_location"]

Index("ix_location_point", location.c.latitude, location.c.longitude)
# The few records with local edits, found without reading every record of a source: each
# import merges them (indexer.apply), and a first import of 400k records scanned them all.
for _name in RECORD_TABLES:
    _t = hsds_tables[_name]
    Index(f"ix_{_name}_edited", _t.c.record_source, sqlite_where=_t.c.local_edits.is_not(None),
          postgresql_where=_t.c.local_edits.is_not(None))
Index("ix_service_updated_at", service.c.updated_at)
# The few services listed as duplicates, by the listing they duplicate (a kept listing's
# document lists the merged listings' categories) and by source (an import's count of them).
Index("ix_service_duplicate_of", service.c.duplicate_of,
      sqlite_where=service.c.duplicate_of.is_not(None),
      postgresql_where=service.c.duplicate_of.is_not(None))
Index("ix_service_duplicates", service.c.record_source,
      sqlite_where=service.c.duplicate_of.is_not(None),
      postgresql_where=service.c.duplicate_of.is_not(None))

service_category = Table(
    "service_category",
    metadata,
    Column("service_id", String(36), ForeignKey("service.id", ondelete="CASCADE"),
           primary_key=True),
    Column("category_id", String(16), primary_key=True, index=True),
)

import_run = Table(
    "import_run",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False, index=True),
    Column("format", String(32), nullable=False),
    Column("path", Text, nullable=False),
    Column("status", String(16), nullable=False),  # running | done | failed | stopped | dry_run
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("counts", JSON),  # outcome -> count, precision -> count
    Column("problems", JSON),  # list of {severity, file, line, field, why, table, source_id}
    Column("message", Text),
)

edit_conflict = Table(
    "edit_conflict",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("table_name", String(32), nullable=False),
    Column("record_id", String(36), nullable=False, index=True),
    Column("field", String(64), nullable=False),
    Column("local_value", JSON),
    Column("source_value_at_edit", JSON),
    Column("new_source_value", JSON),
    Column("edited_by", Text),
    Column("edited_at", DateTime(timezone=True)),
    Column("detected_at", DateTime(timezone=True), nullable=False),
    Column("import_run_id", Integer, ForeignKey("import_run.id")),
    Column("resolved_at", DateTime(timezone=True)),
    Column("resolution", String(16)),  # kept_source | restored_local
)

# Partner and admin edits of a listing, as proposed or applied (service.directory.listing_edits):
# who, when, which service or location, each field's old and new value, and what became of it.
LISTING_EDIT_STATUSES = ("pending", "applied", "rejected", "reverted")

listing_edit = Table(
    "listing_edit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entity_type", String(16), nullable=False),  # service | location
    Column("service_id", String(36), ForeignKey("service.id"), index=True),
    Column("location_id", String(36), ForeignKey("location.id"), index=True),
    Column("organization_id", String(36), ForeignKey("organization.id"), index=True),
    Column("status", String(16), nullable=False),
    Column("changes", JSON, nullable=False),  # [{field, old, new, and where the value lives}]
    Column("created_by", Integer, ForeignKey("app_user.id")),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", Integer, ForeignKey("app_user.id")),  # approved or rejected by
    Column("decided_at", DateTime(timezone=True)),
    Column("decision_reason", Text),
    Column("reverted_by", Integer, ForeignKey("app_user.id")),
    Column("reverted_at", DateTime(timezone=True)),
    Column("revert_reason", Text),
    CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in LISTING_EDIT_STATUSES) + ")",
                    name="status"),
    CheckConstraint("(entity_type = 'service' AND service_id IS NOT NULL) OR "
                    "(entity_type = 'location' AND location_id IS NOT NULL)", name="entity"),
)
Index("ix_listing_edit_status_created_at", listing_edit.c.status, listing_edit.c.created_at)
