"""The case manager's question (`SearchQuery`) and Signpost's answer, shared by both engines."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

MAX_RADIUS_MI = 250.0


class ClientProfile(BaseModel):
    """Who the client is; every field is optional and a missing one never excludes a service."""

    age: int | None = Field(None, ge=0, le=130, description="Age in years.")
    gender: str | None = Field(None, max_length=32,
                               description="female, male, nonbinary or transgender.")
    language: str | None = Field(None, max_length=32,
                                 description="Preferred language (ISO 639-1 code or name).")
    insurance: list[str] = Field(default_factory=list, max_length=10,
                                 description="medicaid, medicare, private, uninsured...")
    populations: list[str] = Field(default_factory=list, max_length=20,
                                   description="veterans, youth, seniors, families, ...")
    household_size: int | None = Field(None, ge=1, le=30)
    documents: list[str] = Field(default_factory=list, max_length=20,
                                 description="Documents the client has (photo_id, ...).")

    @field_validator("gender")
    @classmethod
    def _gender(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from service.directory.eligibility import normalize_gender
        normalized = normalize_gender(value)
        if normalized is None:
            raise ValueError("gender must be female, male, nonbinary or transgender")
        return normalized


class SearchQuery(BaseModel):
    """What to look for, where, and for whom."""

    q: str | None = Field(None, max_length=300, description="What the client needs, in words.")
    categories: list[str] = Field(default_factory=list, max_length=20,
                                  description="Category ids (see /api/v1/categories).")
    near: str | None = Field(None, max_length=200, description="An address, ZIP, 'City, ST' "
                             "or 'lat,lon'. Street addresses are placed by their ZIP unless an "
                             "admin enabled an online geocoder.")
    radius_mi: float = Field(10.0, gt=0, le=MAX_RADIUS_MI, description="Search radius, miles.")
    client: ClientProfile = Field(default_factory=ClientProfile)
    open_now: bool = Field(False, description="Only places known to be open now.")
    open_at: datetime | None = Field(None, description="Only places open at this time.")
    languages: list[str] = Field(default_factory=list, max_length=10,
                                 description="Only services offered in these languages.")
    cost: list[Literal["free", "sliding_scale", "insurance"]] = Field(default_factory=list)
    capacity: list[Literal["has_capacity", "waitlist", "assessment_needed", "no_capacity"]] = \
        Field(default_factory=list)
    sort: Literal["relevance", "distance"] = "relevance"
    page: int = Field(1, ge=1, le=1000)
    per_page: int = Field(10, ge=1, le=100)
    include_near_misses: bool = Field(False, description="Also list services that just miss "
                                      "a bound, naming the bound.")
    include_not_referable: bool = Field(False, description="Include 'do not refer' listings.")


class Note(BaseModel):
    """A reason or a caution, ready for any language: a code, its parameters, an English text."""

    code: str
    params: dict[str, Any] = Field(default_factory=dict)
    text: str


class Phone(BaseModel):
    number: str
    extension: int | None = None
    type: str | None = None


class SearchResult(BaseModel):
    """One service at one place (or serving the client's area), with why and what to watch."""

    service_id: str
    service_at_location_id: str | None = Field(None, description="None for area-wide services "
                                               "without a walk-in site.")
    name: str
    organization: str | None = None
    address: str | None = Field(None, description="Street address; None when confidential.")
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    phones: list[Phone] = Field(default_factory=list)
    distance_mi: float | None = Field(None, description="From the client's place, in miles.")
    categories: list[str] = Field(default_factory=list)
    open_status: Literal["open", "closed", "unknown"] = "unknown"
    hours: str | None = Field(None, description="Opening hours in short form.")
    score: float
    reasons: list[Note]
    cautions: list[Note]
    source: str
    source_id: str = Field(description="The service's own id in its source.")
    location_source_id: str | None = Field(None, description="The location's id in its source.")


class NearMiss(BaseModel):
    """A service that missed one bound, and which."""

    result: SearchResult
    missed: list[Note]


class FacetCount(BaseModel):
    value: str
    label: str
    count: int


class SearchResponse(BaseModel):
    """A page of results with totals and facets."""

    total: int
    page: int
    per_page: int
    pages: int
    near: dict[str, Any] | None = Field(None, description="Where the search was centred.")
    understood: dict[str, Any] = Field(default_factory=dict, description="How the need text "
                                       "was read: categories, words, corrections.")
    results: list[SearchResult]
    near_misses: list[NearMiss] = Field(default_factory=list)
    facets: dict[str, list[FacetCount]] = Field(default_factory=dict)
    notice: str | None = None


class Suggestion(BaseModel):
    kind: Literal["category", "service"]
    id: str
    label: str
