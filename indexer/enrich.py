"""What the importer adds to what a source said: parsed hours, eligibility, coverage,
categories, coordinates, time zones; and what it takes away from confidential locations.

`expand_row` works on one normalised row as it is staged; `enrich_stage` works on the staged
rows as a whole (a location's address is a separate row, a service's categories may come from
attribute and taxonomy rows).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from indexer.records import Problems, SourceRow

if TYPE_CHECKING:
    from indexer.pipeline import RunReport
    from indexer.staging import Stage

CONFIDENTIAL_DECIMALS = 2  # about 1 km: enough for distance, not enough to find the door


def expand_row(table: str, row: dict[str, Any], source_row: SourceRow,
               problems: Problems) -> Iterator[tuple[str, dict[str, Any]]]:
    """The staged rows one normalised row becomes (usually just itself)."""
    if table == "service":
        yield from _service(row)
    elif table == "schedule":
        yield from _schedule(row, source_row)
    elif table == "service_area":
        yield table, _service_area(row)
    elif table == "location":
        yield table, _location(row)
    else:
        yield table, row


def _service(row: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    from service.directory.eligibility import parse_eligibility

    if row.get("eligibility_description") or row.get("minimum_age") is not None \
            or row.get("maximum_age") is not None:
        row["eligibility"] = parse_eligibility(
            row.get("eligibility_description"), minimum_age=row.get("minimum_age"),
            maximum_age=row.get("maximum_age")).to_dict()
    categories = row.pop("categories", None) or []
    yield "service", row
    for category_id in categories:
        yield "service_category", {"service_id": row["id"], "category_id": category_id}


def _schedule(row: dict[str, Any], source_row: SourceRow) -> Iterator[tuple[str, dict[str, Any]]]:
    structured = any(row.get(f) for f in ("freq", "byday", "opens_at", "closes_at",
                                          "bymonthday"))
    text = row.get("description")
    if structured or not text or row.get("is_closure"):
        yield "schedule", row
        return
    from service.directory.schedules import parse_hours_text, to_hsds_rows

    parsed = parse_hours_text(text)
    if not parsed.confident or not parsed.rules:
        yield "schedule", row  # kept as text: "hours unknown", never "closed"
        return
    for i, hsds in enumerate(to_hsds_rows(parsed.rules)):
        derived = {**row, **{k: v for k, v in hsds.items() if k != "id"}}
        derived["description"] = text
        if i:
            derived["id"] = _suffix_id(row["id"], i)
            derived["record_source_id"] = f"{row['record_source_id']}#{i}"
        yield "schedule", derived


def _suffix_id(base: str, i: int) -> str:
    from indexer.ids import directory_id
    return directory_id("derived", "schedule", f"{base}#{i}")


def _location(row: dict[str, Any]) -> dict[str, Any]:
    # The time zone of a place with coordinates, here in the reading workers; places geocoded
    # later get theirs in `_time_zones`.
    if row.get("latitude") is not None and not row.get("time_zone"):
        from indexer.geocode import timezone_for
        row["time_zone"] = timezone_for(row["latitude"], row["longitude"])
    return row


def _service_area(row: dict[str, Any]) -> dict[str, Any]:
    from service.directory.service_areas import parse_service_area

    text = " ".join(filter(None, (row.get("name"), row.get("description")))) or None
    if text or row.get("extent"):
        row["coverage"] = parse_service_area(
            text, extent=row.get("extent"), extent_type=row.get("extent_type")).to_dict()
    return row


# --- whole-stage passes ------------------------------------------------------------------------


_MISSING_ZIPS = (
    "SELECT a.id, l.latitude, l.longitude FROM address a JOIN location l ON l.id = a.location_id "
    "WHERE a.postal_code IS NULL AND l.latitude IS NOT NULL")


class ZipLookups:
    """The nearest ZIP of each address that has none, from its place's coordinates, worked out
    in a thread from the rows as read, while this process checks the stage (SQLite work that
    leaves the interpreter free): a third of a large package's addresses may lack one. The
    enrich step uses an answer where the address and point are still the same."""

    def __init__(self, stage: Stage) -> None:
        self._rows = list(stage.query(_MISSING_ZIPS))
        self._found: dict[tuple[str, float, float], str | None] = {}
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="zip-lookups", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            if not self._rows:
                return
            from indexer.geocode import GeoTables

            tables = GeoTables.default()
            for address_id, lat, lon in self._rows:
                self._found[(address_id, lat, lon)] = _nearest_zip(tables, lat, lon)
        except BaseException as exc:  # raised where the answers are wanted
            self._error = exc

    def result(self) -> dict[tuple[str, float, float], str | None]:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._found


def enrich_stage(stage: Stage, report: RunReport, *, geocoder: Any = None,
                 progress: Any = None, zips: ZipLookups | None = None) -> None:
    """Geocode, derive ZIPs and time zones, protect confidential places, add categories."""
    _geocode_locations(stage, report, geocoder)
    _zip_from_coordinates(stage, zips.result() if zips is not None else {})
    _time_zones(stage)
    _protect_confidential(stage)
    _categories_from_attributes(stage)
    precision = Counter(dict(stage.query(
        "SELECT coalesce(geocode_precision, 'none'), count(*) FROM location "
        "GROUP BY 1")))
    report.precision.update(precision)


def _geocoder(geocoder: Any) -> Any:
    if geocoder is not None:
        return geocoder
    from indexer.geocode import Geocoder
    return Geocoder()


def _geocode_locations(stage: Stage, report: RunReport, geocoder: Any) -> None:
    rows = list(stage.query(
        # The physical address, else the postal one (a PO box still names the town).
        "SELECT l.id, l.record_source_id, l._file, l._line, a.address_1, a.city, "
        "a.state_province, a.postal_code FROM location l LEFT JOIN address a "
        "ON a.rowid = (SELECT rowid FROM address WHERE location_id = l.id ORDER BY "
        "coalesce(address_type, 'physical') = 'postal', rowid LIMIT 1) "
        "WHERE l.latitude IS NULL AND coalesce(l.location_type, 'physical') <> 'virtual'"))
    if not rows:
        return
    coder = _geocoder(geocoder)
    updates = []
    for loc_id, source_id, file, line, address_1, city, state, postal in rows:
        point = coder.geocode_address(address_1=address_1, city=city, state=state,
                                      postal_code=postal)
        if point is None:
            if any((address_1, city, state, postal)):
                report.problems.warning(file, line, "latitude", "no coordinates, and the "
                                        "address could not be placed; not findable by distance",
                                        table="location", source_id=source_id)
            continue
        updates.append((point.lat, point.lon, point.precision, loc_id))
    stage.update_many("UPDATE location SET latitude = ?, longitude = ?, "
                           "geocode_precision = ? WHERE id = ?", updates)


def _nearest_zip(tables: Any, lat: float, lon: float) -> str | None:
    """The ZIP whose centroid is nearest the point, from the bundled tables."""
    found = tables.nearest_zip(lat, lon)
    return found.zip if found is not None else None


def _zip_from_coordinates(stage: Stage,
                          known: dict[tuple[str, float, float], str | None]) -> None:
    rows = list(stage.query(_MISSING_ZIPS))
    if not rows:
        return
    from indexer.geocode import GeoTables

    tables = GeoTables.default()
    updates = []
    for address_id, lat, lon in rows:
        key = (address_id, lat, lon)
        # worked out already (ZipLookups), unless geocoded since
        zip_code = known[key] if key in known else _nearest_zip(tables, lat, lon)
        if zip_code is not None:
            updates.append((zip_code, address_id))
    stage.update_many("UPDATE address SET postal_code = ? WHERE id = ?", updates)


def _time_zones(stage: Stage) -> None:
    """Time zones of the places geocoded here (`_location` gave the others theirs)."""
    from indexer.geocode import timezone_for

    updates = [(timezone_for(lat, lon), loc_id) for loc_id, lat, lon in stage.query(
        "SELECT id, latitude, longitude FROM location WHERE latitude IS NOT NULL "
        "AND time_zone IS NULL")]
    stage.update_many("UPDATE location SET time_zone = ? WHERE id = ?", updates)


def _protect_confidential(stage: Stage) -> None:
    stage.execute(f"UPDATE location SET latitude = round(latitude, {CONFIDENTIAL_DECIMALS}), "
                  f"longitude = round(longitude, {CONFIDENTIAL_DECIMALS}) "
                  "WHERE is_confidential = 1 AND latitude IS NOT NULL")
    stage.execute("UPDATE address SET address_1 = '', address_2 = NULL, attention = NULL "
                  "WHERE location_id IN (SELECT id FROM location WHERE is_confidential = 1)")


def _categories_from_attributes(stage: Stage) -> None:
    rows = list(stage.query(
        "SELECT a.link_id, t.code, t.name, t.taxonomy FROM attribute a "
        "JOIN taxonomy_term t ON t.id = a.taxonomy_term_id "
        "WHERE coalesce(a.link_entity, 'service') = 'service' AND a.link_id IS NOT NULL"))
    if not rows:
        return
    from service.directory.categories import categorize

    memo: dict[tuple[str | None, str | None], set[str]] = {}
    pairs = set()
    for service_id, code, name, _taxonomy in rows:
        key = (code, name)
        if key not in memo:
            memo[key] = categorize([v for v in (code, name) if v])
        for category_id in memo[key]:
            pairs.add((service_id, category_id))
    existing = set(stage.query("SELECT service_id, category_id FROM service_category"))
    stage.update_many("INSERT INTO service_category VALUES (?, ?)",
                           sorted(pairs - existing))


def coverage_json(value: Any) -> dict[str, Any] | None:
    """A staged coverage value as a dict."""
    if value is None or isinstance(value, dict):
        return value
    return json.loads(value)
