"""Why a result matched and what to watch for, as {code, params, text} notes.

Shared by both engines: they find and order candidates; this module explains them the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from service.directory.categories import category_tree
from service.directory.eligibility import Eligibility, check_client
from service.directory.schedules import describe, open_status, rule_from_hsds
from service.search.schemas import Note, SearchQuery, SearchResult

STALE_MONTHS = 12


def note(code: str, text: str, **params: Any) -> dict[str, Any]:
    """One reason or caution, as the fields of a `Note` (a result validates its notes with
    itself, in one call: a `Note` built apiece costs a validation call of its own)."""
    return {"code": code, "params": params, "text": text}


def _rules(doc: dict[str, Any]) -> list[Any]:
    rules = []
    for row in doc.get("schedules") or []:
        try:
            rules.append(rule_from_hsds(row))
        except ValueError:
            continue
    return rules


def open_state(doc: dict[str, Any], at: datetime | None = None) -> tuple[str, str | None]:
    """("open" | "closed" | "unknown", short hours text) in the listing's time zone."""
    rules = [r for r in _rules(doc) if r.opens_at is not None or r.is_closure]
    if not rules:
        return "unknown", None
    result = open_status(rules, at=at or datetime.now(UTC), tz=doc.get("time_zone"))
    return result.value, describe(rules) or None


def months_since(when: str | datetime | None, now: datetime) -> int | None:
    """Whole months between `when` and `now`, or None."""
    if not when:
        return None
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (now.year - when.year) * 12 + now.month - when.month


def explain(doc: dict[str, Any], query: SearchQuery, *, distance: float | None,
            matched_categories: list[str], matched_words: list[str], open_value: str,
            now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(reasons, cautions) for one result, as `Note` fields."""
    tree = category_tree()
    reasons: list[dict[str, Any]] = []
    cautions: list[dict[str, Any]] = []
    named: set[str] = set()
    for cid in matched_categories:
        if cid in tree and tree[cid].name not in named and len(named) < 3:
            named.add(tree[cid].name)
            reasons.append(note("category", f"Offers {tree[cid].name}", category=cid,
                                name=tree[cid].name))
    if matched_words:
        reasons.append(note("text", "Mentions " + ", ".join(f'"{w}"' for w in matched_words),
                            words=matched_words))
    if distance is not None:
        reasons.append(note("distance", f"{distance:.1f} mi away", miles=round(distance, 1)))
    elif doc.get("is_area"):
        reasons.append(note("serves_area", "Serves the client's area", area=doc.get(
            "coverage_text")))
    client = query.client
    elig = Eligibility.from_dict(doc["eligibility"]) if doc.get("eligibility") else None
    if client.age is not None and elig and elig.age_kind == "restriction" and (
            elig.min_age is not None or elig.max_age is not None):
        reasons.append(note("age_fits", f"Serves ages {_ages(elig)}; client {client.age}",
                            min_age=elig.min_age, max_age=elig.max_age, client_age=client.age))
    language = (client.language or "").lower()
    if language and language in (doc.get("languages") or []):
        reasons.append(note("language", f"Offered in {client.language}", language=language))
    if open_value == "open":
        reasons.append(note("open_now", "Open now"))
    if doc.get("capacity_status") == "has_capacity":
        reasons.append(note("has_capacity", "Has capacity"))
    cost = set(doc.get("cost") or [])
    if "free" in cost:
        reasons.append(note("free", "Free"))
    insurance = {i.lower() for i in client.insurance}
    if insurance & cost:
        reasons.append(note("insurance", "Accepts " + ", ".join(sorted(insurance & cost)),
                            insurance=sorted(insurance & cost)))

    # Cautions: what the case manager should check before sending someone.
    if not elig or not (elig.restrictions() or elig.open_to_all or elig.populations):
        cautions.append(note("eligibility_not_stated", "Eligibility not stated"))
    elif elig.required_populations:
        cautions.append(note("population_restriction", "Only for " + ", ".join(
            p.replace("_", " ") for p in elig.required_populations),
            populations=elig.required_populations))
    if elig and elig.documents:
        cautions.append(note("documents", "Bring " + ", ".join(
            d.replace("_", " ") for d in elig.documents), documents=elig.documents))
    capacity = doc.get("capacity_status")
    if capacity == "waitlist":
        cautions.append(note("waitlist", "Waitlist"))
    elif capacity == "no_capacity":
        cautions.append(note("no_capacity", "No capacity right now"))
    elif capacity == "assessment_needed":
        cautions.append(note("assessment_needed", "Assessment needed first"))
    months = months_since(doc.get("verified_at"), now)
    if months is None:
        cautions.append(note("not_verified", "Never verified"))
    elif months >= STALE_MONTHS:
        cautions.append(note("stale", f"Not verified in {months} months", months=months))
    if doc.get("precision") in ("zip", "city", "state"):
        cautions.append(note("location_approximate",
                             f"Location approximate ({doc['precision']} level)",
                             precision=doc["precision"]))
    if open_value == "unknown":
        cautions.append(note("hours_unknown", "Hours unknown"))
    if doc.get("is_confidential"):
        cautions.append(note("confidential", "Confidential location: call first"))
    if not doc.get("is_referable", True):
        cautions.append(note("do_not_refer", "The provider asks not to be referred to"))
    if language and doc.get("languages") and language not in doc["languages"]:
        cautions.append(note("language_not_listed", f"{client.language} not listed",
                             language=language))
    return reasons, cautions


def mismatches(doc: dict[str, Any], query: SearchQuery) -> list[Note]:
    """The explicit restrictions the client profile contradicts (empty: eligible)."""
    if not doc.get("eligibility"):
        return []
    elig = Eligibility.from_dict(doc["eligibility"])
    client = query.client
    # Populations are not compared: a profile that does not say "veteran" has not said
    # "not a veteran". Those restrictions show as cautions instead.
    found = check_client(elig, age=client.age, gender=client.gender)
    return [Note(code=m.code, params=m.params, text=m.text) for m in found]


def _ages(elig: Eligibility) -> str:
    if elig.min_age is not None and elig.max_age is not None:
        return f"{elig.min_age}-{elig.max_age}"
    if elig.min_age is not None:
        return f"{elig.min_age}+"
    return f"up to {elig.max_age}"


def build_result(doc: dict[str, Any], *, distance: float | None, score: float,
                 categories: Iterable[str], query: SearchQuery, need: Any,
                 now: datetime) -> SearchResult:
    """A search result from a document as both engines store it (`categories`: the document's
    categories with their ancestors), explained the same way whichever engine found it."""
    open_value, hours = open_state(doc, query.open_at or now)
    matched = [c for c in doc["categories"] if c in need.category_ids] or sorted(
        set(categories) & need.category_ids)
    words = [w for w in need.words if w.lower() in (
        f"{doc['name']} {doc.get('organization') or ''}").lower()]
    reasons, cautions = explain(doc, query, distance=distance, matched_categories=matched,
                                matched_words=words, open_value=open_value, now=now)
    address = doc.get("address") or {}
    # Validated in one call, notes and phones with it.
    return SearchResult.model_validate({
        "service_id": doc["service_id"], "service_at_location_id": doc.get("sal_id"),
        "name": doc["name"], "organization": doc.get("organization"),
        "address": " ".join(filter(None, (address.get("address_1"),
                                          address.get("address_2")))) or None,
        "city": address.get("city"), "state": address.get("state"),
        "postal_code": address.get("postal_code"),
        "latitude": doc.get("lat"), "longitude": doc.get("lon"),
        "phones": doc.get("phones") or [],
        "distance_mi": round(distance, 2) if distance is not None else None,
        "categories": doc.get("categories") or [], "open_status": open_value, "hours": hours,
        "score": round(score, 4), "reasons": reasons, "cautions": cautions,
        "source": doc["source"], "source_id": doc["source_id"],
        "location_source_id": doc.get("location_source_id")})
