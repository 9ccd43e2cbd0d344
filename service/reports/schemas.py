"""Reports out of the API."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field


class Count(BaseModel):
    """How many referrals share one value of a dimension."""

    key: str = Field(description="The value: a status, a need category id, an organization id "
                                 "or a month (YYYY-MM, UTC).")
    name: str = Field(description="The value in words (the category's or organization's "
                                  "name; the key itself for statuses and months).")
    count: int = Field(description="Referrals sent with this value.")


class ResponseTimes(BaseModel):
    """How fast partners answered: the first partner move (accepted, rejected, started, held,
    failed or completed) after the referral was sent. For a logged referral the move the case
    manager recorded for the provider counts."""

    responded: int = Field(description="Referrals the partner has answered.")
    awaiting: int = Field(description="Referrals still requested with no partner answer.")
    median_hours: float | None = Field(
        description="Median hours from sending to the partner's first answer, over the "
                    "answered referrals (2 decimals); null when none was answered.")


class ClosedLoop(BaseModel):
    """The closed loop for referrals sent in one month (or in the whole period)."""

    key: str = Field(description="The month sent (YYYY-MM, UTC), or 'all' for the period.")
    sent: int = Field(description="Referrals sent.")
    left_out: int = Field(description="Of those, cancelled or entered in error: not counted.")
    counted: int = Field(description="Referrals sent, less those left out: the denominator.")
    closed: int = Field(description="Counted referrals with a recorded outcome: completed by "
                                    "the partner, or a follow-up by the case manager that "
                                    "learned whether the client got help (got_help or "
                                    "did_not_get_help; 'unknown' is no outcome).")
    rate: float | None = Field(description="closed / counted (4 decimals); null when nothing "
                                           "is counted.")
    partner_closed: int = Field(description="Counted referrals the partner completed.")
    client_got_help: int = Field(description="Counted referrals whose latest follow-up says the "
                                             "client got help (client-confirmed).")


class UnmetNeed(BaseModel):
    """Needs left unmet, by category and area.

    Signpost keeps no list of a client's needs apart from referrals, so a need with no referral
    at all cannot be counted here. A need is one client's need category; it is unmet when every
    referral for it (cancelled and entered-in-error ones aside) was rejected or failed. Its
    area is the postal code of the site its latest referral went to (the city for a
    confidential site or a site without a postal code; 'unknown' without a site)."""

    need_id: str = Field(description="The need category's id (Open Eligibility).")
    need_name: str = Field(description="The need category's name.")
    area: str = Field(description="The postal code or city, or 'unknown'.")
    count: int = Field(description="Clients whose need in this category and area is unmet.")


class ReferralReport(BaseModel):
    """Referrals sent in the period that the caller may see: all (admins), the caller's agency
    (supervisors, case managers), or those sent to the caller's organizations (partners).
    Drafts never sent are not in it. Counts only: no client appears in a report."""

    date_from: date | None = Field(alias="from", description="First day sent (inclusive, UTC).")
    date_to: date | None = Field(alias="to", description="Last day sent (inclusive, UTC).")
    referrals_sent: int = Field(description="Referrals sent in the period.")
    by_status: list[Count] = Field(description="By current status.")
    by_need: list[Count] = Field(description="By need category.")
    by_partner: list[Count] = Field(description="By the organization referred to.")
    by_month: list[Count] = Field(description="By month sent (UTC).")
    response: ResponseTimes = Field(description="Partners' time to a first answer.")
    closed_loop: ClosedLoop = Field(description="The closed loop over the whole period.")
    closed_loop_by_month: list[ClosedLoop] = Field(description="The closed loop by month sent.")
    unmet_needs: list[UnmetNeed] = Field(description="Unmet needs by category and area, most "
                                                     "first.")

    model_config = {"populate_by_name": True}
