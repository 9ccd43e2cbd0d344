"""Pydantic shapes of the directory API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


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
