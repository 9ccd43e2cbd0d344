"""The case manager's search page: a plain GET form, results as cards, paging.

The route reads the form leniently (an empty box is "not given", never a 422), builds the same
`SearchQuery` as `GET /api/v1/search`, and calls the same `search_service.search`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from service.deps import SettingsDep
from service.errors import BadRequest
from service.search import service as search_service
from service.search.api import BackendDep, GeocoderDep
from service.search.schemas import ClientProfile, SearchQuery, SearchResponse
from service.web import templates

router = APIRouter(include_in_schema=False)

PER_PAGE = 10
RADII = (1, 3, 5, 10, 25, 50)
GENDERS = (("", "Not given"), ("female", "Female"), ("male", "Male"),
           ("nonbinary", "Nonbinary"), ("transgender", "Transgender"))
COSTS = (("free", "Free"), ("sliding_scale", "Sliding scale"), ("insurance", "Takes insurance"))
# The form's fields, in the order they are carried from page to page (and to the detail page).
FIELDS = ("q", "near", "radius_mi", "age", "gender", "language", "open_now", "cost")

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


@router.get("/search", response_class=HTMLResponse, name="search_page")
def search_page(
    request: Request,
    backend: BackendDep,
    geocoder: GeocoderDep,
    settings: SettingsDep,
    q: Text = "",
    near: Annotated[str, Query(max_length=200)] = "",
    radius_mi: Short = "",
    age: Short = "",
    gender: Short = "",
    language: Short = "",
    open_now: bool = False,
    cost: Annotated[list[str], Query(max_length=3)] = [],  # noqa: B006
    page: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> HTMLResponse:
    """Find services for a need near a place, for a client; every result says why."""
    form = {"q": q, "near": near, "radius_mi": radius_mi, "age": age, "gender": gender,
            "language": language, "open_now": open_now,
            "cost": [c for c in dict(COSTS) if c in cost], "page": page}
    query, errors = read_form(form)
    response = None
    if query is not None:
        try:
            response = search_service.search(backend, geocoder, query,
                                             demo_notice=settings.demo_notice)
        except BadRequest as exc:
            errors[exc.field or "q"] = exc.message
    context = {
        "form": form, "errors": errors, "response": response, "radii": RADII,
        "genders": GENDERS, "costs": COSTS, "demo_notice": settings.demo_notice,
        "nav": pages_nav(form, response) if response else None,
        "back": query_string(form) if response else "",
    }
    return templates.TemplateResponse(request, "search.html", context,
                                      status_code=400 if errors else 200)
