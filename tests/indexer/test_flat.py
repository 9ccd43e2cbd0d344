"""Flat-list loader: every mapping against its real file, known records, and bad input.

Expected counts are computed here from the raw files with `csv`/`json`, independently of the
loader. Files bundled in data/demo are read from there; the others (NYC Open Data, Capital Area
Food Bank) come from ../shared and are marked `shared`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from indexer.loaders import flat
from indexer.records import HSDS_FIELDS, Problem, Problems, SourceRow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo"
SHARED = REPO.parent / "shared" / "datasets"
NYC = SHARED / "nyc_open_data_human_services"
US_BOUNDS = (-180.0, 17.0, -64.0, 72.0)
DC_REGION = (-78.0, 38.3, -76.3, 39.6)



# -- helpers --------------------------------------------------------------------------------------

class Loaded:
    """One file read through one mapping: rows by table, stats, problems."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.problems = Problems()
        self.stats = flat.FlatStats()
        self.rows: list[SourceRow] = list(
            flat.read(path, self.problems, mapping=source, stats=self.stats))
        self.by_table: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            self.by_table.setdefault(row.table, []).append(row.values)

    def table(self, name: str) -> list[dict[str, Any]]:
        """All rows of one HSDS table."""
        return self.by_table.get(name, [])

    def service(self, name: str, street: str | None = None) -> dict[str, Any]:
        """The one service with this exact name (at this street address, if given)."""
        found = [s for s in self.table("service") if s["name"] == name]
        if street is not None:
            streets = {a["id"]: a.get("address_1") for a in self.table("address")}
            found = [s for s in found if streets.get(s["id"]) == street]
        assert len(found) == 1, (name, len(found))
        return found[0]

    def linked(self, table: str, service: dict[str, Any]) -> list[dict[str, Any]]:
        """Rows of `table` that belong to the service (or its location)."""
        sid = service["id"]
        return [r for r in self.table(table)
                if sid in (r.get("id"), r.get("service_id"), r.get("location_id"))]

    def one(self, table: str, service: dict[str, Any]) -> dict[str, Any]:
        """The single linked row of a one-per-service table."""
        rows = self.linked(table, service)
        assert len(rows) == 1, (table, rows)
        return rows[0]


_CACHE: dict[tuple[Path, str], Loaded] = {}


def load(path: Path, source: str) -> Loaded:
    """Read a file once per test session."""
    key = (path, source)
    if key not in _CACHE:
        _CACHE[key] = Loaded(path, source)
    return _CACHE[key]


def raw_rows(path: Path) -> list[dict[str, str]]:
    """The file's data rows as the csv module reads them (BOM stripped, header trimmed)."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, row, strict=False)) for row in reader if row]


def features(path: Path) -> list[dict[str, Any]]:
    """A GeoJSON file's features."""
    return json.loads(path.read_text(encoding="utf-8"))["features"]


def is_float(text: str) -> bool:
    """True when the text parses as a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def has_coordinates(lat: str, lon: str, bounds: tuple[float, float, float, float] | None) -> bool:
    """Numeric, in range, not (0, 0) and inside the mapping's bounds (if any)."""
    lat, lon = lat.strip(), lon.strip()
    if not (is_float(lat) and is_float(lon)):
        return False
    y, x = float(lat), float(lon)
    if (y, x) == (0.0, 0.0) or not (-90 <= y <= 90 and -180 <= x <= 180):
        return False
    return bounds is None or (bounds[0] <= x <= bounds[2] and bounds[1] <= y <= bounds[3])


def zero_stripped(zip_text: str) -> bool:
    """A ZIP that lost its leading zeros: 3 or 4 digits, not starting with 0 (ZIP+4 too)."""
    return re.fullmatch(r"[1-9]\d{2,3}(-\d{4})?", zip_text.strip()) is not None


def first_repeats(rows: list[dict[str, str]], skip: set[str] = frozenset()) -> int:
    """Rows that exactly repeat an earlier row (ignoring the `skip` columns)."""
    seen: set[tuple[str, ...]] = set()
    repeats = 0
    for row in rows:
        key = tuple(v.strip() for k, v in row.items() if k not in skip)
        if key in seen:
            repeats += 1
        seen.add(key)
    return repeats


def check_shape(loaded: Loaded, *, kept: int, coords: int) -> None:
    """Every kept row has its service, location, address link and valid HSDS fields."""
    services = loaded.table("service")
    assert len(services) == kept == loaded.stats.loaded
    assert len(loaded.table("location")) == kept
    assert len(loaded.table("service_at_location")) == kept
    assert sum("latitude" in loc for loc in loaded.table("location")) == coords
    assert loaded.stats.with_coordinates == coords
    assert len({s["id"] for s in services}) == kept, "service ids are unique"
    org_ids = {o["id"] for o in loaded.table("organization")}
    assert {s["organization_id"] for s in services} <= org_ids
    for row in loaded.rows:
        allowed = set(HSDS_FIELDS[row.table]) | {"categories"}
        assert set(row.values) <= allowed, (row.table, set(row.values) - allowed)
        assert row.file == str(loaded.path)
    for loc in loaded.table("location"):
        if "latitude" in loc:
            assert isinstance(loc["latitude"], float) and isinstance(loc["longitude"], float)
    for adr in loaded.table("address"):
        assert re.fullmatch(r"\d{5}", adr.get("postal_code", "00000")), adr


# -- mappings -------------------------------------------------------------------------------------

def test_every_mapping_loads_and_is_valid() -> None:
    """Every mapping file compiles and declares what detection and reports need."""
    mappings = flat.load_mappings()
    assert len(mappings) >= 18
    for source, mapping in mappings.items():
        assert mapping.source == source
        assert mapping.files and mapping.detect_columns and mapping.id_columns
        assert mapping.licence and mapping.attribution
        assert mapping.fields["service"].get("name") or mapping.fields["organization"].get("name")


def mapping_categories() -> set[str]:
    """Every category id any mapping can set."""
    ids: set[str] = set()
    for mapping in flat.load_mappings().values():
        ids |= set(mapping.categories)
        for rule in mapping.rules:
            ids |= set(rule.categories)
        for f in mapping.flags:
            ids |= set(f.categories)
    return ids


@pytest.mark.shared
def test_category_ids_are_open_eligibility_ids() -> None:
    """Every category id a mapping sets exists in the Open Eligibility v2 XML."""
    tree = ET.parse(SHARED / "open_eligibility" / "taxonomy_v2.xml")
    known = {e.get("id") for e in tree.getroot().find("services").iter() if e.get("id")}
    assert mapping_categories() <= known, mapping_categories() - known


def test_category_ids_are_directory_categories() -> None:
    """Every category id a mapping sets is one of the directory's categories."""
    path = REPO / "data" / "taxonomy" / "categories.json"
    if not path.exists():
        pytest.skip("data/taxonomy/categories.json not written yet")
    known = {c["id"] for c in json.loads(path.read_text(encoding="utf-8"))}
    assert mapping_categories() <= known, mapping_categories() - known


def test_bad_mapping_is_rejected() -> None:
    """Typos in a mapping fail loudly when it is loaded."""
    with pytest.raises(flat.MappingError, match="unknown keys"):
        flat.FlatMapping.from_dict({"source": "x", "files": ["*.csv"], "colums": []})
    with pytest.raises(flat.MappingError, match="no settable field"):
        flat.FlatMapping.from_dict({"source": "x", "files": ["*.csv"],
                                    "service": {"nmae": "{a}"}})
    with pytest.raises(flat.MappingError, match="unknown filter"):
        flat.FlatMapping.from_dict({"source": "x", "files": ["*.csv"],
                                    "service": {"name": "{a|shout}"}})


# -- detection ------------------------------------------------------------------------------------

DEMO_SOURCES = {
    "samhsa_mental_health_facilities.csv": "samhsa_mental_health",
    "samhsa_substance_use_treatment_facilities.csv": "samhsa_substance_use",
    "samhsa_opioid_treatment_programs.csv": "samhsa_opioid_treatment",
    "hrsa_fqhc_sites.csv": "hrsa_fqhc",
    "hud_pha_contacts.csv": "hud_pha_contacts",
    "va_facilities_fy18q2.csv": "va_facilities",
    "usda_farmers_markets.csv": "usda_farmers_markets",
    "snap_retailers_dc.geojson": "usda_snap_retailers_dc",
    "snap_retailers_dc_border_counties.geojson": "usda_snap_retailers_dc_border",
    "dc_homeless_shelter_locations.csv": "dc_dhs_homeless_shelters",
    "dc_homeless_service_facilities.csv": "dc_dhs_homeless_service_facilities",
}
SHARED_SOURCES = {
    "nyc_open_data_human_services/nyc_hra_job_centers.csv": "nyc_hra_job_centers",
    "nyc_open_data_human_services/nyc_hra_snap_centers.csv": "nyc_hra_snap_centers",
    "nyc_open_data_human_services/nyc_dhs_homebase_locations.csv": "nyc_dhs_homebase",
    "nyc_open_data_human_services/nyc_dhs_drop_in_centers.csv": "nyc_dhs_drop_in_centers",
    "nyc_open_data_human_services/nyc_dycd_runaway_homeless_youth.csv":
        "nyc_dycd_runaway_homeless_youth",
    "nyc_open_data_human_services/nyc_doh_health_insurance_enrollment_sites.csv":
        "nyc_doh_health_insurance_enrollment",
    "cafb_food_pantries_dc_region/cafb_food_pantries_2025-08-08.csv": "cafb_food_pantries",
}


@pytest.mark.parametrize(("name", "source"), sorted(DEMO_SOURCES.items()))
def test_detect_demo_files(name: str, source: str) -> None:
    """Each bundled file is matched to its mapping."""
    mapping = flat.detect(DEMO / name)
    assert mapping is not None and mapping.source == source


@pytest.mark.shared
@pytest.mark.parametrize(("name", "source"), sorted(SHARED_SOURCES.items()))
def test_detect_shared_files(name: str, source: str) -> None:
    """Each shared-only file is matched to its mapping."""
    mapping = flat.detect(SHARED / name)
    assert mapping is not None and mapping.source == source


def test_detect_by_header_when_renamed(tmp_path: Path) -> None:
    """Columns identify a renamed file; an unknown CSV matches nothing."""
    # A renamed HUD export is still recognised by its columns; an unknown CSV is not.
    renamed = tmp_path / "export.csv"
    renamed.write_bytes((DEMO / "hud_pha_contacts.csv").read_bytes()[:2000])
    assert flat.detect(renamed).source == "hud_pha_contacts"
    other = tmp_path / "other.csv"
    other.write_text("a,b,c\n1,2,3\n", encoding="utf-8")
    assert flat.detect(other) is None
    problems = Problems()
    assert list(flat.read(other, problems)) == []
    assert problems.errors and "no flat-list mapping" in problems.errors[0].why


def test_loader_registry_picks_flat_for_demo_files() -> None:
    """`find_loader` hands flat lists to this loader with their source name."""
    from indexer.loaders import find_loader

    loader = find_loader(DEMO / "va_facilities_fy18q2.csv")
    assert loader.format == "flat:va_facilities"
    assert loader.default_source == "va_facilities"


# -- SAMHSA ---------------------------------------------------------------------------------------

def test_samhsa_mental_health_counts() -> None:
    """Rows, repeats, coordinates and restored ZIPs match the raw file."""
    path = DEMO / "samhsa_mental_health_facilities.csv"
    raw = raw_rows(path)
    loaded = load(path, "samhsa_mental_health")
    assert len(raw) == loaded.stats.rows == 11375
    repeats = first_repeats(raw, skip={""})  # the first column is R's row index
    assert loaded.stats.duplicates == repeats == 342
    kept = len(raw) - repeats
    unique = list({tuple(r[k] for k in r if k): r for r in raw}.values())
    check_shape(loaded, kept=kept,
                coords=sum(has_coordinates(r["latitude"], r["longitude"], None) for r in unique))
    assert loaded.stats.zip_restored == sum(zero_stripped(r["zip"]) for r in unique)
    assert sum(len(r["zip"]) == 4 for r in raw) == 1056  # README section 4
    assert loaded.stats.skipped_total == 0 and not loaded.problems.errors


def test_samhsa_mental_health_known_record() -> None:
    """One facility end to end: address, restored ZIP, phones, categories."""
    loaded = load(DEMO / "samhsa_mental_health_facilities.csv", "samhsa_mental_health")
    svc = loaded.service("Perspectives Center for Care Inc", "60 Westwood Avenue")
    assert svc["categories"] == ["1220", "1214"]
    assert svc["url"] == "http://www.pcc4me.com"
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["address_2"], adr["city"], adr["state_province"],
            adr["postal_code"]) == ("60 Westwood Avenue", "Suite 220", "Waterbury", "CT", "06708")
    loc = loaded.one("location", svc)
    assert (loc["latitude"], loc["longitude"]) == (41.5613412, -73.0638482)
    phones = {(p["number"], p.get("extension"), p.get("description"))
              for p in loaded.linked("phone", svc)}
    assert phones == {("860-276-3000", None, None), ("860-276-3000", "301", "Intake")}


def test_samhsa_substance_use_counts_and_record() -> None:
    """Counts match the raw file; CT and Puerto Rico ZIPs get their zeros back."""
    path = DEMO / "samhsa_substance_use_treatment_facilities.csv"
    raw = raw_rows(path)
    loaded = load(path, "samhsa_substance_use")
    repeats = first_repeats(raw)
    assert (len(raw), repeats) == (14034, 4)
    unique = list({tuple(r.values()): r for r in raw}.values())
    check_shape(loaded, kept=len(raw) - repeats,
                coords=sum(has_coordinates(r["latitude"], r["longitude"], None) for r in unique))
    assert loaded.stats.zip_restored == sum(zero_stripped(r["zip"]) for r in unique)
    assert not loaded.table("phone"), "this file has no phones"
    svc = loaded.service("Connecticut Counseling Centers Inc", "50 Brookside Road")
    assert svc["categories"] == ["1178"]
    assert loaded.one("address", svc)["postal_code"] == "06708"
    svc = loaded.service("Hogar CREA Tito Rene Vieta Caguas")
    assert loaded.one("address", svc)["postal_code"] == "00725"  # Puerto Rico "725"


def test_samhsa_opioid_treatment_counts_and_records() -> None:
    """Counts match; 4-digit and ZIP+4 postal codes become five digits."""
    path = DEMO / "samhsa_opioid_treatment_programs.csv"
    raw = raw_rows(path)
    loaded = load(path, "samhsa_opioid_treatment")
    repeats = first_repeats(raw)
    assert (len(raw), repeats) == (1831, 1)
    unique = list({tuple(r.values()): r for r in raw}.values())
    check_shape(loaded, kept=len(raw) - repeats, coords=len(unique))
    assert loaded.stats.zip_restored == sum(zero_stripped(r["POSTAL"]) for r in unique)
    assert loaded.stats.zip_cut == sum(len(r["POSTAL"]) == 10 for r in unique)
    svc = loaded.service("8W Dual Diagnosis")
    assert svc["categories"] == ["1181"]
    adr = loaded.one("address", svc)
    assert (adr["city"], adr["postal_code"]) == ("Hartford", "06112")
    svc = loaded.service("Addiction Alternatives for Opiate-Heroin, Inc.")
    adr = loaded.one("address", svc)
    assert (adr["postal_code"], adr["address_type"]) == ("75711", "postal")  # PO BOX, ZIP+4


# -- HRSA -----------------------------------------------------------------------------------------

def test_hrsa_counts_and_record() -> None:
    """Counts match; an ALL-CAPS Guam site has no ZIP, its phone and coordinates."""
    path = DEMO / "hrsa_fqhc_sites.csv"
    raw = raw_rows(path)
    loaded = load(path, "hrsa_fqhc")
    repeats = first_repeats(raw)
    same_site = Counter((r["name"], r["address"], r["city"], r["st_abbr"]) for r in raw)
    assert (len(raw), repeats, sum(n - 1 for n in same_site.values())) == (13577, 8, 11)
    check_shape(loaded, kept=len(raw) - repeats, coords=len(raw) - repeats)
    assert all("postal_code" not in a for a in loaded.table("address")), "HRSA has no ZIP"
    svc = loaded.service("Southern Region Comm Health Ctr")  # ALL CAPS in the file
    assert svc["categories"] == ["1206", "1201"]
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["city"], adr["state_province"]) == (
        "162 Apman Dr", "Inarajan", "GU")
    assert loaded.one("phone", svc)["number"] == "671-828-7501"
    loc = loaded.one("location", svc)
    assert (loc["latitude"], loc["longitude"]) == (13.28261339, 144.7546017)
    ext = [p for p in loaded.table("phone") if p["number"] == "808-565-6919"]
    assert ext and ext[0]["extension"] == "121"
    # Placeholder numbers ("1234567890", "0") are reported and left out.
    fake = [p for p in loaded.problems if p.field == "phone"]
    assert len(fake) == 4 and all("not a phone number" in p.why for p in fake)


# -- HUD ------------------------------------------------------------------------------------------

def test_hud_counts_and_record() -> None:
    """Every PHA loads by its code with phone extension, fax and categories."""
    path = DEMO / "hud_pha_contacts.csv"
    raw = raw_rows(path)
    loaded = load(path, "hud_pha_contacts")
    check_shape(loaded, kept=len(raw), coords=0)
    assert {s["id"] for s in loaded.table("service")} == {r["pha_code"] for r in raw}
    with_zip = sum(bool(r["zip_code"].strip()) for r in raw)
    assert sum("postal_code" in a for a in loaded.table("address")) == with_zip == 3755 - 309
    assert loaded.stats.zip_restored == sum(zero_stripped(r["zip_code"]) for r in raw) == 0
    voice = sum(bool(r["phone"].strip()) for r in raw)
    assert sum(p["type"] == "voice" for p in loaded.table("phone")) == voice
    svc = loaded.service("ANNISTON HA")
    assert svc["id"] == "AL004"
    assert svc["categories"] == ["1150", "1140"]
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["city"], adr["postal_code"]) == (
        "500 Glen Addie Avenue", "Anniston", "36201")
    phones = {(p["type"], p["number"], p.get("extension")) for p in loaded.linked("phone", svc)}
    assert phones == {("voice", "256-236-1575", "134"), ("fax", "256-236-3981", None)}
    assert loaded.one("location", svc)["external_identifier"] == "AL004"
    svc = next(s for s in loaded.table("service") if s["id"] == "CT001")
    assert svc["name"] == "Housing Authority of the City of Bridgeport"
    assert loaded.one("address", svc)["postal_code"] == "06604"
    svc = loaded.service("HA CORDOVA")
    assert loaded.one("address", svc)["address_type"] == "postal"  # "PO Box 396"


# -- VA -------------------------------------------------------------------------------------------

def test_va_counts() -> None:
    """Cemeteries are left out; categories follow PrimaryAttribute."""
    path = DEMO / "va_facilities_fy18q2.csv"
    raw = raw_rows(path)
    loaded = load(path, "va_facilities")
    cemeteries = sum(r["PrimaryAttribute"] == "Cemetery" for r in raw)
    kept = [r for r in raw if r["PrimaryAttribute"] != "Cemetery"]
    assert (len(raw), cemeteries) == (1953, 248)
    assert loaded.stats.skipped == {"national or state cemetery: not a service": cemeteries}
    check_shape(loaded, kept=len(kept),
                coords=sum(has_coordinates(r["Latitude"], r["Longitude"], None) for r in kept))
    assert loaded.stats.zip_restored == sum(zero_stripped(r["Zip"].strip()) for r in kept)
    assert sum(len(r["Zip"]) == 4 for r in raw) == 116  # README section 8
    assert len(loaded.table("organization")) == 1
    by_attr = Counter(r["PrimaryAttribute"] for r in kept)
    cats = Counter(c for s in loaded.table("service") for c in s.get("categories", []))
    vet = sum(n for a, n in by_attr.items() if "Vet Center" in a)
    assert cats["1220"] == vet
    assert cats["1256"] == by_attr["Regional Office"] == 56


def test_va_known_records() -> None:
    """Street from Address2, trailing ' x' dropped, restored ZIP, Zip '0' empty."""
    loaded = load(DEMO / "va_facilities_fy18q2.csv", "va_facilities")
    svc = loaded.service("Kenai VA Clinic")
    assert svc["id"] == "463GB/MSCBOC"
    assert svc["categories"] == ["1206"]
    assert svc["eligibility_description"] == "Veterans."
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["address_2"], adr["postal_code"]) == (
        "11312 Kenai Spur Highway", "Suite 39", "99611")
    phone = loaded.one("phone", svc)
    assert phone["number"] == "888-353-7574" and "extension" not in phone  # trailing " x"
    svc = loaded.service("West Haven VA Medical Center")
    assert loaded.one("address", svc)["postal_code"] == "06516"
    svc = loaded.service("Anchorage RO")
    assert svc["categories"] == ["1256"]
    adr = loaded.one("address", svc)
    assert "postal_code" not in adr and "city" not in adr  # Zip "0", City " "
    assert not loaded.linked("phone", svc)
    svc = loaded.service("Juneau VA Clinic")
    assert loaded.one("address", svc)["address_2"] == "Suite 150, Federal Building"


# -- USDA farmers markets -------------------------------------------------------------------------

def test_farmers_markets_counts() -> None:
    """x/y coordinates, ZIP repairs and rejects, SNAP notes and seasons match the file."""
    path = DEMO / "usda_farmers_markets.csv"
    raw = raw_rows(path)
    loaded = load(path, "usda_farmers_markets")
    coords = sum(has_coordinates(r["y"], r["x"], US_BOUNDS) for r in raw)
    assert (len(raw), coords) == (8791, 8762)  # 8,763 have numbers; one is off Africa
    check_shape(loaded, kept=len(raw), coords=coords)
    assert loaded.stats.zip_restored == sum(zero_stripped(r["zip"]) for r in raw) == 5
    bad_zip = [r for r in raw if r["zip"].strip().lower() not in ("", "n/a")  # n/a: empty
               and not zero_stripped(r["zip"])
               and not re.fullmatch(r"\d{5}(-\d{4})?", r["zip"].strip())]
    zip_errors = [p for p in loaded.problems.errors if p.field == "zip"]
    assert len(zip_errors) == len(bad_zip) == 13
    coord_errors = [p for p in loaded.problems.errors if p.field == "y"]
    assert len(coord_errors) == 1 and coord_errors[0].line == 1 + 1 + next(
        i for i, r in enumerate(raw) if r["FMID"] == "1019334")
    snap = sum(r["SNAP"] == "Y" for r in raw)
    notes = sum("Accepts SNAP/EBT." in s.get("description", "") for s in loaded.table("service"))
    assert notes == snap == 2949
    seasons = sum(bool(r[f"Season{i}Date"].strip() or r[f"Season{i}Time"].strip())
                  for r in raw for i in range(1, 5))
    assert len(loaded.table("schedule")) == seasons


def test_farmers_markets_known_records() -> None:
    """Known markets end to end, including the one with impossible coordinates."""
    loaded = load(DEMO / "usda_farmers_markets.csv", "usda_farmers_markets")
    svc = loaded.service("Caledonia Farmers Market Association - Danville")  # leading space
    assert svc["id"] == "1018261" and svc["categories"] == ["1102"]
    assert "Senior Farmers' Market Nutrition Program" in svc["description"]
    assert "SNAP" not in svc["description"]
    adr = loaded.one("address", svc)
    assert (adr["city"], adr["state_province"], adr["postal_code"]) == ("Danville", "VT", "05828")
    loc = loaded.one("location", svc)
    assert (loc["latitude"], loc["longitude"]) == (44.411036, -72.140337)  # y, x
    hours = [s["description"] for s in loaded.linked("schedule", svc)]
    assert hours == ["06/14/2017 to 08/30/2017, Wed: 9:00 AM-1:00 PM;",
                     "09/06/2017 to 10/18/2017, Wed: 2:00 PM-6:00 PM;"]
    svc = loaded.service("Chester Sunday Farmers’ Market")
    assert loaded.one("address", svc)["postal_code"] == "06412"
    svc = loaded.service("14&U Farmers' Market")
    assert "Accepts SNAP/EBT." in svc["description"]
    assert loaded.one("address", svc)["state_province"] == "DC"
    derwood = loaded.service("Derwood Farmers Market")
    assert "latitude" not in loaded.one("location", derwood)
    assert loaded.one("address", derwood)["postal_code"] == "20855"


# -- DC SNAP retailers (GeoJSON) ------------------------------------------------------------------

SKIPPED_TYPES = {"Convenience Store", "Pharmacy", "Specialty Store", "Other"}


@pytest.mark.parametrize(("name", "source"), [
    ("snap_retailers_dc.geojson", "usda_snap_retailers_dc"),
    ("snap_retailers_dc_border_counties.geojson", "usda_snap_retailers_dc_border"),
])
def test_snap_retailers_counts(name: str, source: str) -> None:
    """Store-type and Montgomery County VA filters count as the raw features say."""
    path = DEMO / name
    feats = [f["properties"] for f in features(path)]
    loaded = load(path, source)
    far = [p for p in feats if p["County"] == "MONTGOMERY" and p["State"] == "VA"]
    stores = [p for p in feats if p not in far and p["Store_Type"] in SKIPPED_TYPES
              and not p["Grantee_Name"]]
    kept = len(feats) - len(far) - len(stores)
    assert loaded.stats.rows == len(feats)
    assert loaded.stats.skipped_total == len(far) + len(stores)
    check_shape(loaded, kept=kept, coords=kept)
    assert all(r.line is None and r.path.startswith("features[") for r in loaded.rows)
    if name == "snap_retailers_dc.geojson":
        assert (len(feats), kept) == (415, 169)
    else:
        assert (len(feats), len(far), kept) == (1705, 70, 750)


def test_snap_retailer_known_record() -> None:
    """A farmers market from the DC SNAP layer end to end."""
    loaded = load(DEMO / "snap_retailers_dc.geojson", "usda_snap_retailers_dc")
    svc = loaded.service("Park View Farmers Market", "3400 Georgia Ave NW")
    assert svc["id"] == "1638288" and svc["categories"] == ["1102"]
    assert svc["description"].startswith("Accepts SNAP/EBT")
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["city"], adr["postal_code"]) == (
        "3400 Georgia Ave NW", "Washington", "20010")
    loc = loaded.one("location", svc)
    assert (loc["latitude"], loc["longitude"]) == (38.932289, -77.024132)
    partners = [s for s in loaded.table("service") if "Produce incentive partner" in
                s.get("description", "")]
    assert partners, "Healthy Corners convenience stores are kept"


# -- DC DHS ---------------------------------------------------------------------------------------

def test_dc_shelters() -> None:
    """Shelters load with eligibility from SUBTYPE/AGES_SERVED and type categories."""
    path = DEMO / "dc_homeless_shelter_locations.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    raw = raw_rows(path)
    loaded = load(path, "dc_dhs_homeless_shelters")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    assert {s["id"] for s in loaded.table("service")} == {r["OBJECTID"] for r in raw}
    svc = loaded.service("Casa Ruby")
    assert svc["eligibility_description"] == "Youth, ages 18-24; LGBTQ-focused"
    assert svc["application_process"] == "Show Up and/or Call the Shelter"
    assert svc["categories"] == ["1121", "1135"]
    assert loaded.one("address", svc)["postal_code"] == "20001"
    svc = loaded.service("Harriet Tubman Shelter & Day Center")
    assert svc["eligibility_description"] == "Women, ages 18+"
    assert set(svc["categories"]) == {"1121", "1135", "1152"}
    assert loaded.one("address", svc)["address_1"] == "1900 Massachusetts Ave SE, Bldg. 27"


def test_dc_service_facilities() -> None:
    """The 40 service flags become categories and a services sentence."""
    path = DEMO / "dc_homeless_service_facilities.csv"
    raw = raw_rows(path)
    loaded = load(path, "dc_dhs_homeless_service_facilities")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    cats = Counter(c for s in loaded.table("service") for c in s.get("categories", []))
    meals = sum(r["MEALS"] == "Yes" for r in raw)
    assert cats["1131"] == meals == 21
    showers = sum("Yes" in (r["SHOWERS"], r["LAUNDRY"], r["HAIRCUTS"], r["PUBLIC_RESTROOMS"])
                  for r in raw)
    assert cats["1218"] == showers
    assert all(a["city"] == "Washington" for a in loaded.table("address"))  # "Washington "
    svc = loaded.service("Pathways to Housing: Administrative Office & Health Clinic")
    assert svc["id"] == "53"
    assert svc["description"] == ("Services offered: case management, housing, housing "
                                  "navigation, medical care, mental health care, supported "
                                  "employment.")
    assert set(svc["categories"]) == {"1292", "1145", "1136", "1206", "1220", "1373"}
    assert svc["application_process"] == "By appointment."
    adr = loaded.one("address", svc)
    assert (adr["address_1"], adr["postal_code"]) == ("101 Q Street NE", "20002")
    hours = [s for s in loaded.table("schedule")]
    assert [h["description"] for h in hours] == [
        r["HOURS_OF_OPERATION"] for r in raw if r["HOURS_OF_OPERATION"]]


# -- NYC Open Data --------------------------------------------------------------------------------

@pytest.mark.shared
def test_nyc_job_centers() -> None:
    """Two-number contacts and '/8270' alternates become separate phones."""
    path = NYC / "nyc_hra_job_centers.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_hra_job_centers")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    numbers = sum(len(re.findall(r"\d{3}[ -]\d{3}-\d{4}", r["Contact"]))
                  + len(re.findall(r"/\d{4}\b", r["Contact"])) for r in raw)
    assert len(loaded.table("phone")) == numbers
    svc = loaded.service("Crotona Job Center")
    assert svc["categories"] == ["1256", "1357"]
    assert [p["number"] for p in loaded.linked("phone", svc)] == ["929-252-7310", "929-252-7308"]
    assert loaded.one("address", svc)["postal_code"] == "10457"
    svc = loaded.service("Family Services Call Center, Brooklyn Satellite Job Center")
    assert [p["number"] for p in loaded.linked("phone", svc)] == [
        "929-221-8265", "929-221-8270", "718-883-8296"]


@pytest.mark.shared
def test_nyc_snap_centers_drop_appended_rows() -> None:
    """Drop-in and youth rows appended to the SNAP export are left out."""
    path = NYC / "nyc_hra_snap_centers.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_hra_snap_centers")
    assert len(raw) == loaded.stats.rows == 34
    with_url = sum(bool(r[""].strip()) for r in raw)
    drop_in = {r["Center Name"].strip() for r in raw_rows(NYC / "nyc_dhs_drop_in_centers.csv")}
    appended = sum(r["Name"].strip() in drop_in and "\n" in r["Address"] for r in raw)
    assert (with_url, appended) == (14, 5)
    assert loaded.stats.skipped_total == with_url + appended + 1
    check_shape(loaded, kept=14, coords=14)
    svc = loaded.service("Crotona SNAP Center")
    assert svc["categories"] == ["1133", "1258"]
    assert loaded.one("phone", svc)["number"] == "929-252-7436"


@pytest.mark.shared
def test_nyc_homebase() -> None:
    """Homebase offices: extension, service-area text, borough names as cities."""
    path = NYC / "nyc_dhs_homebase_locations.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_dhs_homebase")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    assert len(loaded.table("organization")) == len({r["Name"] for r in raw})
    svc = next(s for s in loaded.table("service") if s["name"] == "Homebase (CAMBA I)"
               and loaded.one("address", s)["postal_code"] == "11233")
    phone = loaded.one("phone", svc)
    assert (phone["number"], phone["extension"]) == ("718-408-5756", "37100")
    area = loaded.one("service_area", svc)
    assert area["description"] == "ZIP codes 11201, 11205, 11213, 11215, 11216, 11217,11225, " \
                                  "11231, 11233, 11238"
    assert {a["city"] for a in loaded.table("address")} == {
        "Bronx", "Brooklyn", "New York", "Queens", "Staten Island"}


@pytest.mark.shared
def test_nyc_drop_in_centers() -> None:
    """Quoted newlines in addresses: trimmed, and lines counted from the record start."""
    path = NYC / "nyc_dhs_drop_in_centers.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_dhs_drop_in_centers")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    svc = loaded.service("Olivieri Center")
    assert loaded.one("address", svc)["address_1"] == "257 West 30th Street"  # was "...\n"
    assert loaded.one("schedule", svc)["description"] == (
        "Open from 7:30 a.m.-8:30 p.m. This program remain open 24 hours during winter months")
    # Records span two physical lines; each row reports the line it starts on.
    lines = sorted(r.line for r in loaded.rows if r.table == "service")
    assert lines == [2, 4, 6, 8, 10]


@pytest.mark.shared
def test_nyc_runaway_youth() -> None:
    """Youth programs: one-field addresses, 'ext.' and 'or' phones, shelter categories."""
    path = NYC / "nyc_dycd_runaway_homeless_youth.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_dycd_runaway_homeless_youth")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    svc = loaded.service("Green Chimneys: Transitional Independent Living (TIL)")
    assert svc["categories"] == ["1152"]
    assert loaded.one("address", svc)["address_1"] == "516 W 167th St"
    phone = loaded.one("phone", svc)
    assert (phone["number"], phone["extension"]) == ("212-491-5911", "13")
    svc = loaded.service("Safe Horizon, Inc: Drop-In Center")
    assert [p["number"] for p in loaded.linked("phone", svc)] == ["212-695-2220", "800-708-6600"]
    assert loaded.one("address", svc)["address_1"] == "209 West 125th Street"
    shelters = sum(r["PROGRAM"] == "Crisis Shelter" for r in raw)
    assert sum("1121" in s.get("categories", []) for s in loaded.table("service")) == shelters


@pytest.mark.shared
def test_nyc_health_insurance_enrollment() -> None:
    """Several numbers and extensions, days + hours text, languages, ADA."""
    path = NYC / "nyc_doh_health_insurance_enrollment_sites.csv"
    raw = raw_rows(path)
    loaded = load(path, "nyc_doh_health_insurance_enrollment")
    check_shape(loaded, kept=len(raw), coords=len(raw))
    svc = loaded.service("Homecrest Health Center: health insurance enrollment")
    phone = loaded.one("phone", svc)
    assert (phone["number"], phone["extension"], phone["description"]) == (
        "718-336-2553", "129", "Extensions 129, 144, 150, 153")
    assert loaded.one("schedule", svc)["description"] == "Monday - Friday 8:30 a.m. - 4:30 p.m."
    assert [lang["name"] for lang in loaded.linked("language", svc)] == ["Russian", "Spanish"]
    assert loaded.one("accessibility", svc)["description"] == "ADA accessible"
    assert loaded.one("address", svc)["address_1"] == "1601 Avenue S, 1st Floor"
    svc = loaded.service("Washington Heights Health Center: health insurance enrollment")
    assert len(loaded.linked("phone", svc)) == 3  # three numbers separated by spaces


# -- Capital Area Food Bank (not bundled) ---------------------------------------------------------

@pytest.mark.shared
def test_cafb_pantries() -> None:
    """Pantries load with the repeated hours kept verbatim as schedule text."""
    path = SHARED / "cafb_food_pantries_dc_region" / "cafb_food_pantries_2025-08-08.csv"
    raw = raw_rows(path)
    loaded = load(path, "cafb_food_pantries")
    coords = sum(has_coordinates(r["latitude"], r["longitude"], DC_REGION) for r in raw)
    check_shape(loaded, kept=len(raw), coords=coords)
    assert [s["description"] for s in loaded.table("schedule")] == [r["hours"] for r in raw]
    svc = loaded.service("Assumption Outreach")
    assert svc["categories"] == ["1130"]
    assert "TEFAP" in svc["description"]
    assert loaded.one("schedule", svc)["description"].startswith(
        "Monday: 9:00:00-12:00:00, 9:00:00-12:00:00, 9:00:00-12:00:00; Wednesday")
    assert loaded.one("phone", svc)["number"] == "202-561-5941"
    assert loaded.one("address", svc)["state_province"] == "DC"
    ext = [p for p in loaded.table("phone") if p["number"] == "301-773-4838"]
    assert ext and ext[0]["extension"] == "13"  # "EXT. 13"
    assert {a["state_province"] for a in loaded.table("address")} == {"DC", "MD", "VA"}  # "Va"


# -- stable ids -----------------------------------------------------------------------------------

def test_ids_are_stable_and_independent_of_row_order(tmp_path: Path) -> None:
    """Natural-key ids do not depend on row order and repeat exactly."""
    src = DEMO / "samhsa_opioid_treatment_programs.csv"
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    shuffled = tmp_path / "samhsa_opioid_treatment_programs.csv"
    shuffled.write_text(lines[0] + "".join(reversed(lines[1:200])), encoding="utf-8")
    first = load(src, "samhsa_opioid_treatment")
    again = Loaded(shuffled, "samhsa_opioid_treatment")
    assert len(again.table("service")) == 199
    assert {s["id"] for s in again.table("service")} <= {s["id"] for s in first.table("service")}
    reread = Loaded(src, "samhsa_opioid_treatment")
    assert [r.values for r in reread.rows] == [r.values for r in first.rows]


# -- cleaning units -------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("6708", ("06708", True, None)),
    ("601", ("00601", True, None)),
    ("20001", ("20001", False, None)),
    ("05828", ("05828", False, None)),
    ("20015-2541", ("20015", False, None)),
    ("6412-1234", ("06412", True, None)),
    ("123456789", ("12345", False, None)),
    (" 59022", ("59022", False, None)),
    ("\xa074601", ("74601", False, None)),
    ("0", ("", False, None)),
    ("", ("", False, None)),
])
def test_clean_zip(raw: str, expected: tuple[str, bool, None]) -> None:
    """ZIPs that lost zeros are restored; ZIP+4 is cut; '0' is empty."""
    assert flat.clean_zip(raw) == expected


@pytest.mark.parametrize("raw", ["MA", "550424", "0033", "2O001"])
def test_clean_zip_rejects(raw: str) -> None:
    """Values that cannot be a ZIP are rejected with the value in the message."""
    code, restored, why = flat.clean_zip(raw)
    assert code == "" and not restored and why and raw in why


@pytest.mark.parametrize(("raw", "numbers"), [
    ("(256)236-1575 x134", [("256-236-1575", "134")]),
    ("888-353-7574 x", [("888-353-7574", "")]),
    ("929-252-7310 | 929-252-7308", [("929-252-7310", ""), ("929-252-7308", "")]),
    ("929-252-4350\xa0| 929-252-4349", [("929-252-4350", ""), ("929-252-4349", "")]),
    ("212.695.2220 or 800.708.6600", [("212-695-2220", ""), ("800-708-6600", "")]),
    ("(212) 613-0300 ext. 0532", [("212-613-0300", "0532")]),
    ("(301) 773-4838 EXT. 13", [("301-773-4838", "13")]),
    ("929-221-8265/8270 | 718-883-8296",
     [("929-221-8265", ""), ("929-221-8270", ""), ("718-883-8296", "")]),
    ("(718) 553-3846                             (718) 553-3845",
     [("718-553-3846", ""), ("718-553-3845", "")]),
    ("1-800-662-4357", [("800-662-4357", "")]),
    ("311", [("311", "")]),
])
def test_parse_phones(raw: str, numbers: list[tuple[str, str]]) -> None:
    """Phone cells split into numbers and extensions."""
    phones, why = flat.parse_phones(raw)
    assert why is None
    assert [(p.number, p.extension) for p in phones] == numbers


@pytest.mark.parametrize("raw", ["1234567890", "0", "N/A", "call the front desk"])
def test_parse_phones_rejects(raw: str) -> None:
    """Placeholders and text are not phone numbers."""
    phones, why = flat.parse_phones(raw)
    assert phones == [] and why


def test_title_case_only_touches_all_caps() -> None:
    """Title-casing leaves mixed-case text alone; state names become codes."""
    assert flat.title_case("4300 BONIFACE PARKWAY") == "4300 Boniface Parkway"
    assert flat.title_case("8TH STREET NW AND F STREET NW") == "8th Street NW and F Street NW"
    assert flat.title_case("1826 3RD Avenue S") == "1826 3RD Avenue S"
    assert flat.state_code("District of Columbia") == "DC"
    assert flat.state_code("Va") == "VA"


def test_clean_url() -> None:
    """Web addresses get a scheme; backslashes and emails are handled."""
    assert flat.clean_url("www.example.org/x") == ("http://www.example.org/x", None)
    assert flat.clean_url("http://www.boystown.org\\\\central-florida")[0] == (
        "http://www.boystown.org//central-florida")
    assert flat.clean_url("nyc.gov/health and search insurance")[0] == ""
    assert flat.email_in_url("http://villagevents@cox.net") == "villagevents@cox.net"


# -- bad input ------------------------------------------------------------------------------------

TEST_MAPPING = {
    "source": "test_flat",
    "title": "test",
    "files": ["sites*.csv"],
    "detect_columns": ["site_id", "site_name"],
    "id_columns": ["site_id"],
    "categories": ["1130"],
    "organization": {"name": "{org}"},
    "service": {"name": "{site_name}", "url": "{website}",
                "eligibility_description": "{who}"},
    "location": {"latitude": "{lat}", "longitude": "{lon}"},
    "address": {"address_1": "{street}", "city": "{city}", "state_province": "{state}",
                "postal_code": "{zip}"},
    "phones": [{"number": "{phone}"}],
    "schedules": [{"description": "{hours}"}],
    "rules": [{"when": {"kind": "closed"}, "skip": "closed site"}],
}
HEADER = "site_id,site_name,org,street,city,state,zip,phone,lat,lon,hours,kind,who\r\n"


def write(path: Path, body: bytes) -> Path:
    """Write a test CSV with a UTF-8 BOM and the test header."""
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.encode() + body)
    return path


def csv_line(*values: str) -> str:
    """One CSV line with the test header's 13 fields (missing ones empty)."""
    out = []
    for v in [*values, *[""] * (13 - len(values))]:
        out.append(f'"{v}"' if any(c in v for c in ',"\n') else v)
    return ",".join(out) + "\r\n"


def test_bad_rows_are_reported_and_good_rows_kept(tmp_path: Path) -> None:
    """Each kind of bad row is reported with file, line and field; good rows load."""
    text = "".join([
        csv_line("1", "Good Pantry", "Org A", "12 Main St ", "Hartford", "CT", "6106",
                 "(860) 555-0100 x12", "41.76", "-72.68", "Mon 9-5", "", "Adults"),  # line 2
        csv_line("2", "Bad Coordinates", "Org B", "1 Elm St", "Hartford", "CT", "06106",
                 "860-555-0101", "forty", "-72.6"),                                   # line 3
        csv_line("3", "", "Org C"),                                 # line 4: org name only
        csv_line(),                                                 # line 5: blank
        csv_line("4"),                                              # line 6: id, no name
        csv_line("5", "Closed Site", "Org D", "", "", "", "", "", "", "", "", "closed"),
        csv_line("6", "Caf\xe9 Pantry", "Org E", "2 Oak St", "Hartford", "CT", "MA"),  # 8
        csv_line("7", "Two Line\nPantry", "Org F", "3 Pine St", "Hartford", "CT",
                 "06106-1234", "", "41.7", "-72.7"),                 # lines 9-10
        csv_line("8", "No Zero", "Org G", "4 Ash St", "Hartford", "CT", "601", "", "0",
                 "0"),                                              # line 11: (0, 0)
        "9,Truncated Pantry,Org H,5 Birch St,Hart",                 # line 12: cut off
    ])
    body = text.encode("utf-8").replace("Caf\xe9".encode(), b"Caf\xe9")  # one Latin-1 byte
    path = write(tmp_path / "sites.csv", body)
    mapping = flat.FlatMapping.from_dict(TEST_MAPPING)
    problems, stats = Problems(), flat.FlatStats()
    rows = list(flat.read(path, problems, mapping=mapping, stats=stats))
    services = {r.values["id"]: r for r in rows if r.table == "service"}

    assert set(services) == {"1", "2", "3", "6", "7", "8"}
    assert (stats.rows, stats.loaded, stats.blank, stats.bad) == (10, 6, 1, 2)
    assert stats.skipped == {"closed site": 1}

    def problem(line: int, severity: str = "error") -> Problem:
        found = [p for p in problems if p.line == line and p.severity == severity]
        assert len(found) == 1, (line, severity, problems)
        assert found[0].file == str(path)
        return found[0]

    # Missing column: one warning for the file (line 1, the header), not one per row.
    missing = [p for p in problems if p.field == "website"]
    assert len(missing) == 1 and missing[0].line == 1 and missing[0].severity == "warning"
    # Bad coordinate: an error naming the line and column; the row is kept without them.
    bad = problem(3)
    assert bad.field == "lat" and "not a number" in bad.why
    assert services["2"].line == 3
    loc2 = next(r.values for r in rows if r.table == "location" and r.values["id"] == "2")
    assert "latitude" not in loc2 and "longitude" not in loc2
    # Org name but no service name: the organization name is used.
    assert services["3"].values["name"] == "Org C"
    # No name at all: an error naming the name column; the row is left out.
    noname = problem(6)
    assert noname.field == "site_name" and "no name" in noname.why
    # Latin-1 byte: a warning naming the line and field; the text is decoded as Latin-1.
    latin = problem(8, "warning")
    assert latin.field == "site_name" and "Latin-1" in latin.why
    assert services["6"].values["name"] == "Café Pantry"
    zip_error = problem(8)
    assert zip_error.field == "zip" and "'MA'" in zip_error.why
    # A quoted newline: the row reports the line it starts on.
    assert services["7"].line == 9 and services["7"].values["name"] == "Two Line Pantry"
    # (0, 0) is a placeholder.
    assert problem(11).field == "lat"
    # Truncated last line: an error naming the line and the first missing column.
    cut = problem(12)
    assert cut.field == "state" and "truncated" in cut.why
    assert "9" not in services

    good = services["1"].values
    assert good == {"id": "1", "organization_id": "1", "name": "Good Pantry",
                    "eligibility_description": "Adults", "status": "active",
                    "categories": ["1130"]}
    adr = next(r.values for r in rows if r.table == "address" and r.values["id"] == "1")
    assert (adr["address_1"], adr["postal_code"]) == ("12 Main St", "06106")
    phone = next(r.values for r in rows if r.table == "phone" and r.values["service_id"] == "1")
    assert (phone["number"], phone["extension"]) == ("860-555-0100", "12")
    schedule = next(r.values for r in rows if r.table == "schedule")
    assert schedule == {"id": "1#schedule1", "service_id": "1", "description": "Mon 9-5"}
    assert stats.zip_restored == 2 and stats.zip_cut == 1 and stats.zip_rejected == 1


def test_short_row_mid_file_is_kept_with_a_warning(tmp_path: Path) -> None:
    """A short row that is not the last one keeps its fields."""
    path = write(tmp_path / "sites.csv", b"1,Short Row,Org,1 Main St\r\n" + csv_line(
        "2", "Next", "Org2").encode())
    problems = Problems()
    mapping = flat.FlatMapping.from_dict(TEST_MAPPING)
    rows = list(flat.read(path, problems, mapping=mapping))
    assert {r.values["name"] for r in rows if r.table == "service"} == {"Short Row", "Next"}
    short = [p for p in problems if p.line == 2]
    assert len(short) == 1 and short[0].severity == "warning" and short[0].field == "city"


def test_duplicates_and_colliding_ids(tmp_path: Path) -> None:
    """Exact repeats are left out; a reused id gets a suffix."""
    body = (csv_line("1", "Same", "Org", "1 Main St") * 2
            + csv_line("1", "Different", "Org", "2 Main St")).encode()
    path = write(tmp_path / "sites.csv", body)
    problems, stats = Problems(), flat.FlatStats()
    mapping = flat.FlatMapping.from_dict(TEST_MAPPING)
    rows = list(flat.read(path, problems, mapping=mapping, stats=stats))
    assert [r.values["id"] for r in rows if r.table == "service"] == ["1", "1~2"]
    assert stats.duplicates == 1
    assert [p.line for p in problems if p.severity == "warning" and p.line > 1] == [3, 4]


def test_wholly_latin1_file_gets_one_warning(tmp_path: Path) -> None:
    """A file that is all Latin-1 loads with one warning, not one per row."""
    body = "".join(csv_line(str(i), f"Caf\xe9 {i}", "Org") for i in range(40)).encode("latin-1")
    path = write(tmp_path / "sites.csv", body)
    problems = Problems()
    rows = list(flat.read(path, problems, mapping=flat.FlatMapping.from_dict(TEST_MAPPING)))
    assert sum(r.table == "service" for r in rows) == 40
    assert rows[1].values["name"] == "Café 0"
    latin = [p for p in problems if "Latin-1" in p.why]
    assert len(latin) == 1 and latin[0].line == 2


def test_geojson_bad_features(tmp_path: Path) -> None:
    """GeoJSON: non-point geometry, far-away points and nameless features."""
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"Record_ID": 1, "Store_Name": "Good Grocer",
                                           "Store_Type": "Grocery Store", "Zip_Code": "20010",
                                           "Store_Street_Address": "1 Main St"},
         "geometry": {"type": "Point", "coordinates": [-77.02, 38.93]}},
        {"type": "Feature", "properties": {"Record_ID": 2, "Store_Name": "No Point",
                                           "Store_Type": "Supermarket", "Zip_Code": "2001"},
         "geometry": {"type": "Polygon", "coordinates": []}},
        {"type": "Feature", "properties": {"Record_ID": 3, "Store_Name": "Far Away",
                                           "Store_Type": "Supermarket"},
         "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}},
        {"type": "Feature", "properties": {"Record_ID": 4, "Store_Name": None,
                                           "Store_Type": "Supermarket"}, "geometry": None},
    ]}
    path = tmp_path / "snap_retailers_dc.geojson"
    path.write_text(json.dumps(doc), encoding="utf-8")
    problems, stats = Problems(), flat.FlatStats()
    rows = list(flat.read(path, problems, stats=stats))
    services = [r for r in rows if r.table == "service"]
    assert [s.values["name"] for s in services] == ["Good Grocer", "No Point", "Far Away"]
    assert stats.with_coordinates == 1
    assert any(p.field == "geometry" and "features[1]" in p.why for p in problems)
    far = [p for p in problems.errors if "outside" in p.why]
    assert len(far) == 1 and far[0].why.startswith("features[2]: ")
    noname = [p for p in problems.errors if "no name" in p.why]
    assert len(noname) == 1 and noname[0].field == "Store_Name"
    adr = next(r.values for r in rows if r.table == "address" and r.values["id"] == "2")
    assert adr["postal_code"] == "02001"


# -- bundled demo data ----------------------------------------------------------------------------

def test_demo_manifest_matches_files() -> None:
    """The manifest lists every bundled file with its checksum, rows and mapping."""
    manifest = tomllib.loads((DEMO / "manifest.toml").read_text(encoding="utf-8"))
    entries = manifest["files"]
    assert "not for real referrals" in manifest["notice"].lower()
    names = {e["path"] for e in entries}
    on_disk = {p.name for p in DEMO.iterdir() if p.suffix in (".csv", ".geojson")}
    assert names == on_disk == set(DEMO_SOURCES)
    mappings = flat.load_mappings()
    for entry in entries:
        data = (DEMO / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
        assert entry["loader"] == "flat" and entry["source"] in mappings
        assert entry["source"] == DEMO_SOURCES[entry["path"]]
        if entry["path"].endswith(".geojson"):
            rows = len(json.loads(data)["features"])
        else:
            rows = len(raw_rows(DEMO / entry["path"]))
        assert rows == entry["rows"], entry["path"]
        assert entry["licence"] and entry["attribution"]
    assert not any("cafb" in n or "nyc" in n or "miami" in n or "airs" in n for n in names)
    readme = (DEMO / "README.md").read_text(encoding="utf-8")
    assert "not for real referrals" in readme.lower() or "do not use this" in readme.lower()
    assert "District of Columbia, Open Data DC" in readme
    for name in names:
        assert f"`{name}`" in readme


@pytest.mark.shared
def test_demo_files_are_verbatim_copies() -> None:
    """Bundled files are byte-for-byte the shared originals."""
    for path in DEMO.iterdir():
        if path.suffix not in (".csv", ".geojson"):
            continue
        originals = list(SHARED.glob(f"*/{path.name}"))
        assert len(originals) == 1, path.name
        assert originals[0].read_bytes() == path.read_bytes(), path.name
