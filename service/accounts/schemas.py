"""Accounts in and out of the API."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

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


# --- user management ------------------------------------------------------------------------


class OrganizationLink(BaseModel):
    """A partner's link to a directory organization."""

    organization_id: str = Field(description="The directory organization the partner speaks "
                                             "for.")
    organization_name: str = Field(description="Its name in the directory.")
    location_ids: list[str] | None = Field(
        default=None, description="Only these sites' referrals; null: every site.")


class UserDetail(UserPublic):
    """A user as admins (and their agency's supervisor) see them."""

    agency_name: str | None = Field(default=None, description="The agency of a supervisor "
                                                              "or case manager.")
    email: str | None = Field(default=None, description="Where notifications go, if set.")
    is_locked: bool = Field(default=False, description="Locked out after repeated failed "
                                                       "sign-ins (lifted by `unlock`).")
    created_at: datetime = Field(description="When the account was made.")
    organizations: list[OrganizationLink] = Field(
        default=[], description="A partner's organizations, with their sites.")


class UserPage(BaseModel):
    """One page of users, by username."""

    total: int = Field(description="Users matching the filters.")
    page: int = Field(description="This page's number, from 1.")
    per_page: int = Field(description="Users per page.")
    items: list[UserDetail] = Field(description="The users on this page.")


class UserCreate(BaseModel):
    """A new account. Supervisors and case managers name their agency (created if new);
    partners name the organizations they speak for (optionally only some of their sites)."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=150, description="Unique, without spaces "
                          "(compared case-insensitively).")
    password: str = Field(max_length=1024, description="At least 12 characters; not a common "
                          "password, not containing the username.")
    role: Role = Field(description="admin, supervisor, case_manager or partner.")
    agency: str | None = Field(default=None, max_length=200,
                               description="Supervisors and case managers: the agency's name.")
    organization_ids: list[str] = Field(default=[], max_length=100,
                                        description="Partners: the organizations' ids.")
    location_ids: list[str] = Field(default=[], max_length=500, description="Partners: only "
                                    "these sites of those organizations (default: every site).")
    email: str | None = Field(default=None, max_length=320,
                              description="Where notifications go (optional).")


class UserUpdate(BaseModel):
    """What an admin changes on an account; fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    is_active: bool | None = Field(default=None, description="False deactivates the account "
                                   "and ends every session and token it has.")
    role: Role | None = Field(default=None, description="A new role (with `agency` or "
                              "`organization_ids` when the new role needs them).")
    agency: str | None = Field(default=None, max_length=200, description="Supervisors and case "
                               "managers: move to this agency (created if new).")
    organization_ids: list[str] | None = Field(
        default=None, max_length=100, description="Partners: the organizations they speak for "
        "from now on (kept links keep their sites; new ones cover every site).")
    password: str | None = Field(default=None, max_length=1024, description="A new password "
                                 "(same policy); ends every session and token of the user.")
    unlock: bool = Field(default=False, description="Lift a lockout after failed sign-ins.")


class OrganizationLinkCreate(BaseModel):
    """Link a partner to an organization, optionally only to some of its sites."""

    model_config = ConfigDict(extra="forbid")

    organization_id: str = Field(min_length=1, max_length=36,
                                 description="The directory organization's id.")
    location_ids: list[str] | None = Field(
        default=None, min_length=1, max_length=500,
        description="Only these sites (locations of the organization); null: every site.")


class AgencyPublic(BaseModel):
    """An agency whose staff use Signpost."""

    id: int = Field(description="The agency's id.")
    name: str = Field(description="Its name (unique).")
    created_at: datetime = Field(description="When it was added.")
    active_users: int = Field(description="Its active supervisors and case managers.")
