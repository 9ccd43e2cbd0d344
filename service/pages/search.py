"""The case manager's search page: a plain GET form, results as cards, paging, a map.

The route reads the form leniently (an empty box is "not given", never a 422), builds the same
`SearchQuery` as `GET /api/v1/search`, and calls the same `search_service.search`.

With `client=<id>` (from a client's page) the search is for one of the signed-in case
manager's clients: the profile starts from the client's age and language, the client travels
through the form and the paging, and each result card gets a "Refer" button for them. The same
query also gives a printable resource list (`/search/print`) and a plain-text one for a text
message or an email (`/search/text`); neither carries anything about the client.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from service.accounts.tables import AGENCY_ROLES
from service.clients import service as clients
from service.deps import DbDep, SettingsDep, authenticate
from service.directory.categories import category_tree
from service.errors import BadRequest, NotFound, Unauthorized
from service.pages.referrals import age_on, day, initials, parse_int
from service.search import service as search_service
from service.search.api import BackendDep, GeocoderDep
from service.search.schemas import ClientProfile, SearchQuery, SearchResponse, SearchResult
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 10
RADII = (1, 3, 5, 10, 25, 50)
GENDERS = (("", "Not given"), ("female", "Female"), ("male", "Male"),
           ("nonbinary", "Nonbinary"), ("transgender", "Transgender"))
COSTS = (("free", "Free"), ("sliding_scale", "Sliding scale"), ("insurance", "Takes insurance"))
# The form's fields, in the order they are carried from page to page (and to the detail page).
FIELDS = ("q", "near", "radius_mi", "age", "gender", "language", "open_now", "cost", "client")

Text = Annotated[str, Query(max_length=300)]
Short = Annotated[str, Query(max_length=32)]


def _int(value: str, low: int, high: int) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def read_form(form: dict[str, Any]) -> tuple[SearchQuery | None, dict[str, str]]:
    """The `SearchQuery` the form asks for (None when it asks nothing yet), and field errors."""
    errors: dict[str, str] = {}
    age = _int(form["age"], 0, 130)
    if form["age"].strip() and age is None:
        errors["age"] = "Age must be a whole number from 0 to 130."
    radius = _int(form["radius_mi"], 1, 250) or 10
    gender = form["gender"] if form["gender"] in dict(GENDERS) else ""
    if errors or not (form["q"].strip() or form["near"].strip()):
        return None, errors
    query = SearchQuery(
        q=form["q"].strip() or None, near=form["near"].strip() or None, radius_mi=radius,
        client=ClientProfile(age=age, gender=gender or None,
                             language=form["language"].strip() or None),
        open_now=form["open_now"], cost=form["cost"], page=form["page"], per_page=PER_PAGE)
    return query, errors


def query_string(form: dict[str, Any], **changes: Any) -> str:
    """The form as a query string (only filled fields), with `changes` applied."""
    values = {**form, **changes}
    pairs: list[tuple[str, Any]] = []
    for name in (*FIELDS, "page"):
        value = values.get(name)
        if name == "cost":
            pairs += [("cost", c) for c in value or ()]
        elif name == "open_now":
            if value:
                pairs.append(("open_now", "1"))
        elif name == "page":
            if value and value != 1:
                pairs.append(("page", value))
        elif value:
            pairs.append((name, value))
    return urlencode(pairs)


def pages_nav(form: dict[str, Any], response: SearchResponse) -> dict[str, str | None]:
    """Links to the previous and next pages of results (None at either end)."""
    prev_page = response.page - 1 if response.page > 1 else None
    next_page = response.page + 1 if response.page < response.pages else None
    return {"prev": "?" + query_string(form, page=prev_page) if prev_page else None,
            "next": "?" + query_string(form, page=next_page) if next_page else None}


def read_query(
    q: Text = "",
    near: Annotated[str, Query(max_length=200)] = "",
    radius_mi: Short = "",
    age: Short = "",
    gender: Short = "",
    language: Short = "",
    open_now: bool = False,
    cost: Annotated[list[str], Query(max_length=3)] = [],  # noqa: B006
    client: Short = "",
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> dict[str, Any]:
    """The search form's fields from the query string."""
    return {"q": q, "near": near, "radius_mi": radius_mi, "age": age, "gender": gender,
            "language": language, "open_now": open_now,
            "cost": [c for c in dict(COSTS) if c in cost], "client": client, "page": page}


FormDep = Annotated[dict[str, Any], Depends(read_query)]


def run(form: dict[str, Any], backend: Any, geocoder: Any,
        settings: Any) -> tuple[SearchResponse | None, dict[str, str]]:
    """The search the form asks for (None when it asks nothing yet), and field errors."""
    query, errors = read_form(form)
    if query is None:
        return None, errors
    try:
        return search_service.search(backend, geocoder, query,
                                     demo_notice=settings.demo_notice), errors
    except BadRequest as exc:
        errors[exc.field or "q"] = exc.message
        return None, errors


def client_for(request: Request, db: Any, value: str) -> dict[str, Any]:
    """The signed-in staff member's client named by `client=` (an audited read); sign in
    first, and "not found" for anyone else's."""
    principal = authenticate(request)
    if principal is None:
        raise Unauthorized("sign in to search for a client", field="client")
    client_id = parse_int(value)
    if client_id is None or principal.role not in AGENCY_ROLES:
        raise NotFound(f"no client {value}", field="client")
    with db.session(write=True) as session:
        return clients.get_client(session, actor=principal, client_id=client_id)


def need_for(result: SearchResult, response: SearchResponse) -> str:
    """The need category a referral from this result starts with: the result's category that
    the search asked for (or lies under it), else what the search asked for, else the
    result's own first category."""
    tree = category_tree()
    asked = [c for c in response.understood.get("categories") or [] if c in tree]
    for category in result.categories:
        if any(category in tree.descendants(a) for a in asked):
            return category
    return asked[0] if asked else next((c for c in result.categories if c in tree), "")


def refer_links(response: SearchResponse, *, client_id: int | None,
                back: str) -> dict[str, str]:
    """Each result's "Refer" link to the one-page refer flow (keyed by site, or service)."""
    links = {}
    for result in response.results:
        key = result.service_at_location_id or result.service_id
        params: list[tuple[str, Any]] = []
        if client_id is not None:
            params.append(("client", client_id))
        params.append(("service_at_location", result.service_at_location_id)
                      if result.service_at_location_id else ("service", result.service_id))
        need = need_for(result, response)
        if need:
            params.append(("need", need))
        params += [("urgency", "soon"), ("back", back)]
        links[key] = "/referrals/new?" + urlencode(params)
    return links


@router.get("/search", response_class=HTMLResponse, name="search_page")
def search_page(request: Request, backend: BackendDep, geocoder: GeocoderDep,
                settings: SettingsDep, db: DbDep, form: FormDep) -> HTMLResponse:
    """Find services for a need near a place, for a client; every result says why."""
    person = None
    if form["client"]:
        person = client_for(request, db, form["client"])
        if not (form["q"].strip() or form["near"].strip()):  # arriving from the client's page
            age = age_on(person["date_of_birth"], datetime.now(UTC).date())
            form["age"] = form["age"] or ("" if age is None else str(age))
            form["language"] = form["language"] or (
                (person["preferred_language"] or "").split("-")[0])
    response, errors = run(form, backend, geocoder, settings)
    principal = getattr(request.state, "principal", None)
    back = query_string(form) if response else ""
    refers = {}
    if response and principal is not None and principal.role in AGENCY_ROLES:
        refers = refer_links(response, client_id=person["id"] if person else None, back=back)
    share = query_string({**form, "client": ""}) if response else ""
    has_points = bool(response and any(r.latitude is not None for r in response.results))
    context = {
        "form": form, "errors": errors, "response": response, "radii": RADII,
        "genders": GENDERS, "costs": COSTS, "demo_notice": settings.demo_notice,
        "nav": pages_nav(form, response) if response else None,
        "back": back, "share": share, "refers": refers,
        "person": person and {"id": person["id"], "initials": initials(person["name"])},
        "map": {"tiles": settings.map_tile_url,
                "attribution": settings.map_tile_attribution} if has_points else None,
    }
    return templates.TemplateResponse(request, "search.html", context,
                                      status_code=400 if errors else 200)


def print_items(response: SearchResponse | None) -> list[dict[str, Any]]:
    """The results as a resource list shows them: name, address, phones, hours, distance."""
    items = []
    for r in response.results if response else []:
        place = ", ".join(filter(None, [r.address, r.city, r.state]))
        if r.postal_code:
            place = f"{place} {r.postal_code}".strip()
        items.append({"name": r.name,
                      "organization": r.organization if r.organization != r.name else None,
                      "address": place,
                      "phones": [{"number": p.number, "extension": p.extension,
                                  "tel": "".join(ch for ch in p.number
                                                 if ch.isdigit() or ch == "+")}
                                 for p in r.phones],
                      "hours": r.hours, "distance": r.distance_mi})
    return items


def list_title(form: dict[str, Any], response: SearchResponse | None) -> str:
    """e.g. "Food pantry near 20001"."""
    what = form["q"].strip() or "Services"
    where = (response.near or {}).get("label") if response and response.near else None
    where = where or form["near"].strip()
    return f"{what[:1].upper()}{what[1:]}" + (f" near {where}" if where else "")


def plain_list(title: str, items: list[dict[str, Any]], *, demo_notice: bool) -> str:
    """A short numbered list for a text message or an email: name, phone, address."""
    lines = [title]
    if demo_notice:
        lines.append("(Demo data: do not use for real referrals.)")
    for number, item in enumerate(items, start=1):
        lines.append(f"{number}. {item['name']}")
        phones = item.get("phones") or []
        if phones:
            phone = phones[0]
            lines.append("   " + phone["number"] + (f" ext. {phone['extension']}"
                                                    if phone.get("extension") else ""))
        if item.get("address"):
            lines.append("   " + item["address"])
    if not items:
        lines.append("(nothing found)")
    return "\n".join(lines) + "\n"


@router.get("/search/print", response_class=HTMLResponse, name="search_print")
def search_print(request: Request, backend: BackendDep, geocoder: GeocoderDep,
                 settings: SettingsDep, form: FormDep) -> HTMLResponse:
    """The results as a clean printable resource list to hand a client."""
    form["client"] = ""
    response, errors = run(form, backend, geocoder, settings)
    share = query_string(form)
    return templates.TemplateResponse(request, "print/list.html", {
        "title": list_title(form, response),
        "subtitle": f"From Signpost, {day(datetime.now(UTC).date())}",
        "items": print_items(response), "errors": errors,
        "back": "/search?" + share, "back_label": "Back to the results",
        "text_link": "/search/text?" + share, "demo_notice": settings.demo_notice,
    }, status_code=400 if errors else 200)


@router.get("/search/text", response_class=PlainTextResponse, name="search_text")
def search_text(backend: BackendDep, geocoder: GeocoderDep, settings: SettingsDep,
                form: FormDep) -> PlainTextResponse:
    """The results as plain text, numbered, to paste into a text message or an email."""
    form["client"] = ""
    response, errors = run(form, backend, geocoder, settings)
    if errors:
        return PlainTextResponse("".join(f"{m}\n" for m in errors.values()), status_code=400)
    return PlainTextResponse(plain_list(list_title(form, response) + ":",
                                        print_items(response),
                                        demo_notice=settings.demo_notice))
