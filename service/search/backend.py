"""The interface both search engines implement (embedded SQLite, Elasticsearch)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from service.search.documents import SearchDocument
from service.search.schemas import SearchQuery, SearchResponse, Suggestion


class Place:
    """Where the client is: a point, and the areas it lies in (for area-wide services)."""

    def __init__(self, lat: float, lon: float, *, label: str, precision: str,
                 postal_code: str | None = None, state: str | None = None,
                 county: str | None = None, city: str | None = None) -> None:
        self.lat, self.lon, self.label, self.precision = lat, lon, label, precision
        self.postal_code, self.state, self.county, self.city = postal_code, state, county, city

    def as_dict(self) -> dict[str, object]:
        return {"latitude": round(self.lat, 5), "longitude": round(self.lon, 5),
                "label": self.label, "precision": self.precision,
                "postal_code": self.postal_code, "state": self.state}


class SearchBackend(Protocol):
    """Index, remove, search and suggest over search documents."""

    def index(self, documents: Iterable[SearchDocument]) -> int:
        """Add or replace documents; returns how many were written."""

    def remove(self, service_ids: Iterable[str]) -> int:
        """Remove every document of these services."""

    def search(self, query: SearchQuery, place: Place | None) -> SearchResponse:
        """Answer a query around `place` (None: anywhere)."""

    def suggest(self, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Type-ahead: categories and service names starting with `prefix`."""
