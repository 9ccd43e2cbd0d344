"""Re-importing a feed never undoes a partner's edits: removed hours and phones stay removed, a
"still accurate" and a capacity update stand, until the source itself changes that data (then
the source wins and an admin sees the conflict, or the newer date wins)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from indexer.pipeline import RunReport, load
from service.db import Database
from service.directory.tables import edit_conflict, hsds_tables
from tests.factories import Package, directory_package
from tests.service.accounts.helpers import user_headers

MON_WED_FRI = {"days": ["MO", "WE", "FR"], "opens_at": "09:00", "closes_at": "17:00"}


@dataclass
class Feed:
    """The city's export (one partner's listing svc0 at loc0 among others), loaded once."""

    package: Package
    folder: Path
    ids: dict[str, str]  # the feed's ids -> the directory's
    pat: dict[str, str]  # a partner of org0
    admin: dict[str, str]
    versions: int = 0

    def row(self, table: str, source_id: str) -> dict[str, str]:
        return next(r for r in self.package.rows[table] if r["id"] == source_id)

    def reimport(self, db: Database) -> RunReport:
        """Load the package as it is now (a new folder when it changed, like a new export)."""
        self.versions += 1
        return load(db, self.package.write(self.folder / f"v{self.versions}"), source="city")


@pytest.fixture
def feed(db: Database, client, tmp_path: Path) -> Feed:  # noqa: ANN001
    package = directory_package(2)
    # svc0 also opens on Saturday mornings, and loc0 has its own front-desk line.
    package.add("schedule", id="sch0-sat", service_id="svc0", freq="WEEKLY", byday="SA",
                opens_at="10:00", closes_at="12:00", description="Saturday 10-12")
    package.add("phone", id="ph0-desk", location_id="loc0", number="202-555-0199", type="voice")
    load(db, package.write(tmp_path / "v0"), source="city")
    ids: dict[str, str] = {}
    with db.session() as session:
        for name in ("organization", "service", "location", "service_at_location", "schedule",
                     "phone"):
            t = hsds_tables[name]
            ids.update(session.execute(select(t.c.record_source_id, t.c.id)).all())
    return Feed(package=package, folder=tmp_path, ids=ids,
                pat=user_headers(db, client, "pat", role="partner",
                                 organizations=(ids["org0"],)),
                admin=user_headers(db, client, "ada", role="admin"))


def listing(client, feed: Feed) -> dict[str, Any]:  # noqa: ANN001
    response = client.get(f"/api/v1/services/{feed.ids['svc0']}")
    assert response.status_code == 200, response.text
    return response.json()["service"]


def edit(client, feed: Feed, body: dict[str, Any], *, kind: str = "services",  # noqa: ANN001
         record: str = "svc0", status: int = 200) -> dict[str, Any]:
    response = client.patch(f"/api/v1/{kind}/{feed.ids[record]}", headers=feed.pat, json=body)
    assert response.status_code == status, response.text
    return response.json()


def hours(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return sorted((s["byday"], s["opens_at"], s["closes_at"]) for s in doc["schedules"])


def conflicts(db: Database) -> list[dict[str, Any]]:
    with db.session() as session:
        return [dict(r) for r in session.execute(
            select(edit_conflict).order_by(edit_conflict.c.id)).mappings()]


def when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- removed child rows -----------------------------------------------------------------------


def test_hours_a_partner_removed_stay_removed_until_the_source_changes_them(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00"),
                                            ("SA", "10:00", "12:00")]
    edit(client, feed, {"hours": [MON_WED_FRI]})  # no more Saturdays

    # The same export again, twice: Saturday does not come back, nothing is in conflict.
    for _ in range(2):
        report = feed.reimport(db)
        assert report.status == "done"
        assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00")]
        assert "new" not in report.counts["schedule"]
    assert conflicts(db) == []

    # The source changes another row (the weekday hours the partner left as they were, but for
    # the text): the partner's version of it and the removal both stand... until the source
    # changes the Saturday row itself: then the source wins and an admin sees the conflict.
    feed.row("schedule", "sch0-sat")["closes_at"] = "13:00"
    report = feed.reimport(db)
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00"),
                                            ("SA", "10:00", "13:00")]
    assert report.counts["schedule"]["edit_conflict"] == 1
    [conflict] = conflicts(db)
    assert conflict["table_name"] == "schedule" and conflict["record_id"] == feed.ids["sch0-sat"]
    assert conflict["field"] == "*" and conflict["local_value"] is None  # the partner removed it
    assert conflict["source_value_at_edit"]["closes_at"] == "12:00"
    assert conflict["new_source_value"]["closes_at"] == "13:00"
    assert conflict["import_run_id"] == report.run_id

    # Settled: the row is the source's again, and later imports leave it be.
    feed.reimport(db)
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00"),
                                            ("SA", "10:00", "13:00")]
    assert len(conflicts(db)) == 1


def test_a_row_the_partner_changed_is_kept_until_the_source_changes_it(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    edit(client, feed, {"hours": [MON_WED_FRI, {"days": ["SA"], "opens_at": "09:00",
                                                "closes_at": "11:00"}]})
    feed.reimport(db)
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00"),
                                            ("SA", "09:00", "11:00")]
    assert conflicts(db) == []

    feed.row("schedule", "sch0-sat")["opens_at"] = "08:00"
    feed.reimport(db)
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00"),
                                            ("SA", "08:00", "12:00")]
    [conflict] = conflicts(db)
    assert conflict["record_id"] == feed.ids["sch0-sat"]
    assert (conflict["local_value"]["opens_at"], conflict["local_value"]["closes_at"]) == \
        ("09:00", "11:00")
    assert conflict["new_source_value"]["opens_at"] == "08:00"


def test_a_row_the_source_drops_goes_and_the_partners_change_of_it_is_listed(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    edit(client, feed, {"hours": [MON_WED_FRI, {"days": ["SA"], "opens_at": "09:00",
                                                "closes_at": "11:00"}]})
    feed.package.rows["schedule"].remove(feed.row("schedule", "sch0-sat"))
    feed.reimport(db)
    assert hours(listing(client, feed)) == [("MO,WE,FR", "09:00", "17:00")]
    [conflict] = conflicts(db)
    assert conflict["local_value"]["closes_at"] == "11:00"
    assert conflict["new_source_value"] is None


def test_a_phone_removed_from_a_location_stays_removed(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    def desk_phones() -> list[str]:
        [site] = listing(client, feed)["service_at_locations"]
        return [p["number"] for p in site["location"]["phones"]]

    assert desk_phones() == ["202-555-0199"]
    edit(client, feed, {"phones": []}, kind="locations", record="loc0")
    feed.reimport(db)
    assert desk_phones() == []
    feed.row("phone", "ph0-desk")["number"] = "202-555-0123"
    feed.reimport(db)
    assert desk_phones() == ["202-555-0123"]
    [conflict] = conflicts(db)
    assert conflict["table_name"] == "phone" and conflict["local_value"] is None


def test_a_reverted_removal_brings_the_feeds_own_row_back(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    removal = edit(client, feed, {"hours": [MON_WED_FRI]})["edit"]
    response = client.post(f"/api/v1/listing-edits/{removal['id']}/revert",
                           headers=feed.admin)
    assert response.status_code == 200, response.text
    with db.session() as session:
        t = hsds_tables["schedule"]
        saturday = session.execute(select(t).where(t.c.byday == "SA")).mappings().one()
    assert saturday["id"] == feed.ids["sch0-sat"] and saturday["record_source"] == "city"

    # No longer an edit: the source's next change simply arrives.
    feed.row("schedule", "sch0-sat")["closes_at"] = "13:00"
    feed.reimport(db)
    assert ("SA", "10:00", "13:00") in hours(listing(client, feed))
    assert conflicts(db) == []


# --- verification and capacity ----------------------------------------------------------------


def test_still_accurate_stands_until_the_source_brings_a_newer_verification(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    response = client.post(f"/api/v1/services/{feed.ids['svc0']}/verify", headers=feed.pat)
    assert response.status_code == 200, response.text
    verified_at = when(response.json()["verified_at"])

    # The source changes the service, with an older verification of its own.
    svc = feed.row("service", "svc0")
    svc.update(description="Groceries twice a week", x_verified_at="2024-03-01T12:00:00Z",
               x_verified_by="211 call centre", x_verification_method="phone call")
    feed.reimport(db)
    doc = listing(client, feed)
    assert doc["description"] == "Groceries twice a week"  # the source's change arrives
    assert when(doc["x_verified_at"]) == verified_at
    assert doc["x_verified_by"] == "pat" and doc["x_verification_method"] == "partner confirmed"

    # A newer verification from the source wins.
    newer = verified_at + timedelta(minutes=5)
    svc["x_verified_at"] = newer.isoformat()
    feed.reimport(db)
    doc = listing(client, feed)
    assert when(doc["x_verified_at"]) == newer
    assert doc["x_verified_by"] == "211 call centre"
    assert doc["x_verification_method"] == "phone call"
    assert conflicts(db) == []


def test_a_capacity_update_stands_until_the_source_brings_a_newer_one(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    sal0 = feed.ids["sal0"]
    edit(client, feed, {"sites": [{"service_at_location_id": sal0,
                                   "capacity_status": "waitlist"}]})
    [site] = listing(client, feed)["service_at_locations"]
    updated_at = when(site["x_capacity_updated_at"])

    # The source says something else about the site, dated earlier (or not at all).
    feed.row("service_at_location", "sal0").update(
        description="Side door", x_capacity_status="has_capacity",
        x_capacity_updated_at="2024-03-01T12:00:00Z")
    feed.reimport(db)
    [site] = listing(client, feed)["service_at_locations"]
    assert site["description"] == "Side door"
    assert site["x_capacity_status"] == "waitlist"
    assert when(site["x_capacity_updated_at"]) == updated_at

    feed.row("service_at_location", "sal0")["x_capacity_updated_at"] = ""
    feed.reimport(db)
    [site] = listing(client, feed)["service_at_locations"]
    assert site["x_capacity_status"] == "waitlist"

    # Newer news from the source wins; it is not a conflict, just more recent.
    newer = updated_at + timedelta(minutes=5)
    feed.row("service_at_location", "sal0").update(
        x_capacity_status="no_capacity", x_capacity_updated_at=newer.isoformat())
    feed.reimport(db)
    [site] = listing(client, feed)["service_at_locations"]
    assert site["x_capacity_status"] == "no_capacity"
    assert when(site["x_capacity_updated_at"]) == newer
    assert conflicts(db) == []


def test_a_source_without_edits_still_updates_capacity_and_verification(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    feed.row("service_at_location", "sal0")["x_capacity_status"] = "waitlist"
    feed.row("service", "svc0")["x_verified_at"] = "2024-03-01T12:00:00Z"
    feed.reimport(db)
    feed.row("service_at_location", "sal0")["x_capacity_status"] = "has_capacity"
    feed.row("service", "svc0")["x_verified_at"] = "2025-03-01T12:00:00-05:00"
    feed.reimport(db)
    doc = listing(client, feed)
    assert doc["service_at_locations"][0]["x_capacity_status"] == "has_capacity"
    assert when(doc["x_verified_at"]) == datetime(2025, 3, 1, 17, tzinfo=UTC)


# --- the listing as the API shows it ----------------------------------------------------------


def test_the_listing_shows_site_hours_and_its_version(
        db: Database, client, feed: Feed) -> None:  # noqa: ANN001
    sal0 = feed.ids["sal0"]
    result = edit(client, feed, {"sites": [{"service_at_location_id": sal0, "hours": [
        {"days": ["TU", "TH"], "opens_at": "22:00", "closes_at": "06:00"}]}]})
    doc = listing(client, feed)
    [site] = doc["service_at_locations"]
    assert [(s["byday"], s["opens_at"], s["closes_at"]) for s in site["schedules"]] == \
        [("TU,TH", "22:00", "06:00")]
    assert hours(doc) == [("MO,WE,FR", "09:00", "17:00"), ("SA", "10:00", "12:00")]
    assert when(doc["x_updated_at"]) == when(result["updated_at"])
    assert site["location"]["x_updated_at"]

    # The version read is the one an edit sends back; an older one is refused.
    edit(client, feed, {"name": "Pantry Zero", "expected_updated_at": doc["x_updated_at"]})
    edit(client, feed, {"name": "Pantry 0", "expected_updated_at": doc["x_updated_at"]},
         status=409)

    # The site's own hours survive a re-import of the feed.
    feed.reimport(db)
    [site] = listing(client, feed)["service_at_locations"]
    assert [s["byday"] for s in site["schedules"]] == ["TU,TH"]
