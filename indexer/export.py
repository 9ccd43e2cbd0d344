"""Export the directory as an HSDS 3.1 datapackage: one CSV per table, datapackage.json, and
the same services fully nested in `services.json` (the API shape).

Every row carries its source and the source's id (`x_source`, `x_source_id`), so importing the
package into another Signpost gives the same directory with the same ids. Confidential
locations keep only the area of their address.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select

from indexer.apply import APPLY_ORDER
from indexer.loaders.hsds3 import CSV_FILES
from indexer.records import EXTENSION_FIELDS, HSDS_FIELDS, RECORD_TABLES
from service.db import Database
from service.directory.hsds import EXTRA_EXTENSIONS, full_services, redact_address, to_hsds
from service.directory.tables import hsds_tables, location, service_category

PROFILE = "https://openreferral.org/hsds/3.1"


def extension_columns(table: str) -> list[str]:
    """The x_ columns Signpost adds to a table's CSV."""
    cols = ["x_source", "x_source_id"]
    cols += ["x_" + f for f in EXTENSION_FIELDS.get(table, ()) + EXTRA_EXTENSIONS.get(table, ())]
    if table in RECORD_TABLES:
        cols.append("x_is_active")
    return cols


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return ";".join(value)
        return json.dumps(value, sort_keys=True)
    return str(value)


def export_datapackage(db: Database, out: Path, *,
                       sources: list[str] | None = None) -> dict[str, int]:
    """Write the package to `out` and return the number of rows per table."""
    out.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    resources = []
    with db.session() as session:
        categories: dict[str, list[str]] = defaultdict(list)
        for sid, cid in session.execute(select(service_category.c.service_id,
                                               service_category.c.category_id)
                                        .order_by(service_category.c.category_id)):
            categories[sid].append(cid)
        confidential = set(session.execute(select(location.c.id)
                                           .where(location.c.is_confidential)).scalars())
        for table in APPLY_ORDER:
            t = hsds_tables[table]
            query = select(t).order_by(t.c.record_source, t.c.record_source_id)
            if sources:
                query = query.where(t.c.record_source.in_(sources))
            columns = list(HSDS_FIELDS[table]) + extension_columns(table)
            if table == "service":
                columns.append("x_categories")
            file_name = CSV_FILES[table][0]
            n = 0
            with open(out / file_name, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(columns)
                for row in session.execute(query).mappings():
                    doc = to_hsds(table, row)
                    if table == "service" and categories.get(row["id"]):
                        doc["x_categories"] = categories[row["id"]]
                    if table == "address" and row["location_id"] in confidential:
                        doc = redact_address(doc)
                    writer.writerow([_csv_value(doc.get(c)) for c in columns])
                    n += 1
            counts[table] = n
            resources.append({"name": table, "path": file_name, "profile":
                              "tabular-data-resource", "schema": {"fields": [
                                  {"name": c} for c in columns]}})
        service_t = hsds_tables["service"]
        query = select(service_t.c.id).order_by(service_t.c.record_source,
                                                service_t.c.record_source_id)
        if sources:
            query = query.where(service_t.c.record_source.in_(sources))
        ids = list(session.execute(query).scalars())
        with open(out / "services.json", "w", encoding="utf-8") as handle:
            handle.write("[\n")
            for start in range(0, len(ids), 1000):
                docs = full_services(session, ids[start:start + 1000])
                for i, doc in enumerate(docs):
                    sep = ",\n" if start + i < len(ids) - 1 else "\n"
                    handle.write(json.dumps(doc, ensure_ascii=False) + sep)
            handle.write("]\n")
    descriptor = {
        "name": "signpost-export",
        "profile": "tabular-data-package",
        "hsds_profile": PROFILE,
        "version": "3.1",
        "resources": resources,
    }
    (out / "datapackage.json").write_text(json.dumps(descriptor, indent=1), encoding="utf-8")
    return counts
