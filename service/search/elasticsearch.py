"""The scale-out search engine: the same search as the embedded one, on an Elasticsearch cluster.

Supported servers: Elasticsearch 8.x, through the official 8.x Python client (pinned
`elasticsearch>=8.13,<9`: a 9.x client sends a compatibility header 8.x servers reject).

Documents are the ones `build_documents` makes for the embedded engine. Each is stored with its
point (`geo_point`), the areas an area-wide service covers (keyword fields, and a `geo_shape` for
polygons), its categories with their ancestors, languages, cost, capacity, status, restrictions
(min_age, max_age, genders) and the hours of the week it may be open (integer arrays, in the
listing's own time zone), plus the explanation payload under `doc` (stored, not indexed).

A search is one request: bool filters for status, referability, eligibility and the chosen
filters; a `geo_distance` (in miles) around the client OR the client's areas for area-wide
services; the need as category terms OR stemmed text, with the embedded engine's spelling rules;
a `function_score` summing the embedded engine's signals (the main category and any asked one,
text saying what was asked, need words at the start of a word of the name, an exponential
distance decay with scale radius/2, language, capacity, a freshness decay on `verified_at`,
insurance, free, open now); aggregations for the facets. The need is read by `understand`, so a
negated phrase ("not homeless") never reaches the request; phrases naming the need weigh twice
the phrases about the client and the words left over, which find listings but earn no text
bonus. Reasons and cautions come from `service.search.explain`, distances from
`geo.distance_mi`, so both engines explain alike.

`rebuild` loads a fresh `signpost-services-<timestamp>` index and moves the alias in one
`update_aliases` call once it is complete and refreshed, then deletes the old index: searches
never see a half-built index.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from elasticsearch import (
    ApiError,
    Elasticsearch,
    NotFoundError,
    TransportError,
)
from elasticsearch import (
    ConnectionError as EsConnectionError,
)
from elasticsearch.helpers import streaming_bulk
from sqlalchemy import Connection, select

from service.db import Database
from service.directory.categories import category_tree, normalise
from service.directory.schedules import hour_of_week
from service.directory.tables import service
from service.errors import BadRequest, Unavailable
from service.search import geo
from service.search.backend import Place
from service.search.documents import SearchDocument, build_documents
from service.search.explain import build_result, mismatches
from service.search.schemas import (
    FacetCount,
    NearMiss,
    Note,
    SearchQuery,
    SearchResponse,
    SearchResult,
    Suggestion,
)
from service.search.understand import STOP_WORDS, Need, broaden, transpositions, understand

log = logging.getLogger(__name__)

SUPPORTED_SERVERS = "8.x"
# Bump when index_body changes: `is_current` compares it with the index behind the alias, and
# `signpost serve` rebuilds an older index (behind the alias, so searches go on meanwhile).
INDEX_VERSION = 2  # 2: name_starts (word-start prefixes of names), names split as `normalise`
DEFAULT_ALIAS = "signpost-services"
MAX_WINDOW = 10000  # Elasticsearch's default index.max_result_window
# Every document gets a baseline of 1.0 and capacity is shifted by +0.4 so that no function
# weight is negative (Elasticsearch rejects negative scores); results subtract it again, so
# scores read as the embedded engine's.
SCORE_OFFSET = 1.4
BULK_CHUNK = 500
T = TypeVar("T")

FACET_LABELS = {
    "free": ("cost", "Free"), "sliding_scale": ("cost", "Sliding scale"),
    "insurance": ("cost", "Takes insurance"), "has_capacity": ("capacity", "Has capacity"),
    "waitlist": ("capacity", "Waitlist"), "es": ("languages", "Spanish"),
}


# --- the index ------------------------------------------------------------------------------


def index_body() -> dict[str, Any]:
    """Settings and mappings of a services index (for indices.create)."""
    return {
        "settings": {
            "number_of_shards": 1,
            "analysis": {
                "char_filter": {
                    "drop_apostrophes": {"type": "mapping", "mappings": ["'=>", "\u2019=>"]},
                    "ampersand_and": {"type": "mapping", "mappings": ["&=>\\u0020and\\u0020"]},
                },
                "tokenizer": {
                    # `normalise`'s words: runs of letters and digits ("24/7" is 24 and 7).
                    "signpost_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"},
                },
                "filter": {
                    # Every start of a word, so "a need word at the start of a word of the
                    # name" is one term lookup; longer words are kept whole (preserve_original).
                    "word_starts": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20,
                                    "preserve_original": True},
                },
                "analyzer": {
                    # The embedded engine's tokenizer: words, no stop words, folded, porter stems.
                    "signpost_stem": {"type": "custom", "tokenizer": "standard",
                                      "filter": ["lowercase", "asciifolding", "porter_stem"]},
                    # Names as `normalise` sees them, for name-word hits and type-ahead.
                    "signpost_plain": {"type": "custom", "tokenizer": "standard",
                                       "char_filter": ["drop_apostrophes"],
                                       "filter": ["lowercase", "asciifolding"]},
                    # Names and organizations word for word as `normalise` reads them (the
                    # embedded engine's `name_lc`), and the same words as all their starts.
                    "signpost_name": {"type": "custom", "tokenizer": "signpost_words",
                                      "char_filter": ["drop_apostrophes", "ampersand_and"],
                                      "filter": ["lowercase", "asciifolding"]},
                    "signpost_name_starts": {"type": "custom", "tokenizer": "signpost_words",
                                             "char_filter": ["drop_apostrophes",
                                                             "ampersand_and"],
                                             "filter": ["lowercase", "asciifolding",
                                                        "word_starts"]},
                },
            },
        },
        "mappings": {
            "_meta": {"signpost_index_version": INDEX_VERSION},
            "dynamic": "strict",
            "properties": {
                "key": {"type": "keyword"},
                "service_id": {"type": "keyword"},
                "name": {"type": "text", "analyzer": "english",
                         "copy_to": ["words", "name_org", "name_starts"],
                         "fields": {"plain": {"type": "text", "analyzer": "signpost_plain"}}},
                "organization": {"type": "text", "analyzer": "english",
                                 "copy_to": ["words", "name_org", "name_starts"]},
                "body": {"type": "text", "analyzer": "english", "copy_to": ["words"]},
                "words": {"type": "text", "analyzer": "signpost_stem"},
                # Both get the name, then the organization, through the same tokenizer, so
                # their word positions line up: `name_start` puts a prefix from one field next
                # to whole words from the other.
                "name_org": {"type": "text", "analyzer": "signpost_name"},
                "name_starts": {"type": "text", "analyzer": "signpost_name_starts",
                                "search_analyzer": "signpost_name"},
                "location": {"type": "geo_point"},
                "is_area": {"type": "boolean"},
                "area": {"properties": {
                    "nation": {"type": "boolean"},
                    "states": {"type": "keyword"},
                    "counties": {"type": "keyword"},
                    "cities": {"type": "keyword"},
                    "zips": {"type": "keyword"},
                    "shape": {"type": "geo_shape", "ignore_malformed": True},
                }},
                "categories": {"type": "keyword"},
                "languages": {"type": "keyword"},
                "cost": {"type": "keyword"},
                "capacity_status": {"type": "keyword"},
                "status": {"type": "keyword"},
                "is_referable": {"type": "boolean"},
                "min_age": {"type": "integer"},
                "max_age": {"type": "integer"},
                "genders": {"type": "keyword"},
                "hours_known": {"type": "boolean"},
                "open_hours": {"type": "short"},
                "open_certain": {"type": "short"},
                "time_zone": {"type": "keyword"},
                "verified_at": {"type": "date"},
                "doc": {"type": "object", "enabled": False},
            },
        },
    }


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _key(*parts: str | None) -> str:
    """An area key, normalised as `geo.area_token` does ("fl", "fl/miami-dade")."""
    return "/".join((p or "").strip().lower() for p in parts)


def _pair(value: Any) -> tuple[str, str]:
    if isinstance(value, (list, tuple)):
        return str(value[0] or ""), str((value[1] if len(value) > 1 else "") or "")
    return str(value), ""


def to_source(doc: SearchDocument) -> dict[str, Any]:
    """The indexed form of one search document."""
    elig = doc.eligibility or {}
    restricted_age = elig.get("age_kind") == "restriction"
    restricted_gender = elig.get("gender_kind") == "restriction" and elig.get("genders")
    cats = doc.categories_with_ancestors()
    area: dict[str, Any] = {"nation": False, "states": [], "counties": [], "cities": [],
                            "zips": []}
    shapes = []
    for coverage in doc.coverage:
        if coverage.get("kind") == "nation":
            area["nation"] = True
        area["states"] += [_key(s) for s in coverage.get("states") or []]
        for county in coverage.get("counties") or []:
            name, state = _pair(county)
            area["counties"].append(_key(state, name))
        for city in coverage.get("cities") or []:
            name, state = _pair(city)
            area["cities"].append(_key(state, name))
        area["zips"] += [str(z).strip() for z in coverage.get("postal_codes") or []]
        if isinstance(coverage.get("polygon"), dict):
            shapes.append(coverage["polygon"])
    if shapes:
        area["shape"] = shapes[0] if len(shapes) == 1 else {
            "type": "geometrycollection", "geometries": shapes}
    payload = doc.display()
    has_point = doc.lat is not None and doc.lon is not None
    return {
        "key": doc.key, "service_id": doc.service_id, "name": doc.name,
        "organization": doc.organization or "", "body": doc.body(),
        "location": {"lat": doc.lat, "lon": doc.lon} if has_point else None,
        "is_area": doc.sal_id is None, "area": area,
        "categories": sorted(cats), "languages": list(doc.languages), "cost": list(doc.cost),
        "capacity_status": doc.capacity_status, "status": doc.status,
        "is_referable": bool(doc.is_referable),
        "min_age": elig.get("min_age") if restricted_age else None,
        "max_age": elig.get("max_age") if restricted_age else None,
        "genders": list(elig["genders"]) if restricted_gender else [],
        "hours_known": bool(doc.hours_known),
        "open_hours": [i for i, c in enumerate(doc.open_hours) if c == "1"],
        "open_certain": [i for i, c in enumerate(doc.open_certain) if c == "1"],
        "time_zone": doc.time_zone, "verified_at": _iso(doc.verified_at),
        "doc": payload,
    }


# --- the query ------------------------------------------------------------------------------


def _top_categories(need: Need, ids: set[str] | None = None) -> list[str]:
    """The asked categories (or `ids`) that are not below another one of them: a listing
    carries its categories' ancestors, so these few terms cover the rest."""
    tree = category_tree()
    ids = need.category_ids if ids is None else ids
    return sorted(c for c in ids if not any(
        a.id in ids for a in (tree.ancestors(c) if c in tree else [])))


def _either(*clauses: dict[str, Any]) -> dict[str, Any]:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def _missing_or(field: str, clause: dict[str, Any]) -> dict[str, Any]:
    return _either({"bool": {"must_not": [{"exists": {"field": field}}]}}, clause)


def filters(query: SearchQuery, *, eligibility: bool = True) -> list[dict[str, Any]]:
    """The hard filters of a query (status, referability, eligibility, chosen filters)."""
    out: list[dict[str, Any]] = [{"term": {"status": "active"}}]
    if not query.include_not_referable:
        out.append({"term": {"is_referable": True}})
    client = query.client
    if eligibility and client.age is not None:
        out.append(_missing_or("min_age", {"range": {"min_age": {"lte": client.age}}}))
        out.append(_missing_or("max_age", {"range": {"max_age": {"gte": client.age}}}))
    if eligibility and client.gender in ("female", "male"):
        out.append(_missing_or("genders", {"term": {"genders": client.gender}}))
    if query.languages:
        out.append({"terms": {"languages": [x.lower() for x in query.languages]}})
    if query.cost:
        out.append({"terms": {"cost": list(query.cost)}})
    if query.capacity:
        out.append({"terms": {"capacity_status": list(query.capacity)}})
    return out


def place_filter(place: Place, radius: float) -> dict[str, Any]:
    """Sites within the radius (miles), or area-wide services covering the client's areas."""
    point = {"lat": place.lat, "lon": place.lon}
    areas: list[dict[str, Any]] = [{"term": {"area.nation": True}},
                                   {"geo_shape": {"area.shape": {"shape": {
                                       "type": "point", "coordinates": [place.lon, place.lat]},
                                       "relation": "intersects"}, "ignore_unmapped": True}}]
    if place.state:
        areas.append({"term": {"area.states": _key(place.state)}})
        if place.county:
            areas.append({"term": {"area.counties": _key(place.state, place.county)}})
        if place.city:
            areas.append({"term": {"area.cities": _key(place.state, place.city)}})
    if place.postal_code:
        areas.append({"term": {"area.zips": place.postal_code}})
    return _either(
        {"geo_distance": {"distance": f"{radius:g}mi", "distance_type": "arc",
                          "location": point}},
        {"bool": {"filter": [{"term": {"is_area": True}}, _either(*areas)]}},
    )


def need_clauses(need: Need, spelling: dict[str, list[str]],
                 known: set[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(everything that answers the need, the text that says what was asked), as the embedded
    engine reads a need: category terms OR (phrase words) OR (each word or its spelling
    variants). What was asked is the phrases naming a need when there are any; phrases about
    the client ("elderly") and the words left over ("three kids" in "school uniforms for three
    kids") still find listings, but do not rank them as answers."""
    parts = []
    top = _top_categories(need)
    if top:
        parts.append({"terms": {"categories": top}})
    text_parts = []
    asked = []
    for phrase in need.phrases:
        words = [w for w in normalise(phrase).split() if w not in STOP_WORDS]
        if words:
            text_parts.append({"match": {"words": {"query": " ".join(words),
                                                   "operator": "and"}}})
            if phrase not in need.describing:
                asked.append(text_parts[-1])
    if need.words:
        musts = []
        for word in need.words:
            variants = spelling.get(word, [])
            options: list[dict[str, Any]] = []
            if word in known or not variants:
                options.append({"match": {"words": {"query": word}}})
            options += [{"term": {"words": v}} for v in variants]
            musts.append(options[0] if len(options) == 1 else _either(*options))
        text_parts.append({"bool": {"must": musts}})
    parts += text_parts
    if not parts:
        return None, None
    said = asked or text_parts
    text = (said[0] if len(said) == 1 else _either(*said)) if said else None
    return (parts[0] if len(parts) == 1 else _either(*parts)), text


def name_start(phrase: str) -> dict[str, Any]:
    """Listings whose name or organization holds `phrase` (normalised) at the start of a word:
    "ged" is in "GED Prep" and "Tutoring" holds "tutor", but "managed" holds no "ged". Every
    word but the last is whole ("food pantry" is in "Food Pantries", not in "Seafood Pantry");
    the last may begin a longer word. Words are matched as `normalise` splits them."""
    words = normalise(phrase).split()
    if len(words) == 1:
        return {"term": {"name_starts": words[0]}}
    return {"span_near": {"clauses": [
        *({"span_term": {"name_org": w}} for w in words[:-1]),
        {"span_field_masking": {"query": {"span_term": {"name_starts": words[-1]}},
                                "field": "name_org"}}],
        "slop": 0, "in_order": True}}


def name_terms(need: Need) -> list[tuple[str, float]]:
    """(phrase, weight) of the need found in listing names, as the embedded engine weighs them:
    the phrases naming a need 1, the phrases about the client and the words left over half
    that (all 1 when no need is named); the first six count."""
    asked = [p for p in need.phrases if p not in need.describing]
    rest = 0.5 if asked else 1.0
    terms = [(normalise(p), 1.0) for p in asked] + [
        (normalise(p), rest) for p in [*need.describing, *need.words]]
    return [(w, weight) for w, weight in terms if w][:6]


def score_functions(query: SearchQuery, place: Place | None, need: Need,
                    text: dict[str, Any] | None, radius: float, now: datetime,
                    now_slot: int | None) -> list[dict[str, Any]]:
    """The embedded engine's score as function_score functions (summed)."""
    functions: list[dict[str, Any]] = [{"weight": 1.0}]  # baseline: see SCORE_OFFSET
    # In the main category of the need (what its phrases mean together, else its leading
    # phrase's first category, or the chosen ones) 2, in any category it names 1 more.
    for ids, weight in ((need.primary_ids, 2.0), (need.category_ids, 1.0)):
        top = _top_categories(need, ids)
        if top:
            functions.append({"filter": {"terms": {"categories": top}}, "weight": weight})
    if text is not None:
        functions.append({"filter": text, "weight": 1.5})
    # The need in the name: 2 when every phrase and word is there, each by its weight.
    terms = name_terms(need)
    total = sum(weight for _, weight in terms)
    for phrase, weight in terms:
        functions.append({"filter": name_start(phrase), "weight": 2.0 * weight / total})
    if place is not None:
        scale = max(1.0, radius / 2)
        functions.append({"filter": {"exists": {"field": "location"}}, "exp": {"location": {
            "origin": {"lat": place.lat, "lon": place.lon}, "scale": f"{scale:g}mi",
            "offset": "0mi", "decay": math.exp(-1)}}, "weight": 3.0})
        functions.append({"filter": {"term": {"is_area": True}}, "weight": 3.0 * 0.4})
    language = (query.client.language or "").lower()
    if language:
        functions.append({"filter": {"term": {"languages": language}}, "weight": 0.5})
    functions += [
        {"filter": {"term": {"capacity_status": "has_capacity"}}, "weight": 0.4 + 0.4},
        {"filter": {"term": {"capacity_status": "waitlist"}}, "weight": 0.4 - 0.2},
        {"filter": {"bool": {"must_not": [{"terms": {"capacity_status": [
            "has_capacity", "waitlist", "no_capacity"]}}]}}, "weight": 0.4},
        # Verified within the last year: full weight, then gone within a week or two.
        {"filter": {"exists": {"field": "verified_at"}}, "gauss": {"verified_at": {
            "origin": now.astimezone(UTC).isoformat(), "offset": "365d", "scale": "7d",
            "decay": 0.01}}, "weight": 0.3},
    ]
    covers = [i.lower() for i in query.client.insurance]
    if covers:
        functions.append({"filter": {"terms": {"cost": covers}}, "weight": 0.4})
    functions.append({"filter": {"term": {"cost": "free"}}, "weight": 0.2})
    if now_slot is not None:
        functions.append({"filter": {"term": {"open_certain": now_slot}}, "weight": 0.3})
    return functions


def open_filter(slots: dict[str, int]) -> list[dict[str, Any]]:
    """Open at the asked moment, in each listing's own time zone."""
    if not slots:
        return [{"match_none": {}}]
    return [{"term": {"hours_known": True}}, _either(*(
        {"bool": {"filter": [{"term": {"time_zone": zone}}, {"term": {"open_hours": slot}}]}}
        for zone, slot in sorted(slots.items())))]


FACET_AGGS: dict[str, Any] = {
    "cost": {"filters": {"filters": {
        "free": {"term": {"cost": "free"}},
        "sliding_scale": {"term": {"cost": "sliding_scale"}},
        "insurance": {"term": {"cost": "insurance"}}}}},
    "capacity": {"filters": {"filters": {
        "has_capacity": {"term": {"capacity_status": "has_capacity"}},
        "waitlist": {"term": {"capacity_status": "waitlist"}}}}},
    "languages": {"filters": {"filters": {
        "es": {"terms": {"languages": ["es", "spanish"]}}}}},
}


def facets_from(aggregations: dict[str, Any], need: Need) -> dict[str, list[FacetCount]]:
    """Facets from the aggregations, chosen and labelled as the embedded engine does."""
    tree = category_tree()
    wanted = {c.id for c in tree.roots()}
    for cid in need.category_ids:
        if cid in tree:
            wanted |= {c.id for c in tree.children(cid)}
    buckets = aggregations.get("categories", {}).get("buckets", [])
    out: dict[str, list[FacetCount]] = {"categories": sorted(
        (FacetCount(value=b["key"], label=tree[b["key"]].name, count=b["doc_count"])
         for b in buckets if b["key"] in wanted and b["key"] in tree),
        key=lambda f: (-f.count, f.label))[:20], "cost": [], "capacity": [], "languages": []}
    for group in ("cost", "capacity", "languages"):
        for value, bucket in aggregations.get(group, {}).get("buckets", {}).items():
            if bucket.get("doc_count") and value in FACET_LABELS:
                out[group].append(FacetCount(value=value, label=FACET_LABELS[value][1],
                                             count=bucket["doc_count"]))
    return out


def _place_slot(place: Place, at: datetime) -> int:
    from indexer.geocode import timezone_for

    return hour_of_week(at, timezone_for(place.lat, place.lon) or "America/New_York")


# --- the backend ----------------------------------------------------------------------------


class ElasticsearchBackend:
    """Search over an Elasticsearch 8.x cluster, behind the alias `signpost-services`."""

    def __init__(self, client: Elasticsearch | str, *, db: Database | None = None,
                 alias: str = DEFAULT_ALIAS, backoff: float = 0.5,
                 write_attempts: int = 3) -> None:
        if isinstance(client, str):
            client = self.connect(client)
        self.client = client
        self.db = db
        self.alias = alias
        self.backoff = backoff
        self.write_attempts = write_attempts
        self._zones_cache: tuple[float, list[str]] | None = None
        self._ready = False
        self._lock = threading.Lock()

    @staticmethod
    def connect(url: str) -> Elasticsearch:
        """A client that retries timeouts and overloaded nodes (transport-level retries)."""
        return Elasticsearch(url, request_timeout=10, max_retries=3, retry_on_timeout=True,
                             retry_on_status=(429, 502, 503, 504))

    @classmethod
    def from_settings(cls, settings: Any, db: Database | None) -> ElasticsearchBackend:
        """The backend for `SIGNPOST_ELASTICSEARCH_URL` (nothing connects until first use)."""
        if not settings.elasticsearch_url:
            raise ValueError("SIGNPOST_ELASTICSEARCH_URL is not set")
        return cls(settings.elasticsearch_url, db=db)

    # -- errors --------------------------------------------------------------------------------
    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Cluster down or overloaded: a 503 that says so."""
        try:
            yield
        except NotFoundError as exc:
            raise Unavailable(f"search is unavailable: the index {self.alias!r} does not exist "
                              "on the Elasticsearch cluster; run `signpost index rebuild`"
                              ) from exc
        except (EsConnectionError, TransportError) as exc:
            raise Unavailable(f"search is unavailable: the Elasticsearch cluster did not answer "
                              f"({type(exc).__name__}: {exc}); try again shortly") from exc
        except ApiError as exc:
            if exc.meta.status >= 500 or exc.meta.status == 429:
                raise Unavailable(f"search is unavailable: the Elasticsearch cluster answered "
                                  f"{exc.meta.status} ({exc.message}); try again shortly"
                                  ) from exc
            raise

    def _retry(self, action: Callable[[], T]) -> T:
        """Run a write, retrying with back-off while the cluster is unreachable or busy."""
        for attempt in range(self.write_attempts):
            try:
                with self._guard():
                    return action()
            except Unavailable:
                if attempt + 1 >= self.write_attempts:
                    raise
                delay = self.backoff * 2 ** attempt
                log.warning("Elasticsearch write failed; retrying in %.1fs", delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- schema and writes ---------------------------------------------------------------------
    def _new_index_name(self) -> str:
        return f"{self.alias}-{datetime.now(UTC).strftime('%Y%m%d%H%M%S%f')}"

    def _alias_targets(self) -> list[str]:
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []

    def ensure_index(self) -> None:
        """Create an empty index behind the alias if there is none yet."""
        if self._ready:
            return
        with self._lock, self._guard():
            if not self._alias_targets():
                body = index_body()
                self.client.indices.create(index=self._new_index_name(),
                                           aliases={self.alias: {"is_write_index": True}},
                                           **body)
            self._ready = True

    def _actions(self, docs: Iterable[SearchDocument], index: str) -> Iterator[dict[str, Any]]:
        for doc in docs:
            yield {"_op_type": "index", "_index": index, "_id": doc.key,
                   "_source": to_source(doc)}

    def _bulk(self, docs: Iterable[SearchDocument], index: str, **kwargs: Any) -> int:
        """Stream documents in chunks; 429s are retried with back-off by the helper."""
        written = 0
        with self._guard():
            for ok, _item in streaming_bulk(self.client, self._actions(docs, index),
                                            chunk_size=BULK_CHUNK, max_retries=3,
                                            initial_backoff=max(self.backoff, 0.01),
                                            raise_on_error=True, **kwargs):
                written += int(ok)
        return written

    def index(self, documents: Iterable[SearchDocument]) -> int:
        """Add or replace documents (by key), visible to searches when this returns."""
        self.ensure_index()
        self._zones_cache = None
        return self._bulk(documents, self.alias, refresh="wait_for")

    def remove(self, service_ids: Iterable[str]) -> int:
        """Remove every document of these services."""
        ids = sorted(set(service_ids))
        if not ids:
            return 0
        self.ensure_index()
        response = self._retry(lambda: self.client.delete_by_query(
            index=self.alias, query={"terms": {"service_id": ids}}, refresh=True,
            conflicts="proceed"))
        return int(response.get("deleted", 0))

    def reindex_services(self, conn: Connection, service_ids: Iterable[str]) -> int:
        """Rewrite these services' documents: write the new ones, then drop the stale ones."""
        ids = sorted(set(service_ids))
        if not ids:
            return 0
        docs = list(build_documents(conn, ids))
        written = self.index(docs) if docs else 0
        stale: dict[str, Any] = {"bool": {"filter": [{"terms": {"service_id": ids}}]}}
        if docs:
            stale["bool"]["must_not"] = [{"ids": {"values": [d.key for d in docs]}}]
        self.ensure_index()
        self._retry(lambda: self.client.delete_by_query(
            index=self.alias, query=stale, refresh=True, conflicts="proceed"))
        return written

    def rebuild(self, db: Database | None = None) -> int:
        """Load every document into a new index, then move the alias onto it in one call.

        The alias moves only once the new index is complete and refreshed; if anything fails
        before, the new index is dropped and the alias still points at the old one.
        """
        db = db or self.db
        if db is None:
            raise ValueError("rebuild needs the directory's database")
        new = self._new_index_name()
        with self._guard():
            self.client.indices.create(index=new, **index_body())
        try:
            with db.session() as session:
                ids = list(session.execute(select(service.c.id).order_by(service.c.id))
                           .scalars())
            written = 0
            for start in range(0, len(ids), 5000):
                with db.engine.connect() as conn:
                    written += self._bulk(build_documents(conn, ids[start:start + 5000]), new)
            with self._guard():
                self.client.indices.refresh(index=new)
                old = self._alias_targets()
            actions = [{"remove": {"index": name, "alias": self.alias}} for name in old]
            actions.append({"add": {"index": new, "alias": self.alias,
                                    "is_write_index": True}})
            self._retry(lambda: self.client.indices.update_aliases(actions=actions))
        except BaseException:
            try:
                self.client.indices.delete(index=new, ignore_unavailable=True)
            except Exception:  # noqa: BLE001 - best effort: the alias is untouched anyway
                log.warning("could not delete the unfinished index %s", new)
            raise
        for name in old:
            try:
                self.client.indices.delete(index=name, ignore_unavailable=True)
            except Exception:  # noqa: BLE001 - an orphan index wastes space, nothing else
                log.warning("could not delete the old index %s", name)
        self._ready = True
        self._zones_cache = None
        return written

    def count(self) -> int:
        """Number of indexed documents (0 when there is no index yet)."""
        with self._guard():
            try:
                return int(self.client.count(index=self.alias)["count"])
            except NotFoundError:
                return 0

    def is_current(self) -> bool:
        """Whether the index behind the alias has this version's mapping (else: rebuild it).
        True when there is no index yet (`signpost index rebuild` makes one) or the cluster
        does not answer (searches say so): starting the server never waits on the cluster."""
        try:
            found = self.client.indices.get_mapping(index=self.alias).body
        except NotFoundError:
            return True
        except (EsConnectionError, TransportError, ApiError) as exc:
            log.warning("could not read the search index's version (%s); not rebuilding it",
                        type(exc).__name__)
            return True
        versions = {((m.get("mappings") or {}).get("_meta") or {}).get("signpost_index_version")
                    for m in found.values()}
        return versions == {INDEX_VERSION}

    def _vocabulary(self, conn: Any = None) -> dict[str, int]:
        """Nothing to warm up: spelling asks the cluster (the app calls this on start)."""
        return {}

    # -- reading -------------------------------------------------------------------------------
    def _search(self, **body: Any) -> dict[str, Any]:
        with self._guard():
            return self.client.search(index=self.alias, **body).body

    def _zones(self) -> list[str]:
        """The time zones of indexed listings (cached for a minute)."""
        cached = self._zones_cache
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        body = self._search(size=0, aggs={"zones": {"terms": {"field": "time_zone",
                                                              "size": 1000}}})
        zones = sorted(b["key"] for b in body.get("aggregations", {}).get("zones", {})
                       .get("buckets", []))
        self._zones_cache = (time.monotonic(), zones)
        return zones

    def _slots(self, at: datetime) -> dict[str, int]:
        slots = {}
        for zone in self._zones():
            try:
                slots[zone] = hour_of_week(at, zone)
            except Exception:  # noqa: BLE001 - an unknown zone name: leave it out
                continue
        return slots

    def _spelling(self, words: list[str]) -> tuple[dict[str, list[str]], set[str]]:
        """(variants per word, words the index knows), by the embedded engine's rules: a known
        word also accepts its rare transposed spellings; an unknown one of 4+ letters is
        replaced by up to 3 indexed words one edit away with the same first letter."""
        if not words:
            return {}, set()
        aggs = {f"w{i}": {"filter": {"match": {"words": w}}} for i, w in enumerate(words)}
        suggest = {f"w{i}": {"text": w, "term": {
            "field": "words", "suggest_mode": "always", "max_edits": 1, "prefix_length": 1,
            "min_word_length": 2, "size": 10, "sort": "frequency",
            "string_distance": "damerau_levenshtein", "max_term_freq": 2147483647}}
            for i, w in enumerate(words)}
        body = self._search(size=0, track_total_hits=False, aggs=aggs, suggest=suggest)
        from service.search.understand import stem

        variants: dict[str, list[str]] = {}
        known: set[str] = set()
        for i, word in enumerate(words):
            count = body.get("aggregations", {}).get(f"w{i}", {}).get("doc_count", 0)
            entries = body.get("suggest", {}).get(f"w{i}") or []
            options = [(o["text"], int(o.get("freq", 0))) for e in entries
                       for o in e.get("options", [])]
            stemmed = stem(word)
            if count:
                known.add(word)
                swaps = transpositions(stemmed)
                found = sorted(t for t, n in options if t in swaps and n * 20 <= count)
            elif len(stemmed) < 4 or stemmed.isdigit():
                found = []
            else:
                ranked = sorted(((t, n) for t, n in options if t[:1] == stemmed[:1]),
                                key=lambda o: (-o[1], o[0]))
                found = [t for t, _ in ranked[:3]]
            if found:
                variants[word] = found
        return variants, known

    def _body(self, query: SearchQuery, place: Place | None, need: Need,
              need_query: dict[str, Any] | None, text: dict[str, Any] | None, radius: float,
              now: datetime, *, eligibility: bool = True, size: int | None = None,
              offset: int | None = None, want_facets: bool = True) -> dict[str, Any]:
        """The search request body of one query."""
        bool_filter = filters(query, eligibility=eligibility)
        if place is not None:
            bool_filter.append(place_filter(place, radius))
        if need_query is not None:
            bool_filter.append(need_query)
        at = query.open_at or (now if query.open_now else None)
        if at is not None:
            bool_filter += open_filter(self._slots(at))
        now_slot = _place_slot(place, now) if at is None and place is not None else None
        size = query.per_page if size is None else size
        offset = (query.page - 1) * query.per_page if offset is None else offset
        if offset + size > MAX_WINDOW:
            raise BadRequest(f"results beyond the first {MAX_WINDOW} cannot be paged to; "
                             "narrow the search", field="page")
        tiebreak = [{"service_id": "asc"}, {"key": "asc"}]
        body: dict[str, Any] = {
            "query": {"function_score": {
                "query": {"bool": {"filter": bool_filter}},
                "functions": score_functions(query, place, need, text, radius, now, now_slot),
                "score_mode": "sum", "boost_mode": "replace"}},
            "from": offset, "size": size, "track_total_hits": True,
        }
        if query.sort == "distance" and place is not None:
            body["sort"] = [{"_geo_distance": {
                "location": {"lat": place.lat, "lon": place.lon}, "order": "asc", "unit": "mi",
                "distance_type": "arc", "ignore_unmapped": True}},
                {"_score": "desc"}, *tiebreak]
            body["track_scores"] = True
        else:
            body["sort"] = [{"_score": "desc"}, *tiebreak]
        if want_facets:
            body["aggs"] = {"categories": {"terms": {"field": "categories",
                                                     "size": max(10, len(category_tree()))}},
                            **FACET_AGGS}
        return body

    def _run(self, query: SearchQuery, place: Place | None, need: Need, radius: float,
             now: datetime, spelling: tuple[dict[str, list[str]], set[str]], **kwargs: Any
             ) -> tuple[list[dict[str, Any]], int, dict[str, list[FacetCount]]]:
        need_query, text = need_clauses(need, *spelling)
        body = self._search(**self._body(query, place, need, need_query, text, radius, now,
                                         **kwargs))
        rows = []
        for hit in body["hits"]["hits"]:
            source = hit["_source"]
            doc = source["doc"]
            dist = None
            if place is not None and doc.get("lat") is not None:
                dist = geo.distance_mi(place.lat, place.lon, doc["lat"], doc["lon"])
            rows.append({"key": source["key"], "doc": doc, "dist": dist,
                         "score": (hit.get("_score") or 0.0) - SCORE_OFFSET,
                         "categories": source.get("categories") or [],
                         "sort": hit.get("sort")})
        total = int(body["hits"]["total"]["value"])
        facets = facets_from(body.get("aggregations") or {}, need) \
            if kwargs.get("want_facets", True) and total else {}
        return rows, total, facets

    def search(self, query: SearchQuery, place: Place | None, *, now: datetime | None = None
               ) -> SearchResponse:
        """Answer a query as the embedded engine does; see the module docstring."""
        now = now or datetime.now(UTC)
        need = understand(query.q, query.categories)
        spelling = self._spelling(need.words)
        corrections = dict(spelling[0])
        rows, total, facets = self._run(query, place, need, query.radius_mi, now, spelling)
        broadened = None
        if not total and need.category_ids and not need.chosen_ids:
            wider = broaden(need)
            if wider is not None:
                need, broadened = wider
                rows, total, facets = self._run(query, place, need, query.radius_mi, now,
                                                spelling)
        near_misses: list[NearMiss] = []
        if query.include_near_misses and place is not None:
            near_misses = self._near_misses(query, place, need, rows, now, spelling)
        results = [self._result(r, query, need, now) for r in rows]
        pages = max(1, math.ceil(total / query.per_page)) if total else 0
        return SearchResponse(
            total=total, page=query.page, per_page=query.per_page, pages=pages,
            near=place.as_dict() if place else None,
            understood={"categories": sorted(need.category_ids), "phrases": need.phrases,
                        "words": need.words, "corrections": corrections,
                        "broadened_to": broadened},
            results=results, near_misses=near_misses, facets=facets)

    def _near_misses(self, query: SearchQuery, place: Place, need: Need,
                     found: list[dict[str, Any]], now: datetime,
                     spelling: tuple[dict[str, list[str]], set[str]]) -> list[NearMiss]:
        wider = min(query.radius_mi * 2, 250.0)
        rows, _, _ = self._run(query, place, need, wider, now, spelling, eligibility=False,
                               size=query.per_page * 4, offset=0, want_facets=False)
        seen = {r["key"] for r in found}
        misses: list[NearMiss] = []
        for row in rows:
            if row["key"] in seen:
                continue
            missed = mismatches(row["doc"], query)
            if row["dist"] is not None and row["dist"] > query.radius_mi:
                missed.insert(0, Note(code="distance", params={
                    "miles": round(row["dist"], 1), "radius_mi": query.radius_mi},
                    text=f"{row['dist']:.1f} mi, beyond {query.radius_mi:g}"))
            if missed:
                misses.append(NearMiss(result=self._result(row, query, need, now),
                                       missed=missed))
            if len(misses) >= query.per_page:
                break
        return misses

    @staticmethod
    def _result(row: dict[str, Any], query: SearchQuery, need: Need,
                now: datetime) -> SearchResult:
        return build_result(row["doc"], distance=row["dist"], score=row["score"],
                            categories=row["categories"], query=query, need=need, now=now)

    def suggest(self, prefix: str, limit: int = 10) -> list[Suggestion]:
        """Categories by name, then service names starting with `prefix` (last word a prefix)."""
        prefix = prefix.strip()
        if len(prefix) < 2:
            return []
        out = [Suggestion(kind="category", id=c.id, label=c.name)
               for c in category_tree().search_names(prefix, limit=limit)]
        if len(out) < limit:
            body = self._search(
                size=limit - len(out), _source=["service_id", "doc.name"],
                query={"bool": {"must": [{"match_bool_prefix": {"name.plain": {
                    "query": prefix, "operator": "and"}}}],
                    "filter": [{"term": {"status": "active"}}]}},
                collapse={"field": "service_id"})
            out += [Suggestion(kind="service", id=h["_source"]["service_id"],
                               label=h["_source"]["doc"]["name"])
                    for h in body["hits"]["hits"]]
        return out[:limit]
