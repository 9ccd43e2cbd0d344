"""Build small, realistic HSDS 3.1 CSV packages for tests (sample data is code)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from indexer.loaders.hsds3 import CSV_FILES
from indexer.records import HSDS_FIELDS
from service.db import Database


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


def search_package() -> Package:
    """A small Washington DC / Florida directory with known answers for search tests.

    Points (lat, lon): the client stands at 20001 (38.912, -77.018).
    """
    p = Package()

    def listing(key: str, name: str, *, categories: str, lat: float | None, lon: float | None,
                description: str = "", eligibility: str = "", zip_code: str = "20001",
                state: str = "DC", city: str = "Washington", hours: tuple | None = None,
                languages: tuple[str, ...] = (), area: str | None = None,
                fees: str = "", capacity: str = "", referable: bool = True) -> None:
        p.add("organization", id=f"org-{key}", name=f"{name} Inc", description="Provider")
        p.add("service", id=key, organization_id=f"org-{key}", name=name,
              description=description, status="active", eligibility_description=eligibility,
              fees_description=fees, x_categories=categories,
              x_is_referable="true" if referable else "false")
        if lat is not None:
            p.add("location", id=f"loc-{key}", organization_id=f"org-{key}", name=name,
                  location_type="physical", latitude=lat, longitude=lon)
            p.add("service_at_location", id=f"sal-{key}", service_id=key,
                  location_id=f"loc-{key}", x_capacity_status=capacity)
            p.add("address", id=f"adr-{key}", location_id=f"loc-{key}", address_1="1 Main St",
                  city=city, state_province=state, postal_code=zip_code, country="US",
                  address_type="physical")
        p.add("phone", id=f"ph-{key}", service_id=key, number="202-555-0100", type="voice")
        if hours:
            byday, opens, closes = hours
            p.add("schedule", id=f"sch-{key}", service_id=key, freq="WEEKLY", byday=byday,
                  opens_at=opens, closes_at=closes)
        for i, code in enumerate(languages):
            p.add("language", id=f"lang-{key}-{i}", service_id=key, code=code)
        if area:
            p.add("service_area", id=f"area-{key}", service_id=key, name=area)

    listing("pantry-near", "Capitol Food Pantry", categories="1130", lat=38.915, lon=-77.020,
            description="Free groceries every week", fees="Free", languages=("en", "es"),
            hours=("MO,TU,WE,TH,FR,SA,SU", "00:00", "23:59"), capacity="has_capacity")
    listing("pantry-far", "Anacostia Food Pantry", categories="1130", lat=38.862, lon=-76.995,
            description="Groceries and produce", zip_code="20020")
    listing("pantry-out", "Bethesda Food Pantry", categories="1130", lat=38.984, lon=-77.094,
            description="Groceries", zip_code="20814", state="MD", city="Bethesda")
    listing("party", "Neighborhood Party Supplies", categories="1104", lat=38.913, lon=-77.019,
            description="Party decorations and balloons")
    listing("shelter-adults", "Adult Men's Shelter", categories="1121", lat=38.910, lon=-77.015,
            description="Emergency beds for men", eligibility="Men 18 and older only",
            capacity="waitlist")
    listing("shelter-youth", "Youth Shelter", categories="1121", lat=38.920, lon=-77.030,
            description="Emergency shelter for young people", eligibility="Youth ages 12-17")
    listing("shelter-women", "Women's Night Shelter", categories="1121", lat=38.911,
            lon=-77.016, description="Emergency beds", eligibility="Women only")
    listing("detox", "Riverside Detox Center", categories="1180", lat=38.900, lon=-77.010,
            description="Medically supervised withdrawal")
    listing("methadone", "Metro Methadone Clinic", categories="1181", lat=38.905, lon=-77.040,
            description="Methadone and buprenorphine (suboxone) treatment")
    listing("shelter-misspelt", "Night Shleter Project", categories="", lat=38.914,
            lon=-77.022, description="Beds and a warm shleter each night")
    listing("hotline-fl", "Florida Crisis Hotline", categories="1220", lat=None, lon=None,
            description="Statewide crisis counseling by phone", area="Florida")
    listing("do-not-refer", "Closed Intake Pantry", categories="1130", lat=38.913, lon=-77.017,
            description="Groceries", referable=False)
    return p


def rename_listing(db: Database, source_id: str, name: str) -> None:
    """A partner renames a listing, and its search document is rewritten at once (as the
    listing API does)."""
    from sqlalchemy import select

    from service.directory.edits import apply_local_edit
    from service.directory.tables import service
    from service.search.sqlite import SqliteSearchBackend

    with db.session(write=True) as session:
        sid = session.execute(select(service.c.id).where(
            service.c.record_source_id == source_id)).scalar_one()
        apply_local_edit(session, table="service", record_id=sid, changes={"name": name},
                         edited_by="partner:a")
        SqliteSearchBackend(db).reindex_services(session.connection(), [sid])
