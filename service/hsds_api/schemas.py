"""Pydantic shapes of the HSDS API, for its OpenAPI document (answers are serialised once,
directly, from the HSDS dicts)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ApiInfo(BaseModel):
    """The root: which HSDS version this API speaks, its profile and its OpenAPI document."""

    version: str = Field(description="HSDS version of this API.")
    profile: str = Field(description="URL of Signpost's HSDS profile (its x_ extensions).")
    openapi_url: str = Field(description="URL of the OpenAPI document of this API.")


class Page(BaseModel):
    """The HSDS paging envelope; `contents` holds the HSDS objects of this page."""

    total_items: int = Field(description="How many items match, over all pages.")
    total_pages: int = Field(description="How many pages there are at this per_page.")
    page_number: int = Field(description="This page's number (1-based).")
    size: int = Field(description="How many items this page holds.")
    first_page: bool
    last_page: bool
    empty: bool = Field(description="True when this page holds no items.")
    contents: list[dict[str, Any]] = Field(
        description="HSDS 3.1 objects; Signpost's own fields are prefixed x_.")
