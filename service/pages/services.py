"""The service detail page: everything a case manager checks before a referral.

`get_service` (the same call as `GET /api/v1/services/{id}`) gives the HSDS listing; `detail`
turns it into plain values for `templates/service.html`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse

from service.deps import SessionDep, SettingsDep
from service.directory import service as directory
from service.directory.schedules import describe, open_status, rule_from_hsds
from service.pages.search import FIELDS
from service.web import templates

router = APIRouter(include_in_schema=False)

LANGUAGES = {
    "en": "English", "es": "Spanish", "fr": "French", "zh": "Chinese", "vi": "Vietnamese",
    "ko": "Korean", "ar": "Arabic", "ru": "Russian", "pt": "Portuguese", "ht": "Haitian Creole",
    "am": "Amharic", "tl": "Tagalog", "so": "Somali", "fa": "Persian", "hi": "Hindi",
    "ur": "Urdu", "pl": "Polish", "de": "German", "it": "Italian", "ja": "Japanese",
    "asl": "American Sign Language",
}
CAPACITY = {"has_capacity": "Has capacity", "waitlist": "Waitlist",
            "assessment_needed": "Assessment needed first", "no_capacity": "No capacity now"}
OPEN_TEXT = {"open": "Open now", "closed": "Closed now", "unknown": "Hours not known"}


def _hours(schedules: list[dict[str, Any]], tz: str | None,
           now: datetime) -> tuple[str, str | None, list[str]]:
    """(open status, short hours text, the listing's own notes on its hours)."""
    rules = []
    for row in schedules:
        try:
            rules.append(rule_from_hsds(row))
        except ValueError:
            continue
    notes = [row["description"] for row in schedules if row.get("description")]
    rules = [r for r in rules if r.opens_at is not None or r.is_closure]
    if not rules:
        return "unknown", None, notes
    return open_status(rules, at=now, tz=tz).value, describe(rules) or None, notes


def _address(location: dict[str, Any]) -> list[str]:
    if location.get("x_is_confidential"):
        return ["Address kept confidential: call for directions"]
    for adr in location.get("addresses") or []:
        if adr.get("address_type", "physical") == "physical":
            city = ", ".join(filter(None, [adr.get("city"), adr.get("state_province")]))
            return [line for line in (adr.get("address_1"), adr.get("address_2"),
                                      " ".join(filter(None, [city, adr.get("postal_code")])))
                    if line]
    return []


def _phones(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"number": p["number"], "extension": p.get("extension"), "type": p.get("type"),
             "description": p.get("description"),
             "tel": "".join(ch for ch in p["number"] if ch.isdigit() or ch == "+")}
            for p in rows if p.get("number")]


def _web_url(value: str | None) -> str | None:
    """Only http(s) links are shown as links (a listing's `javascript:` URL stays inert)."""
    if value and value.strip().lower().startswith(("http://", "https://")):
        return value.strip()
    return None


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).strftime("%B %-d, %Y")
    except ValueError:
        return value


def detail(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The listing as the detail page shows it."""
    sites = []
    for sal in doc.get("service_at_locations") or []:
        loc = sal.get("location") or {}
        if sal.get("x_is_active") is False:
            continue
        status, hours, notes = _hours(sal.get("schedules") or loc.get("schedules") or
                                      doc.get("schedules") or [], loc.get("x_time_zone"), now)
        sites.append({
            "name": loc.get("name"), "address": _address(loc),
            "open_status": status, "open_text": OPEN_TEXT[status], "hours": hours,
            "hours_notes": notes, "transportation": loc.get("transportation"),
            "phones": _phones(loc.get("phones") or []),
            "capacity": CAPACITY.get(sal.get("x_capacity_status") or ""),
            "accessibility": [a.get("description") for a in loc.get("accessibility") or []
                              if a.get("description")],
        })
    status, hours, notes = _hours(doc.get("schedules") or [], None, now)
    if sites and not hours:
        status, hours, notes = sites[0]["open_status"], sites[0]["hours"], notes
    languages = []
    for lang in doc.get("languages") or []:
        label = lang.get("name") or LANGUAGES.get((lang.get("code") or "").lower(),
                                                  lang.get("code"))
        if label and label not in languages:
            languages.append(label)
    ages = [doc.get("minimum_age"), doc.get("maximum_age")]
    age_text = None
    if ages[0] is not None and ages[1] is not None:
        age_text = f"Ages {ages[0]} to {ages[1]}"
    elif ages[0] is not None:
        age_text = f"Ages {ages[0]} and older"
    elif ages[1] is not None:
        age_text = f"Ages {ages[1]} and younger"
    capacities = [{"available": c.get("available"), "maximum": c.get("maximum"),
                   "unit": (c.get("unit") or {}).get("name"), "description": c.get("description"),
                   "updated": _date(c.get("updated"))}
                  for c in doc.get("capacities") or []]
    organization = doc.get("organization") or {}
    return {
        "id": doc["id"], "name": doc.get("name"), "organization": organization.get("name"),
        "description": doc.get("description"), "alert": doc.get("alert"),
        "url": _web_url(doc.get("url")), "email": doc.get("email"),
        "open_status": status, "open_text": OPEN_TEXT[status], "hours": hours,
        "hours_notes": notes,
        "eligibility": doc.get("eligibility_description"), "ages": age_text,
        "documents": [d["document"] for d in doc.get("required_documents") or []
                      if d.get("document")],
        "languages": languages,
        "phones": _phones(doc.get("phones") or []),
        "fees": doc.get("fees_description") or doc.get("fees"),
        "application_process": doc.get("application_process"),
        "wait_time": doc.get("wait_time"),
        "interpretation": doc.get("interpretation_services"),
        "verified": _date(doc.get("x_verified_at")), "verified_by": doc.get("x_verified_by"),
        "updated": _date(doc.get("last_modified")),
        "capacities": capacities,
        "referable": doc.get("x_is_referable", True),
        "sites": sites,
    }


def back_query(back: str) -> str:
    """The search's own query string, rebuilt from known fields only."""
    return urlencode([(k, v) for k, v in parse_qsl(back)[:20] if k in (*FIELDS, "page")])


@router.get("/services/{service_id}", response_class=HTMLResponse, name="service_page")
def service_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    service_id: Annotated[str, Path(max_length=64)],
    back: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    """One listing: hours, eligibility, documents to bring, languages, phones, verification."""
    found = directory.get_service(session, service_id)
    return templates.TemplateResponse(request, "service.html", {
        "service": detail(found["service"], datetime.now(UTC)), "source": found["source"],
        "back": back_query(back), "demo_notice": settings.demo_notice})
