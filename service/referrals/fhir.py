"""A referral as FHIR R4: a Bundle (collection) holding a ServiceRequest + Task pair in the shape
of the HL7 SDOH Clinical Care guide, with the Patient and the two Organizations they point at.

- Task (SDOHCC TaskForReferralManagement): `focus` the ServiceRequest, `for` the Patient,
  `requester` the referring agency, `owner` the partner organization, `code` fulfill, `status`
  our status (our statuses are FHIR's Task statuses), `statusReason` whenever the status is
  rejected, on-hold, failed or cancelled (our required reason code).
- ServiceRequest (SDOHCC ServiceRequest): `category` the SDOH category where our need category
  maps onto one (and our category's name as text), `code` our need category, `subject` the
  Patient, `requester` and `performer`, `authoredOn` and `occurrencePeriod` from when it was
  sent, `priority` from the urgency.
- Patient: only what the caller may see of the client, as on the referral itself
  (`service.referrals.service.get_referral`, whose consent logic this reuses): a partner sees
  initials only until the referral is accepted, then what the client's consent shares; the
  internal client id goes to the client's own agency only.

The export is a read of client data: audited as `referral.export_fhir`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import agency
from service.directory.categories import category_tree
from service.directory.tables import organization
from service.referrals import service as referrals

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare"
TASK_PROFILE = f"{SDOHCC}/StructureDefinition/SDOHCC-TaskForReferralManagement"
SERVICE_REQUEST_PROFILE = f"{SDOHCC}/StructureDefinition/SDOHCC-ServiceRequest"
SDOH_CATEGORY_SYSTEM = f"{SDOHCC}/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TASK_CODE_SYSTEM = "http://hl7.org/fhir/CodeSystem/task-code"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
# Signpost's own code systems (no public terminology holds them).
NEED_SYSTEM = "urn:signpost:need-category"  # Open Eligibility v2 ids, as in the directory
REASON_SYSTEM = "urn:signpost:referral-reason"
CLIENT_SYSTEM = "urn:signpost:client"
ORGANIZATION_SYSTEM = "urn:signpost:organization"
AGENCY_SYSTEM = "urn:signpost:agency"
NAMESPACE = uuid.UUID("5b0d8f0e-3c55-4a4e-9a59-6e1a5f2f4a10")  # stable fullUrls per referral

STATUS_REASON_REQUIRED = frozenset({"rejected", "on-hold", "failed", "cancelled"})
# Our need categories (and everything under them) -> SDOH CC categories. The most specific
# match wins; a category with none gets only its name as text.
SDOH_CATEGORIES: dict[str, tuple[str, str]] = {
    "1102": ("food-insecurity", "Food Insecurity"),
    "1120": ("food-insecurity", "Food Insecurity"),  # Emergency > Emergency Food
    "1103": ("housing-instability", "Housing Instability"),
    "1121": ("homelessness", "Homelessness"),  # Emergency > Emergency Shelter
    "1135": ("homelessness", "Homelessness"),  # Housing > Emergency Shelter
    "1104": ("material-hardship", "Material Hardship"),
    "1105": ("transportation-insecurity", "Transportation Insecurity"),
    "1107": ("financial-insecurity", "Financial Insecurity"),
    "1113": ("financial-insecurity", "Financial Insecurity"),  # Emergency Payments
    "1267": ("health-insurance-coverage-status", "Health Insurance Coverage Status"),
    "1199": ("medical-cost-burden", "Medical Cost Burden"),  # Help Pay for Healthcare
    "1109": ("educational-attainment", "Educational Attainment"),
    "1110": ("employment-status", "Employment Status"),
    "1303": ("social-connection", "Social Connection"),  # Care > Support Network
}
# Our urgency -> FHIR request priority (routine < urgent < asap < stat).
PRIORITY = {"routine": "routine", "soon": "urgent", "urgent": "asap"}
# Our status -> the ServiceRequest's status.
REQUEST_STATUS = {"draft": "draft", "requested": "active", "accepted": "active",
                  "in-progress": "active", "on-hold": "on-hold", "completed": "completed",
                  "rejected": "revoked", "failed": "revoked", "cancelled": "revoked",
                  "entered-in-error": "entered-in-error"}
REASON_LABELS = {"no_capacity": "No capacity", "not_eligible": "Not eligible",
                 "could_not_contact": "Could not contact the client",
                 "client_declined": "Client declined", "got_help": "Client got help",
                 "duplicate": "Duplicate referral", "other": "Other reason"}


def sdoh_category(category_id: str) -> tuple[str, str] | None:
    """The SDOH CC category (code, display) for one of our need categories, if one maps."""
    tree = category_tree()
    if tree.get(category_id) is None:
        return SDOH_CATEGORIES.get(category_id)
    for node in reversed(tree.path(category_id)):
        if node.id in SDOH_CATEGORIES:
            return SDOH_CATEGORIES[node.id]
    return None


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _urn(referral_id: int, kind: str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'referral/{referral_id}/{kind}')}"


def _initials(name: str) -> str:
    return " ".join(f"{word[0]}." for word in name.split() if word[:1].isalnum())


def _patient(detail: Mapping[str, Any], *, actor: Principal) -> dict[str, Any]:
    person = detail["client"]
    name = person["name"]
    if actor.role == "partner" and detail["status"] not in referrals.TAKEN_ON:
        name = _initials(name)  # before acceptance a partner gets initials only
    patient: dict[str, Any] = {"resourceType": "Patient"}
    if name:
        patient["name"] = [{"text": name}]
    if detail.get("client_id") is not None:
        patient["identifier"] = [{"system": CLIENT_SYSTEM, "value": str(detail["client_id"])}]
    if person.get("date_of_birth") and (actor.role != "partner"
                                        or detail["status"] in referrals.TAKEN_ON):
        born = person["date_of_birth"]
        patient["birthDate"] = born.isoformat() if isinstance(born, date) else str(born)
    if person.get("preferred_language"):
        patient["communication"] = [{"language": {
            "coding": [{"system": "urn:ietf:bcp:47", "code": person["preferred_language"]}]},
            "preferred": True}]
    return patient


def _status_reason(detail: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reason recorded with the move into the current status."""
    for event in reversed(detail["events"]):
        if event["kind"] == "transition" and event["to_status"] == detail["status"]:
            code = event["reason_code"]
            if code is None:
                return None
            return {"coding": [{"system": REASON_SYSTEM, "code": code,
                                "display": REASON_LABELS.get(code, code)}],
                    "text": REASON_LABELS.get(code, code)}
    return None


def referral_bundle(session: Session, *, actor: Principal, referral_id: int) -> dict[str, Any]:
    """The referral as a FHIR R4 Bundle (JSON-ready), with only what the actor may see;
    audited. Not found (404) for a referral outside the actor's scope."""
    detail = referrals.get_referral(session, actor=actor, referral_id=referral_id,
                                    action="referral.export_fhir")
    org_name = session.execute(select(organization.c.name).where(
        organization.c.id == detail["organization_id"])).scalar()
    agency_name = session.execute(select(agency.c.name).where(
        agency.c.id == detail["agency_id"])).scalar()
    urls = {kind: _urn(referral_id, kind)
            for kind in ("ServiceRequest", "Task", "Patient", "Owner", "Requester")}
    patient_ref = {"reference": urls["Patient"], "type": "Patient"}
    owner_ref = {"reference": urls["Owner"], "type": "Organization", "display": org_name}
    requester_ref = {"reference": urls["Requester"], "type": "Organization",
                     "display": agency_name}
    need = detail["need"]
    sent = detail["sent_at"] or detail["created_at"]

    category: dict[str, Any] = {"text": need["name"]}
    mapped = sdoh_category(need["id"])
    if mapped is not None:
        category["coding"] = [{"system": SDOH_CATEGORY_SYSTEM, "code": mapped[0],
                               "display": mapped[1]}]
    service_request: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": f"referral-{referral_id}",
        "meta": {"profile": [SERVICE_REQUEST_PROFILE],
                 "lastUpdated": _instant(detail["updated_at"])},
        "identifier": [{"system": "urn:signpost:referral", "value": str(referral_id)}],
        "status": REQUEST_STATUS[detail["status"]],
        "intent": "order",
        "priority": PRIORITY[detail["urgency"]],
        "category": [category],
        "code": {"coding": [{"system": NEED_SYSTEM, "code": need["id"],
                             "display": need["name"]}], "text": need["name"]},
        "subject": patient_ref,
        "occurrencePeriod": {"start": _instant(sent)},
        "authoredOn": _instant(sent),
        "requester": requester_ref,
        "performer": [owner_ref],
    }
    notes = [text for text in (detail.get("note"), detail.get("redisclosure_notice")) if text]
    if notes:
        service_request["note"] = [{"text": text} for text in notes]

    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": f"referral-{referral_id}-task",
        "meta": {"profile": [TASK_PROFILE], "lastUpdated": _instant(detail["updated_at"]),
                 "versionId": str(detail["version"])},
        "identifier": [{"system": "urn:signpost:referral", "value": str(referral_id)}],
        "status": detail["status"],
        "intent": "order",
        "priority": PRIORITY[detail["urgency"]],
        "code": {"coding": [{"system": TASK_CODE_SYSTEM, "code": "fulfill",
                             "display": "Fulfill the focal request"}]},
        "focus": {"reference": urls["ServiceRequest"], "type": "ServiceRequest"},
        "for": patient_ref,
        "authoredOn": _instant(sent),
        "lastModified": _instant(detail["updated_at"]),
        "requester": requester_ref,
        "owner": owner_ref,
    }
    reason = _status_reason(detail)
    if detail["status"] in STATUS_REASON_REQUIRED:
        task["statusReason"] = reason or {"text": "No reason was recorded"}
    elif reason is not None:
        task["statusReason"] = reason

    security = []
    if detail.get("redisclosure_notice"):  # 42 CFR Part 2: no redisclosure without consent
        security = [{"system": ACT_CODE_SYSTEM, "code": "42CFRPart2",
                     "display": "42 CFR Part2"},
                    {"system": ACT_CODE_SYSTEM, "code": "NORDSCLCD",
                     "display": "no redisclosure without consent directive"}]
    owner = {"resourceType": "Organization", "name": org_name,
             "identifier": [{"system": ORGANIZATION_SYSTEM,
                             "value": detail["organization_id"]}]}
    requester = {"resourceType": "Organization", "name": agency_name,
                 "identifier": [{"system": AGENCY_SYSTEM, "value": str(detail["agency_id"])}]}
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid5(NAMESPACE, f"referral/{referral_id}/v{detail['version']}")),
        "type": "collection",
        "timestamp": _instant(datetime.now(UTC)),
        "entry": [{"fullUrl": urls[kind], "resource": resource} for kind, resource in (
            ("ServiceRequest", service_request), ("Task", task),
            ("Patient", _patient(detail, actor=actor)), ("Owner", owner),
            ("Requester", requester))],
    }
    if security:
        bundle["meta"] = {"security": security}
    return bundle
