"""Accounts in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

Role = Literal["admin", "supervisor", "case_manager", "partner"]


class TokenRequest(BaseModel):
    """Username and password for a bearer token."""

    username: str = Field(min_length=1, max_length=150)
    password: str = Field(min_length=1, max_length=1024)
    name: str = Field(default="api", min_length=1, max_length=100,
                      description="A label for the token, e.g. the device it is for.")


class UserPublic(BaseModel):
    """A user as others see them."""

    id: int
    username: str
    role: Role
    agency_id: int | None = None
    organization_ids: list[str] = []
    is_active: bool = True


class TokenResponse(BaseModel):
    """A bearer token: shown once, stored only as a hash."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: UserPublic
