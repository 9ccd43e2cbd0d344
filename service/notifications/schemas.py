"""Notifications out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class NotificationOut(BaseModel):
    """One message to you (the same words the email carries, when you have an address)."""

    id: int = Field(description="The notification's id.")
    kind: Literal["referral_sent", "referral_answered", "follow_up_due"] = Field(
        description="What happened: a referral arrived, a partner answered your referral, or "
                    "a follow-up with your client is due.")
    referral_id: int | None = Field(description="The referral it is about.")
    subject: str = Field(description="The email's subject.")
    body: str = Field(description="The email's text: no client details, only a link to sign "
                                  "in and see the referral.")
    created_at: datetime = Field(description="When it was queued.")
    sent_at: datetime | None = Field(description="When the email was handed to the mail "
                                                 "server, if it was.")
    status: Literal["sent", "pending", "not_sent"] = Field(
        description="sent; pending (the sender will try, or try again); not_sent (your account "
                    "has no email address, or delivery failed for a day and stopped).")


class NotificationPage(BaseModel):
    """A page of your notifications, newest first."""

    total: int = Field(description="How many notifications you have in all.")
    page: int = Field(description="This page's number, from 1.")
    per_page: int = Field(description="At most this many items per page.")
    items: list[NotificationOut] = Field(description="The notifications on this page.")
