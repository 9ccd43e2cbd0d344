"""Clients and consents in and out of the API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

ContactPreference = Literal["phone", "text", "email", "mail", "in_person", "do_not_contact"]
Shareable = Literal["identity", "contact", "demographics", "needs", "referral_status", "notes",
                    "substance_use_treatment"]
ConsentStatus = Literal["active", "expired", "revoked"]


class ClientCreate(BaseModel):
    """A new client of the caller's agency. Only what the referral needs: a name or initials;
    the date of birth is optional."""

    name: str = Field(min_length=1, max_length=200, description="A name or initials.")
    date_of_birth: date | None = None
    preferred_language: str | None = Field(
        default=None, max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        description="A BCP 47 language tag, e.g. es, vi, zh-Hant.")
    contact_preference: ContactPreference = "phone"
    no_voicemail: bool = Field(default=False, description="Safe contact: leave no voicemail.")
    do_not_text: bool = Field(default=False, description="Safe contact: send no text message.")

    @field_validator("name")
    @classmethod
    def _squash_spaces(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("a name or initials are needed")
        return value


class ConsentCreate(BaseModel):
    """What the client agreed may be shared, with whom, why, and until when."""

    shares: list[Shareable] = Field(min_length=1, max_length=7)
    shared_with_organization_id: str | None = Field(default=None, max_length=36)
    shared_with_name: str | None = Field(default=None, max_length=300,
                                         description="Defaults to the organization's name.")
    purpose: str = Field(min_length=1, max_length=1000)
    is_part2: bool = Field(default=False, description="The information comes from a 42 CFR "
                           "Part 2 substance-use treatment program.")
    given_at: AwareDatetime | None = Field(default=None, description="Defaults to now.")
    expires_at: AwareDatetime | None = None


class ConsentPublic(BaseModel):
    """A consent as recorded, with its status now."""

    id: int
    client_id: int
    shares: list[str]
    shared_with_organization_id: str | None
    shared_with_name: str
    purpose: str
    is_part2: bool
    given_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    status: ConsentStatus
    redisclosure_notice: str | None = Field(
        default=None, description="For Part 2 information: the notice that must accompany "
                                  "every disclosure made under this consent (42 CFR 2.32).")


class ClientPublic(BaseModel):
    """A client, for staff of their agency."""

    id: int
    agency_id: int
    case_manager_id: int | None = Field(
        default=None, description="The staff member whose caseload the client is on (null: "
                                  "unassigned, for a supervisor to place).")
    name: str
    date_of_birth: date | None
    preferred_language: str | None
    contact_preference: ContactPreference
    no_voicemail: bool
    do_not_text: bool
    created_at: datetime
    updated_at: datetime


class ClientDetail(ClientPublic):
    """A client with their consents."""

    consents: list[ConsentPublic] = []


class ClientWarning(BaseModel):
    """Something to look at; the request still succeeded."""

    code: str
    message: str
    client_ids: list[int] = []


class ClientCreated(BaseModel):
    """The new client and any warnings (e.g. a possible duplicate)."""

    client: ClientPublic
    warnings: list[ClientWarning] = []


class ClientPage(BaseModel):
    """One page of an agency's clients."""

    total: int
    page: int
    per_page: int
    items: list[ClientPublic]


class ClientReassign(BaseModel):
    """Move a client onto another staff member's caseload."""

    case_manager_id: int = Field(ge=1, le=2**31 - 1, description="An active case manager or "
                                 "supervisor of the client's agency.")


class Caseload(BaseModel):
    """One staff member's caseload, in counts (no client is named)."""

    user_id: int | None = Field(description="The staff member; null for the agency's "
                                            "unassigned clients.")
    username: str | None = Field(description="Their username; null for unassigned clients.")
    role: str | None = Field(description="case_manager or supervisor; null for unassigned.")
    is_active: bool | None = Field(description="False: deactivated, yet still holding "
                                               "clients to reassign.")
    clients: int = Field(description="Clients on the caseload.")
    clients_with_open_referrals: int = Field(
        description="Of those, clients with at least one open referral (draft, requested, "
                    "accepted, in-progress or on-hold): the open cases.")
    open_referrals: int = Field(description="Open referrals of the caseload's clients.")
    overdue_follow_ups: int = Field(description="Referrals whose follow-up date has passed "
                                                "with no outcome recorded, as on the work "
                                                "queue.")


class Caseloads(BaseModel):
    """The supervisor's agency's caseloads."""

    agency_id: int = Field(description="The supervisor's agency.")
    as_of: datetime = Field(description="When the counts were taken (overdue is as of then).")
    items: list[Caseload] = Field(description="One row per caseload, by username; the "
                                              "unassigned clients last.")
