"""A referral as FHIR R4 (SDOH Clinical Care shape): valid against the fhir.resources R4B models
(R4B keeps R4's Task and ServiceRequest; the library ships no plain R4 package), the guide's own
rules checked here, and only what the caller may see of the client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from sqlalchemy import func, select

from service.audit.tables import audit_event
from service.clients.service import PART2_NOTICE
from service.db import Database
from service.referrals import fhir
from tests.service.referrals.helpers import World, a_client, make_world, move, refer

# FHIR R4 code lists the models do not check (http://hl7.org/fhir/R4/valueset-*.html).
TASK_STATUSES = {"draft", "requested", "received", "accepted", "rejected", "ready",
                 "cancelled", "in-progress", "on-hold", "failed", "completed",
                 "entered-in-error"}
REQUEST_STATUSES = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error",
                    "unknown"}
PRIORITIES = {"routine", "urgent", "asap", "stat"}
NEEDS_A_REASON = {"rejected", "on-hold", "failed", "cancelled"}


@pytest.fixture
def world(db: Database, client, tmp_path: Path) -> World:  # noqa: ANN001
    return make_world(db, client, tmp_path)


def export(http, headers: dict[str, str], referral_id: int, *,  # noqa: ANN001
           status: int = 200) -> dict[str, Any]:
    response = http.get(f"/api/v1/referrals/{referral_id}/fhir", headers=headers)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["content-type"].startswith("application/fhir+json")
    return response.json()


def check(bundle: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate with the R4(B) models and check the SDOH CC guide's rules; the resources by
    type (Organization: by role)."""
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "collection"
    models = {"Task": Task, "ServiceRequest": ServiceRequest, "Patient": Patient,
              "Organization": Organization}
    by_url = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        models[resource["resourceType"]].model_validate(resource)
        by_url[entry["fullUrl"]] = resource
    assert len(by_url) == len(bundle["entry"]) == 5

    def resolve(reference: dict[str, Any], kind: str) -> dict[str, Any]:
        target = by_url[reference["reference"]]
        assert target["resourceType"] == kind and reference.get("type", kind) == kind
        return target

    [task] = [r for r in by_url.values() if r["resourceType"] == "Task"]
    [request] = [r for r in by_url.values() if r["resourceType"] == "ServiceRequest"]
    assert task["meta"]["profile"] == [fhir.TASK_PROFILE]
    assert task["meta"]["profile"][0] == ("http://hl7.org/fhir/us/sdoh-clinicalcare/"
                                          "StructureDefinition/SDOHCC-TaskForReferralManagement")
    assert request["meta"]["profile"] == [("http://hl7.org/fhir/us/sdoh-clinicalcare/"
                                           "StructureDefinition/SDOHCC-ServiceRequest")]
    # The guide: focus, for, requester and owner present; code fulfill; intent order.
    assert resolve(task["focus"], "ServiceRequest") is request
    patient = resolve(task["for"], "Patient")
    assert resolve(request["subject"], "Patient") is patient
    owner = resolve(task["owner"], "Organization")
    requester = resolve(task["requester"], "Organization")
    assert resolve(request["requester"], "Organization") is requester
    assert [resolve(p, "Organization") for p in request["performer"]] == [owner]
    assert task["code"]["coding"] == [{"system": "http://hl7.org/fhir/CodeSystem/task-code",
                                       "code": "fulfill",
                                       "display": "Fulfill the focal request"}]
    assert task["intent"] == request["intent"] == "order"
    assert task["status"] in TASK_STATUSES and request["status"] in REQUEST_STATUSES
    assert task["priority"] in PRIORITIES and request["priority"] == task["priority"]
    if task["status"] in NEEDS_A_REASON:
        reason = task["statusReason"]
        assert reason["text"] and reason["coding"][0]["code"]
    assert request["authoredOn"] == task["authoredOn"] == request["occurrencePeriod"]["start"]
    assert request["code"]["text"] and request["category"][0]["text"] == request["code"]["text"]
    return {"Task": task, "ServiceRequest": request, "Patient": patient, "owner": owner,
            "requester": requester}


def test_every_status_exports_a_valid_pair(db: Database, client, world: World) -> None:  # noqa: ANN001
    casey, pat = world.casey, world.pat
    client_id = a_client(client, world, casey)
    paths = {
        "draft": None, "requested": [],
        "accepted": [(pat, "accepted", {})],
        "rejected": [(pat, "rejected", {"reason_code": "not_eligible"})],
        "in-progress": [(pat, "accepted", {}), (pat, "in-progress", {})],
        "on-hold": [(pat, "accepted", {}), (pat, "on-hold", {"reason_code": "no_capacity"})],
        "failed": [(pat, "accepted", {}), (pat, "in-progress", {}),
                   (pat, "failed", {"reason_code": "could_not_contact"})],
        "completed": [(pat, "accepted", {}), (pat, "in-progress", {}),
                      (pat, "completed", {})],
        "cancelled": [(casey, "cancelled", {"reason_code": "client_declined"})],
        "entered-in-error": [(casey, "entered-in-error", {})],
    }
    expected_request_status = {"draft": "draft", "requested": "active", "accepted": "active",
                               "in-progress": "active", "on-hold": "on-hold",
                               "completed": "completed", "rejected": "revoked",
                               "failed": "revoked", "cancelled": "revoked",
                               "entered-in-error": "entered-in-error"}
    reasons = {"rejected": "not_eligible", "on-hold": "no_capacity",
               "failed": "could_not_contact", "cancelled": "client_declined"}
    for status, moves in paths.items():
        ref = refer(client, world, casey, client_id, send=moves is not None)
        for headers, to, extra in moves or ():
            ref = move(client, headers, ref, to, **extra)
        assert ref["status"] == status
        parts = check(export(client, casey, ref["id"]))
        task, request = parts["Task"], parts["ServiceRequest"]
        assert task["status"] == status, status
        assert request["status"] == expected_request_status[status], status
        assert task["meta"]["versionId"] == str(ref["version"])
        if status in reasons:
            assert task["statusReason"]["coding"][0] == {
                "system": fhir.REASON_SYSTEM, "code": reasons[status],
                "display": fhir.REASON_LABELS[reasons[status]]}
        else:
            assert "statusReason" not in task, status
        assert parts["owner"]["name"] == "Organization 0"
        assert parts["owner"]["identifier"][0]["value"] == world.id("org0")
        assert parts["requester"]["name"] == "North Agency"
        assert request["priority"] == "asap"  # urgent


def test_need_categories_map_onto_sdoh_categories(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    for need, expected in (("food", ("food-insecurity", "Food")),
                           ("1130", ("food-insecurity", "Food Pantry")),  # under Food
                           ("1135", ("homelessness", "Emergency Shelter")),
                           ("transit", ("transportation-insecurity", "Transit")),
                           ("legal", (None, "Legal"))):
        ref = refer(client, world, world.casey, client_id, need=need)
        request = check(export(client, world.casey, ref["id"]))["ServiceRequest"]
        code, name = expected
        category = request["category"][0]
        assert category["text"] == name == request["code"]["text"]
        assert request["code"]["coding"][0]["system"] == fhir.NEED_SYSTEM
        if code is None:
            assert "coding" not in category
        else:
            [coding] = category["coding"]
            assert coding["system"] == ("http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                                        "SDOHCC-CodeSystemTemporaryCodes")
            assert coding["code"] == code and coding["display"]


def test_only_what_the_caller_may_see_of_the_client(db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey)
    sent = refer(client, world, world.casey, client_id)

    agency = check(export(client, world.casey, sent["id"]))
    assert agency["Patient"]["name"] == [{"text": "Rosa Q. Example"}]
    assert agency["Patient"]["birthDate"] == "1984-06-02"
    assert agency["Patient"]["identifier"] == [{"system": fhir.CLIENT_SYSTEM,
                                                "value": str(client_id)}]
    assert agency["ServiceRequest"]["note"] == [{"text": "Needs groceries this week"}]

    before = check(export(client, world.pat, sent["id"]))
    assert before["Patient"] == {"resourceType": "Patient", "name": [{"text": "R."}]}
    assert "note" not in before["ServiceRequest"]  # the consent does not share notes
    raw = client.get(f"/api/v1/referrals/{sent['id']}/fhir", headers=world.pat).text
    for secret in ("Rosa", "Example", "1984", "groceries", fhir.CLIENT_SYSTEM):
        assert secret not in raw, secret

    accepted = move(client, world.pat, sent, "accepted")
    after = check(export(client, world.pat, accepted["id"]))
    patient = after["Patient"]
    assert patient["name"] == [{"text": "Rosa Q. Example"}]  # the consent shares identity
    assert patient["birthDate"] == "1984-06-02"  # and demographics
    assert patient["communication"][0]["language"]["coding"][0]["code"] == "es"
    assert "identifier" not in patient  # the agency's internal id is not the partner's

    export(client, world.otto, sent["id"], status=404)  # another organization's referral
    assert client.get(f"/api/v1/referrals/{sent['id']}/fhir").status_code == 401
    with db.session() as session:
        exports = session.execute(select(func.count()).select_from(audit_event).where(
            audit_event.c.action == "referral.export_fhir")).scalar_one()
    assert exports == 4  # casey, pat twice, and pat's raw read; otto's refusal is not one


def test_a_partner_without_identity_consent_sees_the_first_name_only(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey, shares=("referral_status",))
    accepted = move(client, world.pat, refer(client, world, world.casey, client_id),
                    "accepted")
    patient = check(export(client, world.pat, accepted["id"]))["Patient"]
    assert patient == {"resourceType": "Patient", "name": [{"text": "Rosa"}]}


def test_part2_information_carries_its_labels_and_notice(
        db: Database, client, world: World) -> None:  # noqa: ANN001
    client_id = a_client(client, world, world.casey,
                         shares=("identity", "substance_use_treatment"), is_part2=True)
    sent = refer(client, world, world.casey, client_id)
    bundle = export(client, world.pat, sent["id"])
    request = check(bundle)["ServiceRequest"]
    codes = {c["code"] for c in bundle["meta"]["security"]}
    assert codes == {"42CFRPart2", "NORDSCLCD"}
    assert {"text": PART2_NOTICE} in request["note"]
