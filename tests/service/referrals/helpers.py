"""A small directory, an agency's case manager and partners, a client with consent."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from indexer.pipeline import load
from service.db import Database
from service.directory.tables import hsds_tables
from tests.factories import directory_package
from tests.service.accounts.helpers import user_headers


@dataclass
class World:
    casey: dict[str, str]  # case manager, North Agency
    pat: dict[str, str]  # partner of org0 (svc0 at sal0 / loc0)
    otto: dict[str, str]  # partner of org1
    ids: dict[str, str]  # the package's ids (org0, svc0, loc0, sal0, ...) -> the stored ids

    def id(self, source_id: str | None) -> str | None:
        return self.ids.get(source_id, source_id) if source_id else source_id


def make_world(db: Database, http, tmp_path: Path) -> World:  # noqa: ANN001
    load(db, directory_package(2).write(tmp_path / "pkg"), source="city")
    ids = {}
    with db.session() as session:
        for name in ("organization", "service", "location", "service_at_location"):
            table = hsds_tables[name]
            ids.update(session.execute(select(table.c.record_source_id, table.c.id)).all())
    return World(
        casey=user_headers(db, http, "casey", role="case_manager", agency="North Agency"),
        pat=user_headers(db, http, "pat", role="partner", organizations=(ids["org0"],)),
        otto=user_headers(db, http, "otto", role="partner", organizations=(ids["org1"],)),
        ids=ids,
    )


def a_client(http, world: World, headers: dict[str, str], *,  # noqa: ANN001
             consent_to: str | None = "org0",  # noqa: ANN001
             shares: tuple[str, ...] = ("identity", "contact", "demographics", "needs",
                                        "referral_status"),
             is_part2: bool = False) -> int:
    response = http.post("/api/v1/clients", headers=headers, json={
        "name": "Rosa Q. Example", "date_of_birth": "1984-06-02", "preferred_language": "es",
        "contact_preference": "text", "no_voicemail": True})
    assert response.status_code == 201, response.text
    client_id = response.json()["client"]["id"]
    if consent_to is not None:
        consent = http.post(f"/api/v1/clients/{client_id}/consents", headers=headers, json={
            "shares": list(shares), "shared_with_organization_id": world.id(consent_to),
            "purpose": "referral for groceries", "is_part2": is_part2})
        assert consent.status_code == 201, consent.text
    return client_id


def refer(http, world: World, headers: dict[str, str], client_id: int, *,  # noqa: ANN001
          status: int = 201, **overrides: Any) -> dict[str, Any]:
    body = {"client_id": client_id, "service_at_location_id": "sal0", "need": "food",
            "note": "Needs groceries this week", "urgency": "urgent", "send": True,
            **overrides}
    for key in ("service_id", "service_at_location_id"):
        body[key] = world.id(body.get(key))
    response = http.post("/api/v1/referrals", headers=headers, json=body)
    assert response.status_code == status, response.text
    return response.json()


def move(http, headers: dict[str, str], referral: dict[str, Any], to: str, *,  # noqa: ANN001
         status: int = 200, **extra: Any) -> dict[str, Any]:
    body = {"to": to, "expected_version": referral["version"], **extra}
    response = http.post(f"/api/v1/referrals/{referral['id']}/transitions", headers=headers,
                         json=body)
    assert response.status_code == status, response.text
    return response.json()
