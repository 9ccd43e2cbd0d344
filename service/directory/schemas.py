"""Pydantic shapes of the directory API."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from service.directory.eligibility import DOCUMENTS, GENDERS, POPULATIONS


class ServiceSummary(BaseModel):
    """One service in a list."""

    id: str = Field(description="Directory id of the service (stable across re-imports).")
    name: str
    organization_id: str | None = None
    organization_name: str | None = Field(None, description="Name of the providing organization.")
    status: str = Field(description="HSDS status: active, inactive, defunct, temporarily closed.")
    is_referable: bool = Field(description="False for 'active, do not refer' listings.")
    source: str = Field(description="The feed this listing came from.")
    source_id: str = Field(description="The service's own id in its source.")
    updated_at: datetime = Field(description="When the directory last changed this listing.")
    verified_at: datetime | None = Field(None, description="When someone last confirmed it.")


class ServicePage(BaseModel):
    """A page of services."""

    total: int
    page: int = Field(description="1-based page number.")
    per_page: int
    items: list[ServiceSummary]
    notice: str | None = Field(None, description="A warning about the data, e.g. demo data.")


class ServiceDetail(BaseModel):
    """A full listing: the HSDS 3.1 service with everything nested, plus Signpost's fields."""

    service: dict[str, Any] = Field(description="HSDS 3.1 service object, fully nested; "
                                    "Signpost extensions are prefixed x_.")
    source: str
    source_id: str
    notice: str | None = None


# --- partner listing updates (service.directory.listing_edits) --------------------------------

DayCode = Literal["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
ListingStatus = Literal["active", "temporarily closed", "active do not refer"]
CapacityStatus = Literal["has_capacity", "no_capacity", "waitlist", "assessment_needed"]
EditStatus = Literal["pending", "applied", "rejected", "reverted"]
Gender = Literal[GENDERS]
Population = Literal[tuple(POPULATIONS)]
Document = Literal[DOCUMENTS]

_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _text(value: str | None) -> str | None:
    """Trimmed text; blank is None (the field is cleared)."""
    if value is None:
        return None
    value = value.strip()
    return value or None


class _Edit(BaseModel):
    """Unknown fields are refused, so a misspelt field never passes for "no change"."""

    model_config = ConfigDict(extra="forbid")


class HoursIn(_Edit):
    """One weekly opening: the days, and the hours in the site's local time."""

    days: list[DayCode] = Field(min_length=1, max_length=7,
                                description="Weekdays it applies to: MO, TU, WE, TH, FR, SA, SU.")
    opens_at: str = Field(description='Opening time, 24-hour "HH:MM" (e.g. "09:00").')
    closes_at: str = Field(description='Closing time, "HH:MM". At or before `opens_at` means the '
                                       'next day (22:00 to 06:00 is overnight); 00:00 to 23:59 '
                                       'is all day.')
    description: str | None = Field(None, max_length=500,
                                    description="A note shown with these hours.")

    @field_validator("days")
    @classmethod
    def _once_each(cls, days: list[str]) -> list[str]:
        if len(set(days)) != len(days):
            raise ValueError("a day is listed twice")
        return sorted(days, key=("MO", "TU", "WE", "TH", "FR", "SA", "SU").index)

    @field_validator("opens_at", "closes_at")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.fullmatch(value.strip()):
            raise ValueError('give a 24-hour time "HH:MM" between 00:00 and 23:59')
        return value.strip()

    @field_validator("closes_at")
    @classmethod
    def _not_empty(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("opens_at") == value:
            raise ValueError("opens and closes at the same time: for all day give 00:00 to 23:59")
        return value


class EligibilityIn(_Edit):
    """Who the service is for. Fields left out stay as they are; null clears one."""

    description: str | None = Field(None, max_length=4000,
                                     description="The eligibility text people read.")
    min_age: int | None = Field(None, ge=0, le=130, description="Youngest age served (years).")
    max_age: int | None = Field(None, ge=0, le=130, description="Oldest age served (years).")
    genders: list[Gender] | None = Field(None, max_length=len(GENDERS),
                                         description="Only these genders are served (empty: "
                                                     "any).")
    populations: list[Population] | None = Field(
        None, max_length=len(POPULATIONS),
        description="Only these populations are served, e.g. veterans (empty: anyone).")
    documents: list[Document] | None = Field(None, max_length=len(DOCUMENTS),
                                             description="Documents to bring.")

    @field_validator("max_age")
    @classmethod
    def _ages_in_order(cls, value: int | None, info: ValidationInfo) -> int | None:
        low = info.data.get("min_age")
        if value is not None and low is not None and value < low:
            raise ValueError(f"max_age ({value}) is below min_age ({low})")
        return value


class SiteEdit(_Edit):
    """One site of the service (a service at a location): its capacity and hours."""

    service_at_location_id: str = Field(max_length=36, description="The site's id.")
    capacity_status: CapacityStatus | None = Field(
        None, description="Whether it takes people now; sent again, it confirms the status "
                          "(capacity_updated_at becomes now).")
    hours: list[HoursIn] | None = Field(None, max_length=50,
                                        description="The site's weekly hours (replacing its "
                                                    "own hours; [] removes them).")


class ServiceEdit(_Edit):
    """A change to a service listing: only the fields given change; null clears a text field.

    Send back the `updated_at` you read as `expected_updated_at` (or in `If-Match`) and the edit
    is refused (409) if the listing changed meanwhile."""

    expected_updated_at: datetime | None = Field(
        None, description="The listing's updated_at when you read it (optimistic concurrency).")
    name: str | None = Field(None, min_length=1, max_length=300, description="Service name.")
    alternate_name: str | None = Field(None, max_length=300, description="Another name.")
    description: str | None = Field(None, max_length=10000, description="What it offers.")
    email: str | None = Field(None, max_length=254, description="Contact email address.")
    url: str | None = Field(None, max_length=2000, description="Web page (http or https).")
    fees_description: str | None = Field(None, max_length=2000, description="Fees, in words.")
    application_process: str | None = Field(None, max_length=4000,
                                            description="How to apply or get the service.")
    languages: list[str] | None = Field(None, max_length=40,
                                        description="Languages spoken: codes (en, es) or names.")
    status: ListingStatus | None = Field(None, description="active, temporarily closed, or "
                                                           "active do not refer.")
    eligibility: EligibilityIn | None = Field(None, description="Who the service is for.")
    hours: list[HoursIn] | None = Field(None, max_length=50,
                                        description="The service's weekly hours, for every site "
                                                    "without hours of its own ([] removes them).")
    sites: list[SiteEdit] | None = Field(None, max_length=200,
                                         description="Capacity and hours per site.")

    @field_validator("name", "status", "eligibility", "sites")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be removed; leave the field out to keep it")
        return value

    @field_validator("alternate_name", "description", "fees_description", "application_process")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        return _text(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name cannot be blank")
        return value.strip()

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        value = _text(value)
        if value is not None and not _EMAIL.fullmatch(value):
            raise ValueError("not an email address")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        value = _text(value)
        if value is not None and (not value.lower().startswith(("http://", "https://"))
                                  or any(ch.isspace() for ch in value)):
            raise ValueError("give a web address starting with http:// or https://")
        return value

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str]:
        out: list[str] = []
        for item in value or []:
            item = item.strip()
            if not 2 <= len(item) <= 40:
                raise ValueError("each language is a code (en) or a name of 2 to 40 characters")
            if item.lower() not in (o.lower() for o in out):
                out.append(item)
        return out


class AddressIn(_Edit):
    """A postal or street address of the location."""

    address_1: str = Field(min_length=1, max_length=300, description="Street and number.")
    address_2: str | None = Field(None, max_length=300, description="Suite, floor...")
    city: str = Field(min_length=1, max_length=100)
    state_province: str = Field(min_length=2, max_length=100, description="State (e.g. DC).")
    postal_code: str = Field(min_length=3, max_length=20, description="ZIP code.")
    country: str = Field("US", min_length=2, max_length=2, description="ISO country code.")
    address_type: Literal["physical", "postal", "virtual"] = Field(
        "physical", description="physical: where people go; postal: for mail.")


class PhoneIn(_Edit):
    """A phone number of the location."""

    number: str = Field(min_length=3, max_length=50)
    extension: int | None = Field(None, ge=0, le=99999999)
    type: Literal["voice", "fax", "text", "cell", "video", "pager", "textphone"] = "voice"
    description: str | None = Field(None, max_length=500, description="e.g. 'intake line'.")


class AccessibilityIn(_Edit):
    """One accessibility feature of the location."""

    description: str = Field(min_length=1, max_length=1000,
                             description="e.g. 'Step-free entrance on 5th St'.")
    details: str | None = Field(None, max_length=2000)


class LocationEdit(_Edit):
    """A change to a location: only the fields given change. A new street address moves the
    point (geocoded unless you give latitude and longitude)."""

    expected_updated_at: datetime | None = Field(
        None, description="The location's updated_at when you read it (optimistic concurrency).")
    name: str | None = Field(None, min_length=1, max_length=300, description="Site name.")
    description: str | None = Field(None, max_length=10000)
    transportation: str | None = Field(None, max_length=2000, description="How to get there.")
    addresses: list[AddressIn] | None = Field(None, max_length=5,
                                              description="Replaces the location's addresses.")
    phones: list[PhoneIn] | None = Field(None, max_length=20,
                                         description="Replaces the location's own phones.")
    accessibility: list[AccessibilityIn] | None = Field(None, max_length=20,
                                                        description="Replaces its features.")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    is_confidential: bool | None = Field(None, description="A confidential site (e.g. a "
                                                           "shelter): its street is never shown.")

    @field_validator("name", "is_confidential")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("cannot be removed; leave the field out to keep it")
        return value

    @field_validator("description", "transportation")
    @classmethod
    def _trim(cls, value: str | None) -> str | None:
        return _text(value)


class FieldChange(BaseModel):
    """One field of an edit: its value before and after."""

    field: str = Field(description="The field, as in the edit (sites.<id>.hours for a site's).")
    old: Any = Field(None, description="The value before (rows for hours, phones...).")
    new: Any = Field(None, description="The value after.")


class ListingEditOut(BaseModel):
    """One edit of a listing, as proposed or applied."""

    id: int
    entity_type: Literal["service", "location"] = Field(description="What was edited.")
    service_id: str | None = Field(None, description="The service edited.")
    location_id: str | None = Field(None, description="The location edited.")
    name: str | None = Field(None, description="The service's or location's name now.")
    organization_id: str | None = None
    organization_name: str | None = None
    status: EditStatus = Field(description="pending (awaiting an admin), applied, rejected or "
                                           "reverted.")
    changes: list[FieldChange]
    created_by: str | None = Field(None, description="Username of who made the edit.")
    created_at: datetime
    decided_by: str | None = Field(None, description="The admin who approved or rejected it.")
    decided_at: datetime | None = None
    decision_reason: str | None = None
    reverted_by: str | None = Field(None, description="The admin who reverted it.")
    reverted_at: datetime | None = None
    revert_reason: str | None = None


class ListingEditResult(BaseModel):
    """What an edit did: the recorded edit (none when nothing changed) and the new version."""

    edit: ListingEditOut | None = Field(None, description="The edit; pending when an admin "
                                                          "must approve it first.")
    updated_at: datetime = Field(description="The listing's version now: send it back as "
                                             "expected_updated_at (or If-Match) next time.")


class ListingEditPage(BaseModel):
    """A page of edits, newest first."""

    total: int
    page: int = Field(description="1-based page number.")
    per_page: int
    items: list[ListingEditOut]


class DecisionIn(BaseModel):
    """An admin's decision on an edit."""

    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(None, max_length=2000, description="Why (required to reject).")


class RejectionIn(DecisionIn):
    """Why the edit is rejected (the partner sees it)."""

    reason: str = Field(min_length=1, max_length=2000, description="Why it is rejected.")


class VerifyResult(BaseModel):
    """A listing confirmed as still accurate."""

    service_id: str
    verified_at: datetime = Field(description="Now.")
    verified_by: str = Field(description="Who confirmed it (username).")
    verification_method: str = Field(description="partner confirmed or admin confirmed.")


class StaleListing(BaseModel):
    """A service nobody has confirmed lately."""

    service_id: str
    name: str
    organization_id: str | None = None
    organization_name: str | None = None
    verified_at: datetime | None = Field(None, description="Last confirmed (none: never).")
    verified_by: str | None = None
    days_since_verified: int | None = Field(None, description="Whole days (none: never).")


class StalePage(BaseModel):
    """Listings not verified within the stale window, least recently verified first."""

    total: int
    page: int = Field(description="1-based page number.")
    per_page: int
    stale_after_days: int = Field(description="A listing is stale after this many days.")
    items: list[StaleListing]


class PartnerSite(BaseModel):
    """One site of a partner's service."""

    service_at_location_id: str
    location_id: str | None = None
    location_name: str | None = None
    location_updated_at: datetime | None = Field(
        None, description="The location's version, for PATCH /api/v1/locations/{id}.")
    capacity_status: CapacityStatus | None = None
    capacity_updated_at: datetime | None = None


class PartnerListing(BaseModel):
    """One service of the partner's organizations, as the partner portal shows it."""

    service_id: str
    name: str
    organization_id: str | None = None
    organization_name: str | None = None
    status: str = Field(description="active, temporarily closed, active do not refer, or the "
                                    "source's status (e.g. inactive).")
    updated_at: datetime = Field(description="Its version, for PATCH expected_updated_at.")
    verified_at: datetime | None = None
    is_stale: bool = Field(description="Not verified within the stale window.")
    pending_edits: int = Field(description="Edits awaiting an admin's approval.")
    sites: list[PartnerSite]


class PartnerListingPage(BaseModel):
    """The partner's services, by organization and name."""

    total: int
    page: int = Field(description="1-based page number.")
    per_page: int
    items: list[PartnerListing]
