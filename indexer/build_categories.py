"""Build the directory's need categories from Open Eligibility v2 and map the older codes onto them.

Run from the repository root::

    python -m indexer.build_categories ../shared/datasets data/taxonomy

It reads

* ``open_eligibility/taxonomy_v2.xml`` -- the Open Eligibility v2 taxonomy ("Human Services
  Taxonomy by Aunt Bertha, Inc.", CC BY-SA 3.0). Its ``<services>`` tree becomes
  ``categories.json`` and its ``<situations>`` tree becomes ``situations.json``;
* ``hsds_ohana_smc_sample/taxonomy.csv`` -- the older Open Eligibility code scheme (``101``,
  ``101-01``, ``102-04-01`` ...) used by Ohana deployments (BSD-3). Each legacy code is matched
  onto a v2 category by normalised name, walking down from the already matched parent, with a
  small hand-checked override table (`LEGACY_OVERRIDES`) for the few names that changed. Only the
  code -> id mapping is written (as ``legacy_codes`` on each category), never the CSV's text.

and writes ``categories.json`` and ``situations.json`` into the output folder, refreshing the
breadcrumb that starts each note of the AIRS CSVs. It then checks the
hand-written files that live beside them (``airs_to_categories.csv``, ``airs_to_situations.csv``,
``synonyms.txt``, ``phrasings.tsv``) against the fresh category ids and exits non-zero if any of
them names an id that does not exist.

The output is deterministic (tree order, sorted legacy codes, two-space JSON) so the committed
files only change when the inputs do.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

OE_XML = Path("open_eligibility") / "taxonomy_v2.xml"
OHANA_TAXONOMY = Path("hsds_ohana_smc_sample") / "taxonomy.csv"

#: Legacy codes whose names cannot be matched under their parent, checked by hand against the
#: Open Eligibility v2 tree. Everything else matches by normalised name.
LEGACY_OVERRIDES: dict[str, str] = {
    # "Emergency Cash" was renamed "Emergency Payments" in v2; its six children then match by name.
    "101-02": "1113",
    # v2 lists "Primary Care" with the same id as its parent "Medical Care" (1206); the builder
    # folds it into 1206 as an alias, so the legacy code goes there too.
    "106-06-09": "1206",
}

# Words kept lower case inside a Title Case name (unless first).
_MINOR_WORDS = frozenset("a an and as at but by for from in into of on or the to via with".split())


@dataclass
class Node:
    """One term of an Open Eligibility tree while it is being built."""

    id: str
    title: str
    parent_id: str | None
    depth: int
    description: str | None = None
    aliases: list[str] = field(default_factory=list)
    legacy_codes: list[str] = field(default_factory=list)
    slug: str = ""

    @property
    def name(self) -> str:
        return title_case(self.title)


# --------------------------------------------------------------------------- text helpers


def title_case(title: str) -> str:
    """Title Case an Open Eligibility title: capitalise words, keep minor words and acronyms."""
    words = title.split()
    out: list[str] = []
    for i, word in enumerate(words):
        if i > 0 and word.lower() in _MINOR_WORDS:
            out.append(word.lower())
        elif word[:1].isalpha() and word[:1].islower():
            out.append(word[:1].upper() + word[1:])
        else:
            out.append(word)
    return " ".join(out)


def normalise_name(name: str) -> str:
    """Lower-case, ``&`` -> ``and``, punctuation to spaces, whitespace collapsed."""
    text = name.lower().replace("&", " and ")
    text = re.sub(r"[^a-z0-9]+", " ", text)
    return " ".join(text.split())


def slugify(name: str) -> str:
    """``"Adoption & Foster Care"`` -> ``"adoption-and-foster-care"``."""
    return normalise_name(name).replace(" ", "-")


# --------------------------------------------------------------------------- the XML


_LEVELS = {"top_level": 1, "second_level": 2, "third_level": 3, "fourth_level": 4}


def _level_children(element: ET.Element) -> Iterator[ET.Element]:
    for child in element:
        if child.tag in _LEVELS:
            yield child


def parse_tree(root: ET.Element, descriptions: dict[str, str] | None = None) -> list[Node]:
    """Flatten a ``<services>`` or ``<situations>`` element into nodes in document order.

    Two slips in the v2 file are repaired:

    * a term that repeats an id already seen (v2 gives "Primary Care" the id of its parent
      "Medical Care", 1206) is folded into the first node as an alias; its children, if any,
      are attached to that node;
    * a term nested more than one level below its XML parent (v2 closes "Medical Supplies"
      before its ``third_level`` "Assistive Technology", 1170, leaving it directly under Goods)
      is attached to the closest preceding sibling of the level in between, as its level, its
      id sequence and the legacy scheme (``104-04`` -> ``104-05-01``) all say.
    """
    nodes: dict[str, Node] = {}
    order: list[str] = []

    def walk(element: ET.Element, parent_id: str | None, level: int) -> None:
        previous: dict[int, str] = {}  # level -> id of the latest term seen at that level here
        for child in _level_children(element):
            cid = (child.get("id") or "").strip()
            title = " ".join((child.get("title") or "").split())
            if not cid or not title:
                raise ValueError(f"term without id or title under {parent_id!r}")
            child_level = _LEVELS[child.tag]
            owner = parent_id
            if child_level > level + 1 and child_level - 1 in previous:
                owner = previous[child_level - 1]
            previous[child_level] = cid
            if cid in nodes:
                nodes[cid].aliases.append(title_case(title))
                walk(child, cid, child_level)
                continue
            depth = 0 if owner is None else nodes[owner].depth + 1
            desc = (descriptions or {}).get(cid) if owner is None else None
            nodes[cid] = Node(cid, title, owner, depth, desc)
            order.append(cid)
            walk(child, cid, child_level)

    walk(root, None, 0)
    return [nodes[i] for i in order]


def read_open_eligibility(path: Path) -> tuple[list[Node], list[Node]]:
    """Return (service categories, situations) from the Open Eligibility v2 XML."""
    doc = ET.parse(path).getroot()
    services = doc.find("services")
    situations = doc.find("situations")
    if services is None or situations is None:
        raise ValueError(f"{path}: expected <services> and <situations>")
    descriptions = {
        (c.get("id") or "").strip(): " ".join((c.text or "").split())
        for c in services.iterfind("descriptions/category")
    }
    return parse_tree(services, descriptions), parse_tree(situations)


def assign_slugs(nodes: list[Node]) -> None:
    """Give every node a unique slug.

    The shallowest node with a given name (document order breaks ties) gets the bare slug, e.g.
    ``food-pantry``; repeats of the name are prefixed with their nearest ancestors' slugs until
    unique (``emergency-payments-help-pay-for-food``).
    """
    by_id = {n.id: n for n in nodes}
    taken: set[str] = set()
    position = {n.id: i for i, n in enumerate(nodes)}
    for node in sorted(nodes, key=lambda n: (n.depth, position[n.id])):
        base = slugify(node.name)
        slug = base
        parent = by_id.get(node.parent_id) if node.parent_id else None
        while slug in taken and parent is not None:
            slug = f"{slugify(parent.name)}-{slug}"
            parent = by_id.get(parent.parent_id) if parent.parent_id else None
        if slug in taken:
            slug = f"{base}-{node.id}"
        taken.add(slug)
        node.slug = slug


# --------------------------------------------------------------------------- legacy codes


@dataclass(frozen=True)
class LegacyResult:
    """The outcome of matching the legacy code scheme."""

    mapping: dict[str, str]
    unmatched: list[tuple[str, str]]
    overridden: list[str]


def read_legacy_terms(path: Path) -> list[tuple[str, str, str | None]]:
    """(code, name, parent code) rows of an Ohana ``taxonomy.csv``."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            (
                row["taxonomy_id"].strip(),
                row["name"].strip(),
                (row.get("parent_id") or "").strip() or None,
            )
            for row in csv.DictReader(fh)
            if (row.get("taxonomy_id") or "").strip()
        ]


def match_legacy(
    terms: Iterable[tuple[str, str, str | None]],
    nodes: list[Node],
    overrides: dict[str, str] | None = None,
) -> LegacyResult:
    """Map legacy codes onto node ids by normalised name, parent first.

    A code is matched among the children of its parent's match (names and aliases); a root code
    among the roots. If the parent is unmatched, a name that is unique within the same top-level
    branch is accepted. Overrides win over everything.
    """
    overrides = LEGACY_OVERRIDES if overrides is None else overrides
    by_id = {n.id: n for n in nodes}
    children: dict[str | None, list[Node]] = {}
    for n in nodes:
        children.setdefault(n.parent_id, []).append(n)

    def root_of(node_id: str) -> str:
        node = by_id[node_id]
        while node.parent_id is not None:
            node = by_id[node.parent_id]
        return node.id

    def names(node: Node) -> set[str]:
        return {normalise_name(node.title), *(normalise_name(a) for a in node.aliases)}

    mapping: dict[str, str] = {}
    unmatched: list[tuple[str, str]] = []
    overridden: list[str] = []
    ordered = sorted(terms, key=lambda t: (t[0].count("-"), t[0]))
    for code, name, parent in ordered:
        if code in overrides:
            if overrides[code] not in by_id:
                raise ValueError(f"override {code} -> {overrides[code]}: no such category")
            mapping[code] = overrides[code]
            overridden.append(code)
            continue
        key = normalise_name(name)
        found: list[Node] = []
        if parent is None:
            found = [n for n in children.get(None, []) if key in names(n)]
        elif parent in mapping:
            found = [n for n in children.get(mapping[parent], []) if key in names(n)]
        if not found and parent is not None:
            top = code.split("-")[0]
            branch = mapping.get(top)
            pool = [n for n in nodes if key in names(n)]
            if branch is not None:
                pool = [n for n in pool if root_of(n.id) == branch]
            if len(pool) == 1:
                found = pool
        if len(found) == 1:
            mapping[code] = found[0].id
        else:
            unmatched.append((code, name))
    return LegacyResult(mapping, unmatched, overridden)


# --------------------------------------------------------------------------- output


def category_records(nodes: list[Node]) -> list[dict[str, object]]:
    return [
        {
            "id": n.id,
            "slug": n.slug,
            "name": n.name,
            "parent_id": n.parent_id,
            "description": n.description,
            "legacy_codes": sorted(n.legacy_codes, key=_legacy_sort_key),
            "aliases": n.aliases,
        }
        for n in nodes
    ]


def situation_records(nodes: list[Node]) -> list[dict[str, object]]:
    return [{"id": n.id, "slug": n.slug, "name": n.name, "parent_id": n.parent_id} for n in nodes]


def _legacy_sort_key(code: str) -> tuple[int, ...]:
    return tuple(int(p) for p in code.split("-") if p.isdigit())


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_hand_written(out_dir: Path) -> list[str]:
    """Problems in the hand-written files beside the JSON (ids that do not exist, bad syntax)."""
    # Imported here so that the builder's own logic stays usable without the service package.
    from service.directory import categories as cat

    problems: list[str] = []
    tree = cat.CategoryTree.load(out_dir / "categories.json")
    situations = cat.CategoryTree.load(out_dir / "situations.json")
    checks: list[tuple[str, cat.CategoryTree]] = [
        ("airs_to_categories.csv", tree),
        ("airs_to_situations.csv", situations),
    ]
    for name, target in checks:
        path = out_dir / name
        if not path.exists():
            problems.append(f"{name}: missing")
            continue
        try:
            prefix_map = cat.PrefixMap.load(path)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            continue
        for prefix, ids in prefix_map.items():
            problems += [f"{name}: {prefix} -> unknown id {i}" for i in ids if i not in target]
    path = out_dir / "synonyms.txt"
    if path.exists():
        try:
            entries = cat.parse_synonyms(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            problems.append(f"synonyms.txt: {exc}")
            entries = []
        for phrase, ids in entries:
            problems += [
                f"synonyms.txt: {phrase!r} -> unknown id {i}" for i in ids if i not in tree
            ]
    path = out_dir / "phrasings.tsv"
    if path.exists():
        for phrase, cid in cat.read_phrasings(path):
            if cid not in tree:
                problems.append(f"phrasings.tsv: {phrase!r} -> unknown id {cid}")
    return problems


def refresh_airs_notes(out_dir: Path) -> list[str]:
    """Rewrite the breadcrumb at the start of each AIRS CSV note from the fresh trees.

    A note is ``Top > ... > Target`` optionally followed by `` (remark)``; the remark is kept.
    Returns the names of the files that changed.
    """
    trees = {
        "airs_to_categories.csv": {n["id"]: n for n in _load(out_dir / "categories.json")},
        "airs_to_situations.csv": {n["id"]: n for n in _load(out_dir / "situations.json")},
    }
    changed: list[str] = []
    for name, nodes in trees.items():
        path = out_dir / name
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(text.splitlines()))
        for row in rows[1:]:
            if len(row) != 3 or row[1] not in nodes:
                continue
            crumbs: list[str] = []
            node: dict[str, object] | None = nodes[row[1]]
            while node is not None:
                crumbs.append(str(node["name"]))
                node = nodes.get(str(node["parent_id"])) if node["parent_id"] else None
            remark = re.search(r" \([^()]+\)$", row[2])
            row[2] = " > ".join(reversed(crumbs)) + (remark.group(0) if remark else "")
        with io.StringIO() as buffer:
            csv.writer(buffer, lineterminator="\n").writerows(rows)
            fresh = buffer.getvalue()
        if fresh != text:
            path.write_text(fresh, encoding="utf-8")
            changed.append(name)
    return changed


def _load(path: Path) -> list[dict[str, object]]:
    return json.loads(path.read_text(encoding="utf-8"))


def build(datasets: Path, out_dir: Path) -> dict[str, object]:
    """Build both JSON files and return figures for the report."""
    services, situations = read_open_eligibility(datasets / OE_XML)
    assign_slugs(services)
    assign_slugs(situations)
    legacy = match_legacy(read_legacy_terms(datasets / OHANA_TAXONOMY), services)
    by_id = {n.id: n for n in services}
    for code, cid in legacy.mapping.items():
        by_id[cid].legacy_codes.append(code)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "categories.json", category_records(services))
    write_json(out_dir / "situations.json", situation_records(situations))
    notes_refreshed = refresh_airs_notes(out_dir)
    return {
        "categories": len(services),
        "top_level": sum(1 for n in services if n.parent_id is None),
        "situations": len(situations),
        "legacy_codes": len(legacy.mapping) + len(legacy.unmatched),
        "legacy_mapped": len(legacy.mapping),
        "legacy_overridden": legacy.overridden,
        "legacy_unmatched": legacy.unmatched,
        "folded_aliases": {n.id: n.aliases for n in services if n.aliases},
        "notes_refreshed": notes_refreshed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("datasets", type=Path, help="the shared datasets folder")
    parser.add_argument("out_dir", type=Path, help="where to write (data/taxonomy)")
    args = parser.parse_args(argv)
    figures = build(args.datasets, args.out_dir)
    for key, value in figures.items():
        print(f"{key}: {value}")
    problems = check_hand_written(args.out_dir)
    for problem in problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if problems or figures["legacy_unmatched"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
