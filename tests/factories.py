"""Build small, realistic HSDS 3.1 CSV packages for tests (sample data is code)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from indexer.loaders.hsds3 import CSV_FILES
from indexer.records import HSDS_FIELDS


@dataclass
class Package:
    """Rows per HSDS table; `write` puts them in a folder as a CSV datapackage."""

    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def add(self, table: str, **values: object) -> dict[str, str]:
        row = {k: "" if v is None else str(v) for k, v in values.items()}
        self.rows.setdefault(table, []).append(row)
        return row

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for table, rows in self.rows.items():
            columns = list(HSDS_FIELDS[table])
            extra = sorted({k for r in rows for k in r} - set(columns))
            with open(folder / CSV_FILES[table][0], "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, columns + extra)
                writer.writeheader()
                writer.writerows(rows)
        (folder / "datapackage.json").write_text(
            '{"name": "test", "resources": [' + ", ".join(
                f'{{"name": "{t}", "path": "{CSV_FILES[t][0]}"}}' for t in self.rows) + "]}",
            encoding="utf-8")
        return folder


def directory_package(n: int = 10, *, prefix: str = "") -> Package:
    """`n` services, each at its own location in Washington DC, with phones and hours."""
    p = Package()
    p.add("taxonomy", id="tx", name="Open Eligibility", description="Categories", version="2")
    p.add("taxonomy_term", id="food", code="1102", name="Food", description="Food",
          taxonomy_id="tx", taxonomy="Open Eligibility")
    for i in range(n):
        k = f"{prefix}{i}"
        p.add("organization", id=f"org{k}", name=f"Organization {k}", description="A provider")
        p.add("service", id=f"svc{k}", organization_id=f"org{k}", name=f"Food Pantry {k}",
              description="Groceries once a week", status="active",
              eligibility_description="Ages 18+" if i % 2 else "",
              minimum_age="" if i % 2 else "")
        p.add("location", id=f"loc{k}", organization_id=f"org{k}", name=f"Site {k}",
              location_type="physical", latitude=f"{38.90 + i * 0.001:.4f}",
              longitude=f"{-77.03 - i * 0.001:.4f}")
        p.add("service_at_location", id=f"sal{k}", service_id=f"svc{k}", location_id=f"loc{k}")
        p.add("address", id=f"adr{k}", location_id=f"loc{k}", address_1=f"{100 + i} Main St NW",
              city="Washington", state_province="DC", postal_code="20001", country="US",
              address_type="physical")
        p.add("phone", id=f"ph{k}", service_id=f"svc{k}", number="202-555-0100", type="voice")
        p.add("schedule", id=f"sch{k}", service_id=f"svc{k}", freq="WEEKLY", byday="MO,WE,FR",
              opens_at="09:00", closes_at="17:00", description="Mon, Wed, Fri 9-5")
        p.add("attribute", id=f"at{k}", link_id=f"svc{k}", taxonomy_term_id="food",
              link_type="category", link_entity="service")
    return p
