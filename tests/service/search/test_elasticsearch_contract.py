"""The Elasticsearch backend's contract, without a server: what each request means.

The real 8.x client runs against a fake node that records every request and answers with the
response shapes documented by Elasticsearch (search hits and aggregations, bulk, create index,
aliases, errors). Tests assert the meaning of each request (which filters, which point, radius
and unit, which decay and scale, which weights), so dropping any of them fails a test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from elastic_transport import ApiResponseMeta, BaseNode, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport._node import NodeApiResponse
from elasticsearch import Elasticsearch
from sqlalchemy import select

from indexer.pipeline import load
from service.db import Database
from service.directory.tables import service
from service.errors import Unavailable
from service.search import geo
from service.search.backend import Place
from service.search.documents import SearchDocument, build_documents
from service.search.elasticsearch import (
    INDEX_VERSION,
    SCORE_OFFSET,
    ElasticsearchBackend,
    to_source,
)
from service.search.schemas import ClientProfile, SearchQuery
from tests.factories import search_package

HERE = Place(38.912, -77.018, label="20001", precision="zip", postal_code="20001", state="DC",
             county="District of Columbia", city="Washington")
NOW = datetime(2024, 3, 6, 15, 30, tzinfo=UTC)  # a Wednesday afternoon
ALIAS = "signpost-services"


# --- the fake cluster ---------------------------------------------------------------------


class Request:
    """One recorded request: method, path, query parameters and decoded body."""

    def __init__(self, method: str, target: str, body: bytes | None) -> None:
        parts = urlsplit(target)
        self.method, self.path = method, parts.path
        self.params = dict(parse_qsl(parts.query))
        text = (body or b"").decode()
        if self.path.endswith("/_bulk"):
            self.body: Any = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            self.body = json.loads(text) if text else None

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


def search_response(hits: list[dict[str, Any]] | None = None, total: int | None = None,
                    aggregations: dict[str, Any] | None = None) -> dict[str, Any]:
    """A search response as documented (hits.total.value, _source, sort, aggregations)."""
    hits = hits or []
    body: dict[str, Any] = {
        "took": 3, "timed_out": False,
        "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        "hits": {"total": {"value": len(hits) if total is None else total, "relation": "eq"},
                 "max_score": max((h.get("_score") or 0 for h in hits), default=None),
                 "hits": hits},
    }
    if aggregations is not None:
        body["aggregations"] = aggregations
    return body


class FakeCluster:
    """Records requests; answers each with `handler` or the documented default shapes."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.aliases: dict[str, list[str]] = {}  # alias -> indices
        self.down = False
        self.handler: Callable[[Request], tuple[int, Any] | None] | None = None
        self.bulk_failures_after: int | None = None

    def client(self) -> Elasticsearch:
        cluster = self

        class FakeNode(BaseNode):
            def perform_request(self, method: str, target: str, body: bytes | None = None,
                                headers: Any = None, request_timeout: Any = None
                                ) -> NodeApiResponse:
                if cluster.down:
                    raise TransportConnectionError("Connection refused")
                request = Request(method, target, body)
                cluster.requests.append(request)
                status, payload = cluster.answer(request)
                meta = ApiResponseMeta(status=status, http_version="1.1", headers=HttpHeaders(
                    {"content-type": "application/json", "x-elastic-product": "Elasticsearch"}),
                    duration=0.0, node=self.config)
                return NodeApiResponse(meta, json.dumps(payload).encode())

        assert issubclass(FakeNode, BaseNode) and NodeConfig
        return Elasticsearch("http://es.test:9200", node_class=FakeNode, max_retries=1,
                             retry_on_timeout=True)

    def answer(self, r: Request) -> tuple[int, Any]:
        if self.handler is not None:
            custom = self.handler(r)
            if custom is not None:
                return custom
        if r.path.endswith("/_bulk"):
            bulks = [x for x in self.requests if x.path.endswith("/_bulk")]
            if self.bulk_failures_after is not None and len(bulks) > self.bulk_failures_after:
                return 503, {"error": {"type": "cluster_block_exception",
                                       "reason": "blocked by: [SERVICE_UNAVAILABLE]"},
                             "status": 503}
            items = [{"index": {"_index": a["index"].get("_index", "x"), "_id": a["index"]["_id"],
                                "_version": 1, "result": "created", "status": 201}}
                     for a in r.body[::2]]
            return 200, {"took": 5, "errors": False, "items": items}
        if r.path.startswith("/_alias/"):
            name = r.path.rsplit("/", 1)[1]
            if name not in self.aliases:
                return 404, {"error": f"alias [{name}] missing", "status": 404}
            return 200, {i: {"aliases": {name: {}}} for i in self.aliases[name]}
        if r.path == "/_aliases":
            return 200, {"acknowledged": True}
        if r.path.endswith("/_refresh"):
            return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
        if r.path.endswith("/_delete_by_query"):
            return 200, {"took": 2, "timed_out": False, "total": 1, "deleted": 1, "batches": 1,
                         "version_conflicts": 0, "noops": 0, "failures": []}
        if r.path.endswith("/_count"):
            return 200, {"count": 11, "_shards": {"total": 1, "successful": 1, "failed": 0}}
        if r.path.endswith("/_search"):
            return 200, search_response(aggregations={
                "zones": {"buckets": [{"key": "America/New_York", "doc_count": 10}]}})
        if r.method == "PUT":
            return 200, {"acknowledged": True, "shards_acknowledged": True,
                         "index": r.path.strip("/")}
        if r.method == "DELETE":
            return 200, {"acknowledged": True}
        raise AssertionError(f"unexpected request {r}")

    def searches(self) -> list[Request]:
        """The main search requests (function_score queries)."""
        return [r for r in self.requests if r.path.endswith("/_search")
                and "function_score" in json.dumps(r.body.get("query", {}))]


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster()


@pytest.fixture
def backend(cluster: FakeCluster) -> ElasticsearchBackend:
    return ElasticsearchBackend(cluster.client(), backoff=0.0)


@pytest.fixture
def directory(sqlite_db: Database, tmp_path: Path) -> Database:
    load(sqlite_db, search_package().write(tmp_path / "pkg"), source="city")
    return sqlite_db


@pytest.fixture
def documents(directory: Database) -> list[SearchDocument]:
    with directory.engine.connect() as conn:
        ids = list(conn.execute(select(service.c.id).order_by(service.c.id)).scalars())
        return list(build_documents(conn, ids))


# --- reading request bodies -------------------------------------------------------------------


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every dict inside a request body."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def clauses(node: Any, kind: str) -> list[Any]:
    """Every `kind` clause (geo_distance, term, range...) inside `node`."""
    return [d[kind] for d in walk(node) if kind in d]


def run(backend: ElasticsearchBackend, cluster: FakeCluster, place: Place | None = HERE,
        **params: Any) -> dict[str, Any]:
    """Search, and return the body of its first main request (an empty answer may broaden)."""
    before = len(cluster.searches())
    backend.search(SearchQuery(**params), place, now=NOW)
    return cluster.searches()[before].body


def hard_filters(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["query"]["function_score"]["query"]["bool"]["filter"]


def functions(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["query"]["function_score"]["functions"]


def weight_of(body: dict[str, Any], clause: dict[str, Any]) -> float:
    """What a listing matching `clause` gains (the sum of the functions filtered on it)."""
    found = [f["weight"] for f in functions(body) if f.get("filter") == clause]
    assert found, f"no function boosts {clause}"
    return sum(found)


def name_boosts(body: dict[str, Any]) -> dict[str, float]:
    """Need phrase -> the weight of finding it at a word start in the name, read back from
    each function's clause (a term on word starts, or whole words then a word start)."""
    out = {}
    for f in functions(body):
        clause = f.get("filter", {})
        if "name_starts" in clause.get("term", {}):
            out[clause["term"]["name_starts"]] = f["weight"]
        elif "span_near" in clause:
            near = clause["span_near"]
            assert near["slop"] == 0 and near["in_order"] is True
            *whole, last = near["clauses"]
            words = [c["span_term"]["name_org"] for c in whole]
            masked = last["span_field_masking"]
            assert masked["field"] == "name_org"
            out[" ".join([*words, masked["query"]["span_term"]["name_starts"]])] = f["weight"]
    return out


def text_bonus(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The text clauses of the function worth 1.5 (the listing's text says what was asked)."""
    (text,) = [f["filter"] for f in functions(body) if f["weight"] == 1.5]
    return clauses(text, "match")


# --- queries ----------------------------------------------------------------------------------


def test_every_search_keeps_active_referable_listings_and_sums_replaced_scores(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food pantry")
    assert {"term": {"status": "active"}} in hard_filters(body)
    assert {"term": {"is_referable": True}} in hard_filters(body)
    score = body["query"]["function_score"]
    assert score["score_mode"] == "sum" and score["boost_mode"] == "replace"
    assert body["track_total_hits"] is True
    wider = run(backend, cluster, q="food pantry", include_not_referable=True)
    assert {"term": {"is_referable": True}} not in hard_filters(wider)


def test_category_query_filters_on_the_top_category_and_boosts_it(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, categories=["1102"])
    need = [c for c in clauses(hard_filters(body), "terms") if "categories" in c]
    assert need == [{"categories": ["1102"]}]  # descendants are covered by indexed ancestors
    assert weight_of(body, {"terms": {"categories": ["1102"]}}) == 3.0  # chosen: main and named


def test_the_main_category_outranks_the_others_a_need_names(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food pantry for seniors")
    assert weight_of(body, {"terms": {"categories": ["1130"]}}) == 2.0
    assert weight_of(body, {"terms": {"categories": ["1130", "1278", "1285"]}}) == 1.0


def test_text_query_matches_stemmed_words_or_categories_and_boosts_text_and_name(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="party supplies")
    need = hard_filters(body)[-1]
    matches = clauses(need, "match")
    assert {m["words"]["query"] for m in matches} == {"party", "supplies"}
    text = next(f for f in functions(body) if f.get("filter") == need)
    assert text["weight"] == 1.5
    assert name_boosts(body) == {"party": 1.0, "supplies": 1.0}  # no need named: words count
    synonym = run(backend, cluster, q="food pantry")
    need = hard_filters(synonym)[-1]
    assert {"terms": {"categories": ["1130"]}} in need["bool"]["should"]
    assert clauses(need, "match")[0]["words"] == {"query": "food pantry", "operator": "and"}


def test_near_filters_sites_by_distance_in_miles_or_areas_covering_the_client(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", radius_mi=10)
    (distance,) = clauses(hard_filters(body), "geo_distance")
    assert distance["distance"] == "10mi"
    assert distance["location"] == {"lat": HERE.lat, "lon": HERE.lon}
    area = next(c for c in hard_filters(body) if "geo_distance" in json.dumps(c))
    area_terms = clauses(area, "term")
    assert {"is_area": True} in area_terms
    assert {"area.states": "dc"} in area_terms and {"area.zips": "20001"} in area_terms
    assert {"area.counties": "dc/district of columbia"} in area_terms
    assert {"area.nation": True} in area_terms
    small = run(backend, cluster, q="food", radius_mi=2.5)
    assert clauses(hard_filters(small), "geo_distance")[0]["distance"] == "2.5mi"


def test_distance_decays_exponentially_with_scale_half_the_radius(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", radius_mi=10)
    (decay,) = [f for f in functions(body) if "exp" in f]
    assert decay["exp"]["location"]["origin"] == {"lat": HERE.lat, "lon": HERE.lon}
    assert decay["exp"]["location"]["scale"] == "5mi"
    assert decay["exp"]["location"]["decay"] == pytest.approx(math.exp(-1))  # exp(-d/scale)
    assert decay["weight"] == 3.0 and decay["filter"] == {"exists": {"field": "location"}}
    assert weight_of(body, {"term": {"is_area": True}}) == pytest.approx(1.2)
    fresh = next(f for f in functions(body) if "gauss" in f)
    assert fresh["filter"] == {"exists": {"field": "verified_at"}}
    assert fresh["gauss"]["verified_at"]["origin"].startswith("2024-03-06")
    assert fresh["gauss"]["verified_at"]["offset"] == "365d" and fresh["weight"] == 0.3
    nowhere = run(backend, cluster, place=None, q="food")
    assert not clauses(nowhere, "geo_distance") and not [f for f in functions(nowhere)
                                                         if "exp" in f]


def test_age_and_gender_allow_unrestricted_listings(backend: ElasticsearchBackend,
                                                    cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="shelter", client=ClientProfile(age=17, gender="female"))
    ranges = clauses(hard_filters(body), "range")
    assert {"min_age": {"lte": 17}} in ranges and {"max_age": {"gte": 17}} in ranges
    missing = [e["field"] for e in clauses(hard_filters(body), "exists")]
    assert {"min_age", "max_age", "genders"} <= set(missing)
    assert {"genders": "female"} in clauses(hard_filters(body), "term")
    plain = run(backend, cluster, q="shelter")
    assert not clauses(hard_filters(plain), "range")
    assert all("genders" not in t for t in clauses(hard_filters(plain), "term"))


def test_language_cost_and_capacity_filters(backend: ElasticsearchBackend,
                                            cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", languages=["ES"], cost=["free", "sliding_scale"],
               capacity=["has_capacity"])
    terms = clauses(hard_filters(body), "terms")
    assert {"languages": ["es"]} in terms
    assert {"cost": ["free", "sliding_scale"]} in terms
    assert {"capacity_status": ["has_capacity"]} in terms


def test_client_language_insurance_capacity_and_free_are_boosted(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", client=ClientProfile(language="es",
                                                                insurance=["medicaid"]))
    assert weight_of(body, {"term": {"languages": "es"}}) == 0.5
    assert weight_of(body, {"terms": {"cost": ["medicaid"]}}) == 0.4
    assert weight_of(body, {"term": {"cost": "free"}}) == 0.2
    has = weight_of(body, {"term": {"capacity_status": "has_capacity"}})
    waitlist = weight_of(body, {"term": {"capacity_status": "waitlist"}})
    assert has - 0.4 == pytest.approx(0.4) and waitlist - 0.4 == pytest.approx(-0.2)
    assert all(f["weight"] >= 0 for f in functions(body))  # Elasticsearch rejects negatives


def test_open_now_uses_each_listings_time_zone(backend: ElasticsearchBackend,
                                               cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", open_now=True)
    assert {"hours_known": True} in clauses(hard_filters(body), "term")
    slot = 2 * 24 + 10  # Wednesday 10:30 in New York
    assert {"bool": {"filter": [{"term": {"time_zone": "America/New_York"}},
                                {"term": {"open_hours": slot}}]}} in clauses(
        hard_filters(body), "should")[-1]
    assert not [f for f in functions(body) if "open_certain" in json.dumps(f)]
    ranked = run(backend, cluster, q="food")
    assert weight_of(ranked, {"term": {"open_certain": slot}}) == 0.3


def test_sort_by_distance_in_miles_then_score(backend: ElasticsearchBackend,
                                              cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", sort="distance")
    first = body["sort"][0]["_geo_distance"]
    assert first["unit"] == "mi" and first["order"] == "asc"
    assert first["location"] == {"lat": HERE.lat, "lon": HERE.lon}
    assert body["sort"][1] == {"_score": "desc"} and body["track_scores"] is True
    assert run(backend, cluster, q="food")["sort"][0] == {"_score": "desc"}


def test_paging(backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food", page=3, per_page=20)
    assert body["from"] == 40 and body["size"] == 20


def test_facets_are_aggregations(backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    aggs = run(backend, cluster, q="food")["aggs"]
    assert aggs["categories"]["terms"]["field"] == "categories"
    assert set(aggs["cost"]["filters"]["filters"]) == {"free", "sliding_scale", "insurance"}
    assert set(aggs["capacity"]["filters"]["filters"]) == {"has_capacity", "waitlist"}
    assert aggs["languages"]["filters"]["filters"]["es"] == {
        "terms": {"languages": ["es", "spanish"]}}


def test_unknown_words_are_corrected_from_the_index_vocabulary(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    def answer(r: Request) -> tuple[int, Any] | None:
        if r.path.endswith("/_search") and "suggest" in (r.body or {}):
            return 200, {**search_response(), "aggregations": {"w0": {"doc_count": 0}},
                         "suggest": {"w0": [{"text": "grocereis", "offset": 0, "length": 9,
                                             "options": [{"text": "groceri", "score": 0.8,
                                                          "freq": 3}]}]}}
        return None

    cluster.handler = answer
    response = backend.search(SearchQuery(q="grocereis"), HERE, now=NOW)
    spell = next(r for r in cluster.requests if "suggest" in (r.body or {})).body
    assert spell["suggest"]["w0"]["term"]["field"] == "words"
    assert spell["suggest"]["w0"]["term"]["prefix_length"] == 1
    need = hard_filters(cluster.searches()[-1].body)[-1]
    assert clauses(need, "term") == [{"words": "groceri"}] and not clauses(need, "match")
    assert response.understood["corrections"] == {"grocereis": ["groceri"]}


def test_suggest_offers_categories_then_service_names(backend: ElasticsearchBackend,
                                                      cluster: FakeCluster) -> None:
    cluster.handler = lambda r: (200, search_response([{
        "_index": "i", "_id": "k", "_score": 1.0, "_source": {
            "service_id": "s1", "doc": {"name": "Capitol Food Pantry"}}}]))
    found = backend.suggest("food pa")
    assert found[0].kind == "category" and found[0].id == "1130"
    assert found[-1].kind == "service" and found[-1].label == "Capitol Food Pantry"
    body = cluster.requests[-1].body
    assert body["query"]["bool"]["must"][0]["match_bool_prefix"]["name.plain"]["query"] == \
        "food pa"
    assert {"term": {"status": "active"}} in body["query"]["bool"]["filter"]
    assert body["collapse"] == {"field": "service_id"}


def test_need_words_count_in_names_at_word_starts_and_weigh_twice_the_rest(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    # "ged" must begin a word of the name (GED Prep, not Managed Care): a term on the
    # edge-ngrams of each word; "class" is a word left over, worth half a need phrase.
    body = run(backend, cluster, q="a GED class")
    boosts = name_boosts(body)
    assert boosts == {"ged": pytest.approx(2.0 / 1.5), "class": pytest.approx(1.0 / 1.5)}
    assert sum(boosts.values()) == pytest.approx(2.0)
    assert not clauses(functions(body), "match_phrase")  # no whole-word-only name matches
    # A phrase: whole words, then the start of a word, side by side and in order.
    assert name_boosts(run(backend, cluster, q="food pantry")) == {"food pantry": 2.0}


def test_phrases_about_the_client_and_leftover_words_find_but_do_not_earn_the_text_bonus(
        backend: ElasticsearchBackend, cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="food pantry for seniors")
    assert [m["words"]["query"] for m in text_bonus(body)] == ["food pantry"]
    finds = [m["words"]["query"] for m in clauses(hard_filters(body)[-1], "match")]
    assert finds == ["food pantry", "seniors"]  # "seniors" still finds listings
    assert name_boosts(body) == {"food pantry": pytest.approx(2.0 / 1.5),
                                 "seniors": pytest.approx(1.0 / 1.5)}
    leftover = run(backend, cluster, q="tutoring for my kid")
    assert [m["words"]["query"] for m in text_bonus(leftover)] == ["tutoring"]
    assert {"match": {"words": {"query": "kid"}}} in walk(hard_filters(leftover)[-1])
    assert name_boosts(leftover) == {"tutoring": pytest.approx(2.0 / 1.5),
                                     "kid": pytest.approx(1.0 / 1.5)}
    # With no need named, what the client is said to be is all there is to rank by.
    alone = run(backend, cluster, q="evicted")
    assert [m["words"]["query"] for m in text_bonus(alone)] == ["evicted"]
    assert name_boosts(alone) == {"evicted": 2.0}


def test_a_negated_phrase_is_no_part_of_the_request(backend: ElasticsearchBackend,
                                                    cluster: FakeCluster) -> None:
    body = run(backend, cluster, q="needs food, not shelter")
    assert "shelter" not in json.dumps(body["query"])
    assert "1121" not in json.dumps(body["query"])  # nor its category (Shelter)
    assert [m["words"]["query"] for m in text_bonus(body)] == ["food"]
    assert name_boosts(body) == {"food": 2.0}


# --- responses --------------------------------------------------------------------------------


def test_results_are_parsed_and_explained(backend: ElasticsearchBackend, cluster: FakeCluster,
                                          documents: list[SearchDocument]) -> None:
    pantry = next(d for d in documents if d.name == "Capitol Food Pantry")
    hotline = next(d for d in documents if d.name == "Florida Crisis Hotline")
    hits = [{"_index": "signpost-services-1", "_id": d.key, "_score": score + SCORE_OFFSET,
             "_source": to_source(d), "sort": [score + SCORE_OFFSET, d.service_id, d.key]}
            for d, score in ((pantry, 6.5), (hotline, 1.2))]
    aggregations = {
        "categories": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0,
                       "buckets": [{"key": "1102", "doc_count": 3},
                                   {"key": "1130", "doc_count": 3}]},
        "cost": {"buckets": {"free": {"doc_count": 1}, "sliding_scale": {"doc_count": 0},
                             "insurance": {"doc_count": 0}}},
        "capacity": {"buckets": {"has_capacity": {"doc_count": 1}, "waitlist": {"doc_count": 0}}},
        "languages": {"buckets": {"es": {"doc_count": 1}}},
    }
    cluster.handler = lambda r: (200, search_response(hits, total=23, aggregations=aggregations)) \
        if r.path.endswith("/_search") and "function_score" in json.dumps(r.body) else None
    response = backend.search(SearchQuery(q="food pantry"), HERE, now=NOW)
    assert response.total == 23 and response.pages == 3
    first, second = response.results
    assert first.name == "Capitol Food Pantry" and first.score == 6.5
    assert first.distance_mi == pytest.approx(round(geo.distance_mi(
        HERE.lat, HERE.lon, pantry.lat, pantry.lon), 2))
    codes = [n.code for n in first.reasons]
    assert codes[:2] == ["category", "distance"] and "free" in codes and "has_capacity" in codes
    assert second.distance_mi is None and second.service_at_location_id is None
    assert "serves_area" in [n.code for n in second.reasons]
    assert [(f.value, f.count) for f in response.facets["categories"]] == [("1102", 3)]
    assert [f.value for f in response.facets["cost"]] == ["free"]
    assert [f.value for f in response.facets["languages"]] == ["es"]


def test_near_misses_search_twice_the_radius_without_eligibility(
        backend: ElasticsearchBackend, cluster: FakeCluster,
        documents: list[SearchDocument]) -> None:
    youth = next(d for d in documents if d.name == "Youth Shelter")
    far = next(d for d in documents if d.name == "Anacostia Food Pantry")

    def answer(r: Request) -> tuple[int, Any] | None:
        if not (r.path.endswith("/_search") and "function_score" in json.dumps(r.body)):
            return None
        if clauses(r.body, "range"):
            return 200, search_response()
        return 200, search_response([{"_id": d.key, "_score": 2.0, "_source": to_source(d)}
                                     for d in (youth, far)])

    cluster.handler = answer
    response = backend.search(SearchQuery(q="shelter", radius_mi=3, client=ClientProfile(
        age=30), include_near_misses=True), HERE, now=NOW)
    main, wider = cluster.searches()[-2:]
    assert clauses(hard_filters(wider.body), "geo_distance")[0]["distance"] == "6mi"
    assert not clauses(hard_filters(wider.body), "range") and "aggs" not in wider.body
    missed = {m.result.name: m.missed[0] for m in response.near_misses}
    assert missed["Youth Shelter"].code == "age"
    assert missed["Anacostia Food Pantry"].code == "distance"
    assert missed["Anacostia Food Pantry"].text.endswith("mi, beyond 3")


# --- writes -----------------------------------------------------------------------------------


def test_index_streams_bulk_requests_by_key_into_the_alias(
        backend: ElasticsearchBackend, cluster: FakeCluster,
        documents: list[SearchDocument]) -> None:
    assert backend.index(documents) == len(documents)
    create = next(r for r in cluster.requests if r.method == "PUT")
    assert create.path.startswith(f"/{ALIAS}-") and create.body["aliases"] == {
        ALIAS: {"is_write_index": True}}
    mapping = create.body["mappings"]["properties"]
    assert mapping["location"]["type"] == "geo_point"
    assert mapping["name"]["analyzer"] == "english"
    assert {mapping[f]["type"] for f in ("categories", "languages", "cost",
                                         "capacity_status", "status", "genders")} == {"keyword"}
    assert mapping["area"]["properties"]["states"]["type"] == "keyword"
    assert mapping["open_hours"]["type"] == "short"
    assert create.body["mappings"]["_meta"] == {"signpost_index_version": INDEX_VERSION}
    # Names, word for word and as every start of a word, in the same positions.
    for field in ("name", "organization"):
        assert mapping[field]["copy_to"][1:] == ["name_org", "name_starts"]
    analysis = create.body["settings"]["analysis"]
    whole = analysis["analyzer"][mapping["name_org"]["analyzer"]]
    starts = analysis["analyzer"][mapping["name_starts"]["analyzer"]]
    assert mapping["name_starts"]["search_analyzer"] == mapping["name_org"]["analyzer"]
    assert starts["tokenizer"] == whole["tokenizer"] and starts["filter"][:-1] == whole["filter"]
    grams = analysis["filter"][starts["filter"][-1]]
    assert (grams["type"], grams["min_gram"], grams["preserve_original"]) == (
        "edge_ngram", 1, True)
    assert analysis["tokenizer"][whole["tokenizer"]] == {"type": "pattern",
                                                         "pattern": r"[^\p{L}\p{N}]+"}
    (bulk,) = [r for r in cluster.requests if r.path.endswith("/_bulk")]
    assert bulk.params["refresh"] == "wait_for"
    actions = bulk.body[::2]
    assert {a["index"]["_index"] for a in actions} == {ALIAS}
    assert [a["index"]["_id"] for a in actions] == [d.key for d in documents]
    source = next(s for s in bulk.body[1::2] if s["name"] == "Capitol Food Pantry")
    assert source["location"] == {"lat": 38.915, "lon": -77.02}
    assert "1102" in source["categories"] and "1130" in source["categories"]  # ancestors
    assert source["cost"] == ["free"] and len(source["open_hours"]) == 168
    hotline = next(s for s in bulk.body[1::2] if s["name"] == "Florida Crisis Hotline")
    assert hotline["is_area"] is True and hotline["area"]["states"] == ["fl"]
    youth = next(s for s in bulk.body[1::2] if s["name"] == "Youth Shelter")
    assert (youth["min_age"], youth["max_age"]) == (12, 17)


def test_remove_deletes_every_document_of_the_services(backend: ElasticsearchBackend,
                                                       cluster: FakeCluster) -> None:
    cluster.aliases[ALIAS] = ["signpost-services-1"]
    assert backend.remove(["b", "a", "a"]) == 1
    delete = cluster.requests[-1]
    assert delete.path == f"/{ALIAS}/_delete_by_query"
    assert delete.body["query"] == {"terms": {"service_id": ["a", "b"]}}
    assert delete.params["refresh"] == "true"


def test_rebuild_moves_the_alias_once_after_every_bulk_and_a_refresh(
        backend: ElasticsearchBackend, cluster: FakeCluster, directory: Database) -> None:
    cluster.aliases[ALIAS] = ["signpost-services-old"]
    assert backend.rebuild(directory) == 12
    kinds = [r.path for r in cluster.requests]
    create = next(i for i, r in enumerate(cluster.requests) if r.method == "PUT")
    new = cluster.requests[create].path.strip("/")
    assert new.startswith(f"{ALIAS}-") and "aliases" not in cluster.requests[create].body
    bulks = [i for i, p in enumerate(kinds) if p.endswith("/_bulk")]
    refresh = kinds.index(f"/{new}/_refresh")
    (swap,) = [i for i, p in enumerate(kinds) if p == "/_aliases"]
    assert create < min(bulks) and max(bulks) < refresh < swap
    targets = {a["index"]["_index"] for i in bulks for a in cluster.requests[i].body[::2]}
    assert targets == {new}
    assert cluster.requests[swap].body["actions"] == [
        {"remove": {"index": "signpost-services-old", "alias": ALIAS}},
        {"add": {"index": new, "alias": ALIAS, "is_write_index": True}}]
    deleted = [r.path for r in cluster.requests if r.method == "DELETE"]
    assert deleted == ["/signpost-services-old"] and kinds.index(deleted[0]) > swap


def test_a_failed_bulk_leaves_the_alias_untouched(backend: ElasticsearchBackend,
                                                  cluster: FakeCluster,
                                                  directory: Database) -> None:
    cluster.aliases[ALIAS] = ["signpost-services-old"]
    cluster.bulk_failures_after = 0
    with pytest.raises(Unavailable):
        backend.rebuild(directory)
    assert not [r for r in cluster.requests if r.path == "/_aliases"]
    new = next(r for r in cluster.requests if r.method == "PUT").path
    deleted = [r.path for r in cluster.requests if r.method == "DELETE"]
    assert deleted == [new]  # only the unfinished index goes; the old one still serves


def test_an_index_of_an_older_mapping_is_not_current(backend: ElasticsearchBackend,
                                                     cluster: FakeCluster) -> None:
    def mapping(version: int | None) -> Callable[[Request], tuple[int, Any] | None]:
        meta = {"_meta": {"signpost_index_version": version}} if version else {}
        return lambda r: (200, {"signpost-services-1": {"mappings": {**meta, "properties": {}}}}
                          ) if r.path == f"/{ALIAS}/_mapping" else None

    cluster.handler = mapping(INDEX_VERSION)
    assert backend.is_current()
    for older in (INDEX_VERSION - 1, None):
        cluster.handler = mapping(older)
        assert not backend.is_current()  # `signpost serve` rebuilds it behind the alias
    cluster.handler = lambda r: (404, {"error": {"type": "index_not_found_exception",
                                                 "reason": "no such index"}, "status": 404})
    assert backend.is_current()  # nothing to upgrade; `signpost index rebuild` makes one
    cluster.handler, cluster.down = None, True
    assert backend.is_current()  # a cluster that does not answer never blocks the start


# --- errors -----------------------------------------------------------------------------------


def test_cluster_down_is_a_503_with_a_message(backend: ElasticsearchBackend,
                                              cluster: FakeCluster) -> None:
    cluster.down = True
    with pytest.raises(Unavailable) as raised:
        backend.search(SearchQuery(q="food"), HERE, now=NOW)
    assert raised.value.status == 503 and "Elasticsearch cluster did not answer" in \
        raised.value.message
    with pytest.raises(Unavailable):
        backend.suggest("capitol")


def test_cluster_errors_and_missing_index_are_503s(backend: ElasticsearchBackend,
                                                   cluster: FakeCluster) -> None:
    cluster.handler = lambda r: (503, {"error": {
        "root_cause": [{"type": "search_phase_execution_exception", "reason": "all shards"}],
        "type": "search_phase_execution_exception", "reason": "all shards failed"},
        "status": 503})
    with pytest.raises(Unavailable) as raised:
        backend.search(SearchQuery(categories=["1102"]), HERE, now=NOW)
    assert "503" in raised.value.message
    cluster.handler = lambda r: (404, {"error": {
        "type": "index_not_found_exception", "reason": f"no such index [{ALIAS}]"},
        "status": 404})
    with pytest.raises(Unavailable) as missing:
        backend.search(SearchQuery(categories=["1102"]), None, now=NOW)
    assert "signpost index rebuild" in missing.value.message
    assert backend.count() == 0


def test_settings_select_the_elasticsearch_backend_without_connecting(
        sqlite_db: Database) -> None:
    from service.config import Settings
    from service.search.service import make_backend

    settings = Settings(database_url=str(sqlite_db.url), environment="test",
                        search_backend="elasticsearch",
                        elasticsearch_url="http://127.0.0.1:1")
    backend = make_backend(settings, sqlite_db)
    assert isinstance(backend, ElasticsearchBackend) and backend.db is sqlite_db
    assert backend._vocabulary() == {}  # the app's warm-up must not touch the network
    unset = Settings(database_url=str(sqlite_db.url), environment="test",
                     search_backend="elasticsearch")
    assert make_backend(unset, sqlite_db) is None
