"""Need understanding: the words case managers type, read as the categories they mean.

Tables of (phrase, category): the first category a need is read as must lie within the
expected one (or be it). False friends must not be read as what they resemble. A few searches
over a small directory show the reading reaching the ranking.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from indexer.pipeline import load
from service.app import create_app
from service.config import Settings
from service.db import Database
from service.directory.categories import (
    Synonyms,
    category_tree,
    parse_synonym_rules,
    parse_synonyms,
    synonyms,
)
from service.search.understand import ranked_categories, understand
from tests.factories import Package


def read_as(phrase: str) -> str | None:
    """The category a need is read as first."""
    ranked = ranked_categories(phrase)
    return ranked[0] if ranked else None


def within(category_id: str | None, expected: str) -> bool:
    return category_id is not None and category_id in category_tree().search_scope(expected)


NEW_VOCABULARY = [
    # (phrase, the category it must be read as first)
    ("client is drinking every day and wants to stop", "1178"),  # not only "stop drinking"
    ("his wages were never paid", "1386"),
    ("boss hasn't paid him for three weeks", "1386"),
    ("she might be pregnant and wants a test", "1215"),
    ("pregnant client wants to apply for WIC", "1133"),  # the programme, not the pregnancy
    ("applying for SSI for her son with autism", "1257"),  # autism says who, SSI what
    ("client just got out of prison and needs work", "1357"),
    ("returning citizen needs a state ID", "1384"),
    ("family is being evicted next week and needs a lawyer", "1389"),
    ("needs a Spanish interpreter for a court date", "1390"),
    ("client in a wheelchair needs paratransit to get to work", "1175"),
    ("needs a ramp built so he can get into his house", "1141"),
    ("teen is self-harming and her parents need help", "1126"),
    ("man is hearing voices and threatening to hurt himself", "1126"),  # crisis before therapy
    ("client is really depressed and wants to talk to someone", "1220"),
    ("teenager needs counseling after her dad died", "1186"),
    ("woman fleeing her abusive husband needs a safe place", "1125"),
    ("DV survivor with kids needs emergency housing", "1125"),
    ("needs clothes for a job interview", "1161"),
    ("needs a ride to a job interview", "1175"),
    ("was fired because of her race", "1382"),
    ("landlord won't give back her security deposit", "1375"),
    ("older adult living alone needs meals delivered", "1129"),
    ("grandmother with dementia needs a safe place to go during the day", "1278"),
    ("lives with roommates and can't find anywhere affordable", "1136"),
    ("sleeping in their car with two kids", "1135"),  # "sleeping in car", whoever's car
]


@pytest.mark.parametrize(("phrase", "expected"), NEW_VOCABULARY)
def test_phrasings_are_read_as_their_category(phrase: str, expected: str) -> None:
    found = read_as(phrase)
    assert within(found, expected), (phrase, found, ranked_categories(phrase))


FALSE_FRIENDS = [
    # (phrase, a category it must not be read as at all)
    ("needs clean drinking water after the storm", "1178"),  # water, not alcohol
    ("client is not homeless but can't pay rent", "1135"),
    ("he is no longer drinking and needs a job", "1178"),
    ("she isn't suicidal but is very depressed", "1126"),
    ("my client has never been homeless", "1135"),
    ("needs a car seat for the baby", "1105"),  # baby supplies, not transit
    ("grandmother with dementia needs a safe place to go during the day", "1124"),
    ("landlord won't give back her security deposit", "1137"),  # no help paying a deposit
    ("needs a lawyer to get his security deposit back", "1116"),
    ("the animal shelter has her dog", "1121"),
    ("needs to hire a lawyer", "1357"),  # hiring someone is not a job search
]


@pytest.mark.parametrize(("phrase", "wrong"), FALSE_FRIENDS)
def test_false_friends_are_not_read_as_what_they_resemble(phrase: str, wrong: str) -> None:
    ranked = ranked_categories(phrase)
    assert not any(within(c, wrong) for c in ranked), (phrase, ranked)


NEEDS_THAT_STAY = [
    # a negation of the need's *means* is the need itself
    ("client has no food in the house", "1128"),
    ("can't pay rent this month", "1137"),
    ("doesn't have health insurance", "1202"),
    ("client is homeless", "1135"),  # a word about the client stands alone when it is all
    ("needs a wheelchair", "1170"),  # the wheelchair asked for, not the client in one
]


@pytest.mark.parametrize(("phrase", "expected"), NEEDS_THAT_STAY)
def test_needs_named_through_a_lack_are_still_needs(phrase: str, expected: str) -> None:
    assert within(read_as(phrase), expected), (phrase, ranked_categories(phrase))


def test_negated_words_are_not_searched_as_text_either() -> None:
    need = understand("client is not homeless but needs food", [])
    assert "homeless" not in need.words and "not" not in need.words
    assert need.phrases == ["food"]


def test_words_about_the_client_yield_to_the_need() -> None:
    need = understand("pregnant client wants to apply for WIC", [])
    assert need.phrases == ["wic", "pregnant"]
    assert need.describing == ["pregnant"]
    assert "1217" in need.category_ids  # still a reading: maternity listings rank above others
    assert need.primary_ids == category_tree().search_scope("1133")


def test_needs_read_together_lead() -> None:
    need = understand("DV survivor needs emergency housing", [])
    assert need.primary_ids == category_tree().search_scope("1125")
    assert {"1124", "1135"} <= need.category_ids


def test_rules_file_has_three_kinds_of_line() -> None:
    rules = parse_synonym_rules(
        "food bank => 1130, 1128\n"
        "pregnant ~> 1217  # who the client is\n"
        "1124 & 1135 => 1125, 1151\n")
    assert rules.entries == [("food bank", ("1130", "1128")), ("pregnant", ("1217",))]
    assert rules.describing == ["pregnant"]
    assert rules.combinations == [(("1124", "1135"), ("1125", "1151"))]
    assert parse_synonyms("pregnant ~> 1217\n1124 & 1135 => 1125\n") == [("pregnant", ("1217",))]
    with pytest.raises(ValueError):
        parse_synonym_rules("1124 & 1135 ~> 1125")


def test_the_shipped_rules_name_real_categories() -> None:
    tree = category_tree()
    syn = synonyms()
    assert syn.combinations
    for parts, ids in syn.combinations:
        assert all(c in tree for c in (*parts, *ids)), (parts, ids)
    assert syn.describes_client("pregnant") and syn.describes_client("in a wheelchair")
    assert not syn.describes_client("wheelchair") and not syn.describes_client("wic")


def test_matching_ignores_articles_and_possessives_and_honours_negations() -> None:
    syn = Synonyms([("sleeping in car", ["1135"]), ("homeless", ["1135"]),
                    ("no food", ["1128"])])
    assert syn.expand("sleeping in my car") == [("sleeping in car", ("1135",))]
    assert syn.expand("sleeping in their car") == [("sleeping in car", ("1135",))]
    assert syn.expand("not currently homeless") == []
    assert syn.expand("no longer homeless") == []
    assert syn.expand("homeless and has no food") == [("homeless", ("1135",)),
                                                      ("no food", ("1128",))]


# --------------------------------------------------------------------------- in the ranking


def understanding_package() -> Package:
    """A few DC listings where the literal words of a need point at the wrong one."""
    p = Package()

    def listing(key: str, name: str, categories: str, lat: float, lon: float,
                description: str) -> None:
        p.add("organization", id=f"org-{key}", name=f"{name} Inc", description="Provider")
        p.add("service", id=key, organization_id=f"org-{key}", name=name,
              description=description, status="active", x_categories=categories,
              x_is_referable="true")
        p.add("location", id=f"loc-{key}", organization_id=f"org-{key}", name=name,
              location_type="physical", latitude=lat, longitude=lon)
        p.add("service_at_location", id=f"sal-{key}", service_id=key, location_id=f"loc-{key}")
        p.add("address", id=f"adr-{key}", location_id=f"loc-{key}", address_1="1 Main St",
              city="Washington", state_province="DC", postal_code="20001", country="US",
              address_type="physical")

    # Nearest to the client (20001), but only in a few words of the queries below.
    listing("after-school", "After School Kids", "1279", 38.913, -77.019,
            "Homework help for kids in grades three to five")
    listing("esl", "Citizenship and English Class", "1326", 38.912, -77.018,
            "An evening class for adults")
    listing("dv-office", "Safe Place Legal Advocacy", "1124", 38.912, -77.017,
            "Protective orders and court accompaniment for survivors")
    listing("general-shelter", "Emergency Housing Center", "1121", 38.913, -77.018,
            "Emergency housing for families")
    # What the needs ask for, a few blocks farther away.
    listing("clothing", "Neighborhood Clothing Closet", "1158", 38.916, -77.020,
            "Free clothes for all ages")
    listing("ged", "Adult Learning Center GED Program", "1323", 38.916, -77.021,
            "Adult basic education and high school equivalency")
    listing("day-center", "Silver Years Adult Day Center", "1278", 38.917, -77.020,
            "Supervised day program for older adults with dementia")
    listing("dv-shelter", "Harbor House", "1125", 38.917, -77.021,
            "Confidential shelter for survivors of domestic violence and their children")
    return p


@pytest.fixture
def api(sqlite_db: Database, tmp_path: Path) -> Iterator[TestClient]:
    load(sqlite_db, understanding_package().write(tmp_path / "pkg"), source="city")
    settings = Settings(database_url=str(sqlite_db.url), environment="test", demo_notice=False,
                        geocode_cache_path=tmp_path / "geocode.sqlite")
    with TestClient(create_app(settings)) as client:
        yield client


RANKED = [
    # (query, the listing that must come first)
    # no school-uniform listing: the wider category beats a listing that only holds the
    # query's other words ("three", "kids")
    ("school uniforms for three kids", "Neighborhood Clothing Closet"),
    # "GED" in a name says more than "class" does
    ("needs a GED class", "Adult Learning Center GED Program"),
    ("grandmother with dementia needs a safe place to go during the day",
     "Silver Years Adult Day Center"),
    ("DV survivor with kids needs emergency housing", "Harbor House"),
]


@pytest.mark.parametrize(("q", "first"), RANKED)
def test_the_need_understood_leads_the_results(api: TestClient, q: str, first: str) -> None:
    response = api.get("/api/v1/search", params={"q": q, "near": "20001", "radius_mi": 10})
    assert response.status_code == 200, response.text
    found = [r["name"] for r in response.json()["results"]]
    assert found[:1] == [first], found


def test_a_negated_situation_finds_nothing_for_it(api: TestClient) -> None:
    body = api.get("/api/v1/search", params={"q": "not homeless, needs clothes",
                                             "near": "20001"}).json()
    assert [r["name"] for r in body["results"]] == ["Neighborhood Clothing Closet"]
    assert "homeless" not in body["understood"]["words"]
