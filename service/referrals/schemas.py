"""Referrals in and out of the API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

Status = Literal["draft", "requested", "accepted", "rejected", "in-progress", "on-hold", "failed",
                 "completed", "cancelled", "entered-in-error"]
Urgency = Literal["routine", "soon", "urgent"]
ReasonCode = Literal["no_capacity", "not_eligible", "could_not_contact", "client_declined",
                     "got_help", "duplicate", "other"]
Outcome = Literal["got_help", "did_not_get_help", "unknown"]
ContactMethod = Literal["phone", "text", "email", "mail", "in_person", "other"]


class ReferralCreate(BaseModel):
    """A referral of one of your agency's clients to a service (or one site of it)."""

    client_id: int = Field(ge=1, le=2**31 - 1)
    service_id: str | None = Field(default=None, max_length=36)
    service_at_location_id: str | None = Field(
        default=None, max_length=36, description="The site; its service is implied.")
    need: str = Field(min_length=1, max_length=100,
                      description="The need's category: an id (e.g. 1102) or slug (food).")
    note: str | None = Field(default=None, max_length=4000)
    urgency: Urgency = "routine"
    send: bool = Field(default=False, description="Send it now (else it stays a draft).")
    is_logged: bool = Field(
        default=False, description="The provider is not on Signpost: the referral is only "
                                   "recorded (no partner inbox; the case manager records "
                                   "the provider's answers).")

    @model_validator(mode="after")
    def _a_service(self) -> ReferralCreate:
        if self.service_id is None and self.service_at_location_id is None:
            raise ValueError("give a service_id or a service_at_location_id")
        return self


class TransitionIn(BaseModel):
    """Move a referral to another status; `expected_version` is the version you last read."""

    to: Status
    expected_version: int = Field(ge=1)
    reason_code: ReasonCode | None = None
    reason_text: str | None = Field(default=None, max_length=2000)


class FollowUpIn(BaseModel):
    """What the case manager learned when checking back with the client."""

    outcome: Outcome
    reason: str | None = Field(default=None, max_length=2000)
    contact_method: ContactMethod | None = None
    expected_version: int | None = Field(default=None, ge=1,
                                         description="If given, refused when stale (409).")


class Need(BaseModel):
    id: str
    name: str


class ClientView(BaseModel):
    """The client as the caller may see them: a partner sees a first name or initials until
    the referral is accepted, and more only as far as the client's consent goes."""

    name: str
    name_is_partial: bool
    contact_preference: str | None = None
    date_of_birth: date | None = None
    preferred_language: str | None = None
    no_voicemail: bool | None = None
    do_not_text: bool | None = None


class EventOut(BaseModel):
    seq: int
    kind: str
    at: datetime
    actor_user_id: int | None
    actor_role: str | None
    from_status: str | None
    to_status: str
    reason_code: str | None
    reason_text: str | None
    detail: dict[str, Any] | None = None


class ReferralSummary(BaseModel):
    """A referral in a list (no client details)."""

    id: int
    status: Status
    version: int
    urgency: Urgency
    need: Need
    service_id: str
    service_at_location_id: str | None
    organization_id: str
    location_id: str | None
    agency_id: int | None
    client_id: int | None = Field(description="Hidden from partners.")
    is_logged: bool
    sent_at: datetime | None
    follow_up_due_at: datetime | None
    follow_up_outcome: Outcome | None
    created_at: datetime
    updated_at: datetime


class ReferralDetail(ReferralSummary):
    """A referral with what the caller may see of the client, and its history."""

    client: ClientView
    note: str | None
    redisclosure_notice: str | None = Field(
        default=None, description="Part 2 information: the notice that must accompany it.")
    events: list[EventOut]


class ReferralPage(BaseModel):
    total: int
    page: int
    per_page: int
    items: list[ReferralSummary]


class WorkQueueItem(ReferralSummary):
    reasons: list[Literal["follow_up_overdue", "no_partner_response"]]


class WorkQueue(BaseModel):
    """Your agency's referrals that need a look now."""

    follow_up_days: dict[str, int]
    idle_days: int
    items: list[WorkQueueItem]
