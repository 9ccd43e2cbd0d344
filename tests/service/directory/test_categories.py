"""Need categories: the Open Eligibility tree, legacy and AIRS code mappings, synonyms, phrasings.

Tests marked ``shared`` read the real imports in ``../shared/datasets`` (Ohana taxonomy, Miami
and DC AIRS codes); the rest use only the committed files in ``data/taxonomy``.
"""

from __future__ import annotations

import collections
import csv
import json
import re
from pathlib import Path

import pytest

from indexer import build_categories
from service.directory.categories import (
    DATA_DIR,
    Category,
    CategoryTree,
    PrefixMap,
    Synonyms,
    airs_categories,
    airs_lineage,
    airs_situations,
    categorize,
    category_tree,
    normalise,
    parse_synonyms,
    read_phrasings,
    situation_tree,
    situations_for,
    synonyms,
    tokens,
)

ROOT = Path(__file__).resolve().parents[3]
DATASETS = ROOT.parent / "shared" / "datasets"
OHANA_TAXONOMY = DATASETS / "hsds_ohana_smc_sample" / "taxonomy.csv"
MIAMI = DATASETS / "hsds_open211_miami"
DC_EXPORT = DATASETS / "airs_211_exports" / "dc_211_airs_export_2014.csv"

SUBSTANCE_USE = "1178"  # Health > Addiction & Recovery
EMERGENCY_SHELTER = "1135"  # Housing > Emergency Shelter (twin of 1121 under Emergency)


@pytest.fixture(scope="module")
def tree() -> CategoryTree:
    return category_tree()


# --------------------------------------------------------------------------- tree integrity


def test_tree_shape(tree: CategoryTree) -> None:
    assert len(tree) == 290
    assert [c.name for c in tree.roots()] == [
        "Emergency",
        "Food",
        "Housing",
        "Goods",
        "Transit",
        "Health",
        "Money",
        "Care",
        "Education",
        "Work",
        "Legal",
    ]
    assert all(c.description for c in tree.roots())
    assert all(c.description is None for c in tree if c.parent_id is not None)


def test_every_parent_exists_and_no_cycles(tree: CategoryTree) -> None:
    ids = {c.id for c in tree}
    for cat in tree:
        assert cat.parent_id is None or cat.parent_id in ids
        seen = {cat.id}
        node = cat
        while node.parent_id is not None:
            assert node.parent_id not in seen, f"cycle at {cat.id}"
            seen.add(node.parent_id)
            node = tree[node.parent_id]
    reachable = set().union(*(tree.descendants(r.id) for r in tree.roots()))
    assert reachable == ids


def test_ids_slugs_and_names_are_clean(tree: CategoryTree) -> None:
    assert all(re.fullmatch(r"1\d{3}", c.id) for c in tree)
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", c.slug) for c in tree)
    assert len({c.slug for c in tree}) == len(tree)
    for cat in tree:
        first, *rest = cat.name.split()
        assert first[0].isupper() or first[0].isdigit(), cat.name
        minor = build_categories._MINOR_WORDS | {"&"}
        assert all(w.lstrip("(")[0].isupper() or w in minor for w in rest), cat.name
    assert tree["1293"].name == "Help Fill Out Forms"


def test_raw_json_has_the_documented_fields() -> None:
    records = json.loads((DATA_DIR / "categories.json").read_text(encoding="utf-8"))
    assert set(records[0]) == {
        "id",
        "slug",
        "name",
        "parent_id",
        "description",
        "legacy_codes",
        "aliases",
    }
    pantry = next(r for r in records if r["id"] == "1130")
    assert pantry == {
        "id": "1130",
        "slug": "food-pantry",
        "name": "Food Pantry",
        "parent_id": "1102",
        "description": None,
        "legacy_codes": ["102-04"],
        "aliases": [],
    }


def test_tree_rejects_bad_input() -> None:
    a = Category("1", "a", "A")
    with pytest.raises(ValueError, match="duplicate category id"):
        CategoryTree([a, Category("1", "b", "B")])
    with pytest.raises(ValueError, match="does not exist"):
        CategoryTree([a, Category("2", "b", "B", parent_id="9")])
    with pytest.raises(ValueError, match="cycle"):
        CategoryTree([Category("1", "a", "A", "2"), Category("2", "b", "B", "1")])
    with pytest.raises(ValueError, match="duplicate category slug"):
        CategoryTree([a, Category("2", "a", "B")])


def test_descendants_ancestors_children(tree: CategoryTree) -> None:
    assert tree.descendants("1113") == {"1113", "1114", "1115", "1116", "1117", "1118", "1119"}
    assert tree.descendants("1130") == {"1130"}
    assert {"1178", "1179", "1180", "1181", "1182", "1183"} == tree.descendants("1178")
    assert "1180" in tree.descendants("1106")
    assert [c.id for c in tree.ancestors("1154")] == ["1103", "1145", "1152"]
    assert tree.ancestors("1101") == []
    assert [c.name for c in tree.path("1180")] == ["Health", "Addiction & Recovery", "Detox"]
    assert [c.id for c in tree.children("1178")] == ["1179", "1180", "1181", "1182", "1183"]
    assert tree.depth("1101") == 0 and tree.depth("1154") == 3
    assert tree["1170"].parent_id == "1169"  # repaired nesting slip in the v2 XML
    with pytest.raises(KeyError):
        tree.descendants("9999")
    assert tree.get("9999") is None


def test_slugs_names_and_twins(tree: CategoryTree) -> None:
    assert tree.by_slug("food-pantry").id == "1130"  # type: ignore[union-attr]
    assert tree.by_slug("emergency-shelter").id == "1121"  # type: ignore[union-attr]
    assert tree.by_slug("housing-emergency-shelter").id == "1135"  # type: ignore[union-attr]
    assert tree.by_slug("nope") is None
    assert tree.equivalents("1135") == {"1121", "1135"}
    assert tree.canonical("1135") == "1121"
    assert tree.equivalents("1133") == {"1133", "1235", "1258"}
    assert {"1121", "1135"} <= tree.search_scope("1121")
    assert "1154" in tree.search_scope("1183")  # Sober Living under Housing and under Health
    assert [c.id for c in tree.by_name("primary care")] == ["1206"]  # folded duplicate id


def test_search_names_type_ahead(tree: CategoryTree) -> None:
    assert tree.search_names("food p")[0].id == "1130"
    assert [c.id for c in tree.search_names("emergency sh")] == ["1121"]  # twins collapsed
    assert {c.id for c in tree.search_names("emergency sh", distinct=False)} == {"1121", "1135"}
    assert "1130" in {c.id for c in tree.search_names("pantry")}  # word-start match
    assert tree.search_names("prim")[0].id == "1206"  # via the alias "Primary Care"
    assert tree.search_names("DET")[0].name == "Detox"
    assert len(tree.search_names("h", limit=3)) == 3
    assert tree.search_names("  ") == []


def test_singletons_load_once() -> None:
    assert category_tree() is category_tree()
    assert synonyms() is synonyms()
    assert airs_categories() is airs_categories()


# --------------------------------------------------------------------------- legacy OE codes


def test_legacy_codes_committed(tree: CategoryTree) -> None:
    codes = [code for cat in tree for code in cat.legacy_codes]
    assert len(codes) == len(set(codes)) == 290
    assert categorize(["102-04"]) == {"1130"}
    assert categorize("101") == {"1101"}
    assert categorize("101-02-09") == {"1113"}  # unknown sub-code -> its parent
    assert categorize("106-06-09") == {"1206"}


@pytest.mark.shared
def test_all_ohana_legacy_codes_map(tree: CategoryTree) -> None:
    with OHANA_TAXONOMY.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 290
    mapped = {r["taxonomy_id"]: categorize([r["taxonomy_id"]]) for r in rows}
    hits = [code for code, ids in mapped.items() if len(ids) == 1]
    share = len(hits) / len(rows)
    print(f"legacy OE codes mapped: {len(hits)}/{len(rows)} = {share:.1%}")
    assert share >= 0.98
    known = {
        "101": "1101",
        "101-02": "1113",
        "101-02-01": "1114",
        "101-04": "1121",
        "102-04": "1130",
        "102-06-02": "1133",
        "103-01": "1135",
        "103-05-04-02": "1154",
        "104-05-01": "1170",
        "106-01-02": "1180",
        "106-06-09": "1206",
        "107-03-02": "1258",
        "108-07-09-01": "1313",
        "109-03-07-03": "1336",
        "110-01-01": "1358",
        "111-05": "1390",
    }
    for code, cid in known.items():
        assert mapped[code] == {cid}, code
    overrides = set(build_categories.LEGACY_OVERRIDES)
    for row in rows:
        if row["taxonomy_id"] in overrides:
            continue
        (cid,) = mapped[row["taxonomy_id"]]
        assert normalise(tree[cid].name) == normalise(row["name"]), row
        parent = row["parent_id"].strip()
        if parent:
            assert tree[cid].parent_id in categorize([parent]), row


@pytest.mark.shared
def test_builder_reproduces_committed_files(tmp_path: Path) -> None:
    figures = build_categories.build(DATASETS, tmp_path)
    assert figures["legacy_unmatched"] == []
    assert figures["legacy_mapped"] == 290
    for name in ("categories.json", "situations.json"):
        assert (tmp_path / name).read_text(encoding="utf-8") == (DATA_DIR / name).read_text(
            encoding="utf-8"
        ), f"{name} is stale: rerun python -m indexer.build_categories"
    assert build_categories.check_hand_written(DATA_DIR) == []


def test_match_legacy_reports_unmatched() -> None:
    nodes = [
        build_categories.Node("1", "Food", None, 0),
        build_categories.Node("2", "Food Pantry", "1", 1),
    ]
    terms = [("102", "Food", None), ("102-04", "Food Pantry", "102"), ("102-09", "Zzz", "102")]
    result = build_categories.match_legacy(terms, nodes, overrides={})
    assert result.mapping == {"102": "1", "102-04": "2"}
    assert result.unmatched == [("102-09", "Zzz")]


def test_title_case_and_slugify() -> None:
    assert build_categories.title_case("Help Fill out Forms") == "Help Fill Out Forms"
    assert build_categories.title_case("English as a Second Language (ESL)") == (
        "English as a Second Language (ESL)"
    )
    assert build_categories.slugify("Adoption & Foster Care") == "adoption-and-foster-care"
    assert build_categories.slugify("GED/High-School Equivalency") == "ged-high-school-equivalency"


# --------------------------------------------------------------------------- AIRS codes


KNOWN_AIRS = {
    "BD-1800.2000-640": "1130",  # ongoing emergency food -> Food Pantry
    "LN-1500": "1206",  # community clinics -> Medical Care
    "ND-3500.3600": "1357",  # job search/placement -> Help Find Work
    "BH-1800.8500": EMERGENCY_SHELTER,  # homeless shelter -> Emergency Shelter
    "RX-8450.1150": SUBSTANCE_USE,  # outpatient SUD treatment -> Addiction & Recovery
    "FT-3200": "1375",  # general legal aid -> Advocacy & Legal Aid
}


@pytest.mark.parametrize(("code", "expected"), sorted(KNOWN_AIRS.items()))
def test_known_airs_codes(tree: CategoryTree, code: str, expected: str) -> None:
    ids = categorize([code])
    assert expected in ids
    assert all(i in tree for i in ids)


def test_airs_specifics(tree: CategoryTree) -> None:
    assert categorize("BD-1800.2000-640") == {"1130"}
    assert categorize("BH-1800.8500") == {"1121", "1135"}
    assert categorize("RX-8450.1150-180") == {"1178", "1181"}
    assert categorize("RX-1700.1700-500") == {"1180"}  # detox
    assert "1181" in categorize("RX-8450.5000-510")  # methadone -> outpatient treatment
    assert categorize("ND-3500.3600") == {"1357", "1358"}
    assert "1201" in categorize("LN-1500")
    assert categorize("NL-6000.2000-220") == {"1133", "1258"}  # SNAP applications
    assert categorize("BV-8900.9300-180") == {"1119", "1138"}  # electric bill help
    assert categorize("ln-1500 ") == categorize("LN-1500")
    assert categorize("YB-8000") == set()  # target populations are situations, not needs
    assert categorize("JR-1950") == set()  # fire stations: deliberately unmapped


def test_airs_lineage_and_prefix_map() -> None:
    assert airs_lineage("RP-1400.8000-020.80") == [
        "RP-1400.8000-020.80",
        "RP-1400.8000-020",
        "RP-1400.8000",
        "RP-1400",
        "RP",
        "R",
    ]
    assert airs_lineage("B") == ["B"]
    assert airs_lineage("Food Pantry") == []
    pm = PrefixMap([("BD", "1"), ("BD-1800", "2"), ("BD-1800", "3")])
    assert pm.lookup("BD-1800.2000-640") == ("2", "3")
    assert pm.match("BD-5000") == ("BD", ("1",))
    assert pm.lookup("BH-1800") == ()
    with pytest.raises(ValueError):
        PrefixMap([("BD-18", "1")])


def test_airs_csvs_ship_no_airs_names(tree: CategoryTree) -> None:
    """The note column is our breadcrumb plus an optional remark of our own, no AIRS text."""
    for name, target in (("airs_to_categories.csv", tree), ("airs_to_situations.csv", None)):
        target = target or situation_tree()
        with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        assert rows[0][0] == "airs_code_prefix" and all(len(r) == 3 for r in rows)
        for _prefix, cid, note in rows[1:]:
            crumb = " > ".join(c.name for c in target.path(cid))
            assert note == crumb or re.fullmatch(re.escape(crumb) + r" \([^()]+\)", note), note


@pytest.mark.shared
def test_airs_csvs_do_not_repeat_airs_term_names() -> None:
    with (MIAMI / "taxonomy.csv").open(encoding="utf-8", newline="") as fh:
        airs_names = {normalise(r["name"]) for r in csv.DictReader(fh)}
    for name in ("airs_to_categories.csv", "airs_to_situations.csv"):
        with (DATA_DIR / name).open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                remark = re.search(r"\(([^()]+)\)$", row["note"])
                if remark:
                    assert normalise(remark.group(1)) not in airs_names, row


def _miami_links() -> list[str]:
    with (MIAMI / "services_taxonomy.csv").open(encoding="utf-8", newline="") as fh:
        return [r["taxonomy_id"].strip() for r in csv.DictReader(fh)]


def _dc_links() -> list[str]:
    with DC_EXPORT.open(encoding="utf-8", newline="") as fh:
        return [
            code.strip()
            for row in csv.DictReader(fh)
            for code in re.split(r"[;*]", row["TaxonomyCodes"])
            if code.strip()
        ]


@pytest.mark.shared
@pytest.mark.parametrize(
    ("source", "min_need_share", "min_population_share"),
    [("miami", 0.88, 0.90), ("dc", 0.80, 0.60)],
)
def test_airs_coverage_on_real_imports(
    source: str, min_need_share: float, min_population_share: float
) -> None:
    links = _miami_links() if source == "miami" else _dc_links()
    assert all(airs_lineage(code) for code in links), "every code parses as AIRS"
    needs = [c for c in links if not c.upper().startswith("Y")]
    populations = [c for c in links if c.upper().startswith("Y")]
    cat_map, sit_map = airs_categories(), airs_situations()
    need_hits = sum(1 for c in needs if cat_map.lookup(c))
    pop_hits = sum(1 for c in populations if sit_map.lookup(c))
    any_hits = sum(1 for c in links if cat_map.lookup(c) or sit_map.lookup(c))
    print(
        f"{source}: {len(links)} links; needs {need_hits}/{len(needs)} "
        f"= {need_hits / len(needs):.1%}; populations {pop_hits}/{len(populations)} "
        f"= {pop_hits / len(populations):.1%}; any {any_hits / len(links):.1%}"
    )
    assert need_hits / len(needs) >= min_need_share
    assert pop_hits / len(populations) >= min_population_share


@pytest.mark.shared
def test_every_airs_prefix_occurs_in_real_data() -> None:
    seen: set[str] = set()
    for code in _miami_links() + _dc_links():
        seen.update(airs_lineage(code))
    unseen = [
        p for p, _ in [*airs_categories().items(), *airs_situations().items()] if p not in seen
    ]
    assert unseen == []


# --------------------------------------------------------------------------- categorize


def test_categorize_mixed_inputs(tree: CategoryTree) -> None:
    assert categorize(["1130"]) == {"1130"}
    assert categorize(["Food Pantry", "food-pantry", " food pantry "]) == {"1130"}
    assert categorize(["Emergency Shelter"]) == {"1121", "1135"}  # twins
    assert categorize(["105, 108-05, 111-05"]) == {"1105", "1292", "1390"}  # Ohana field
    assert categorize(["BD-1800.2000-640 * YB-8000; LN-1500"]) == {"1130", "1206", "1201"}
    assert categorize(["", "nonsense", "9999", "20010"]) == set()
    assert categorize([]) == set()


def test_situations(tree: CategoryTree) -> None:
    situations = situation_tree()
    assert len(situations) == 94
    assert all(re.fullmatch(r"2\d{4}", s.id) for s in situations)
    assert situations.by_slug("veterans").id == "20010"  # type: ignore[union-attr]
    assert situations_for("YN-9000.6000") == {"20010"}
    assert situations_for(["YV-3000.3150"]) == {"20010", "20058"}
    assert situations_for(["Veterans", "20058", "YB-8000"]) == {"20010", "20058", "20006"}
    assert situations_for("BD-1800") == set()
    assert not set(situations_for(["20010"])) & {c.id for c in tree}


# --------------------------------------------------------------------------- synonyms


@pytest.fixture(scope="module")
def synonym_entries() -> list[tuple[str, tuple[str, ...]]]:
    return parse_synonyms((DATA_DIR / "synonyms.txt").read_text(encoding="utf-8"))


def test_synonyms_file_parses_and_targets_exist(
    tree: CategoryTree, synonym_entries: list[tuple[str, tuple[str, ...]]]
) -> None:
    assert len(synonym_entries) >= 300
    for phrase, ids in synonym_entries:
        assert ids and all(i in tree for i in ids), phrase
    counts = collections.Counter(tokens(p) for p, _ in synonym_entries)
    assert [p for p, n in counts.items() if n > 1] == []
    covered = {i for _, ids in synonym_entries for i in ids}
    for topic in ("1102", "1103", "1104", "1105", "1106", "1107", "1108", "1109", "1110", "1111"):
        assert covered & tree.descendants(topic), topic


def test_parse_synonyms_rejects_bad_lines() -> None:
    assert parse_synonyms("# c\n\nfood bank => 1130, 1128  # inline\n") == [
        ("food bank", ("1130", "1128"))
    ]
    for bad in ("no arrow here", "=> 1130", "x => ", "x => abc"):
        with pytest.raises(ValueError):
            parse_synonyms(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my client needs detox", SUBSTANCE_USE),
        ("needs a bed tonight", EMERGENCY_SHELTER),
        ("suboxone", SUBSTANCE_USE),
        ("Looking for a METHADONE clinic", SUBSTANCE_USE),
        ("got an eviction notice", "1375"),
        ("help with the light bill", "1119"),
        ("needs food stamps", "1133"),
        ("AA/NA meetings", "1179"),
        ("client needs a dentist", "1184"),
        ("resumé help", "1370"),
        ("domestic violance", "1124"),
    ],
)
def test_expand_examples(tree: CategoryTree, text: str, expected: str) -> None:
    ids = synonyms().category_ids(text)
    assert ids & tree.search_scope(expected), (text, synonyms().expand(text))


def test_expand_rules() -> None:
    syn = Synonyms(
        [
            ("food", ["1102"]),
            ("food stamps", ["1133"]),
            ("snap", ["1133"]),
            ("bed tonight", ["1135"]),
            ("12-step", ["1179"]),
        ]
    )
    assert syn.expand("Food stamps and food") == [("food stamps", ("1133",)), ("food", ("1102",))]
    assert syn.expand("snapshot of SNAP.") == [("snap", ("1133",))]  # word boundaries
    assert syn.expand("a BED, tonight!") == [("bed tonight", ("1135",))]
    assert syn.expand("12 step meeting") == [("12-step", ("1179",))]
    assert syn.expand("") == []
    assert "Food Stamps" in syn and syn.lookup("FOOD") == ("1102",)


def test_category_names_are_implicit_synonyms(tree: CategoryTree) -> None:
    syn = synonyms()
    assert syn.lookup("food pantry") == ("1130",)
    assert set(syn.lookup("assisted living")) == {"1147", "1299"}
    assert syn.lookup("care") == ()  # too generic
    assert "1206" in syn.lookup("primary care")


# --------------------------------------------------------------------------- phrasings


def test_phrasings_file(
    tree: CategoryTree, synonym_entries: list[tuple[str, tuple[str, ...]]]
) -> None:
    rows = read_phrasings(DATA_DIR / "phrasings.tsv")
    assert len(rows) >= 150
    assert all(cid in tree for _, cid in rows)
    assert len({tokens(p) for p, _ in rows}) == len(rows), "duplicate phrasings"
    synonym_phrases = {tokens(p) for p, _ in synonym_entries}
    assert [p for p, _ in rows if tokens(p) in synonym_phrases] == []
    assert sum(len(tokens(p)) >= 3 for p, _ in rows) / len(rows) > 0.9  # sentences, not keywords
    syn = synonyms()
    hits = sum(1 for p, cid in rows if syn.category_ids(p) & tree.search_scope(cid))
    print(f"phrasings answered by synonyms alone: {hits}/{len(rows)} = {hits / len(rows):.1%}")
    assert hits / len(rows) >= 0.85
