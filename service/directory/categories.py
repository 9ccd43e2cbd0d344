"""Need categories (Open Eligibility v2), their synonyms, and the code schemes mapped onto them.

Everything here is pure and reads the committed files in ``data/taxonomy`` lazily, once per
process (see ``data/taxonomy/README.md`` for their sources and licences):

* ``categories.json`` -- the Open Eligibility v2 ``<services>`` tree as `Category` records,
  with the legacy Open Eligibility codes (``101-01``) mapped onto each; see `category_tree`.
* ``situations.json`` -- the ``<situations>`` tree (ages, populations, conditions) for
  eligibility; see `situation_tree`.
* ``airs_to_categories.csv`` / ``airs_to_situations.csv`` -- AIRS/211 LA code *prefixes* mapped
  onto our ids (no AIRS term names are shipped); the longest matching prefix wins.
* ``synonyms.txt`` -- the words case managers and clients use, ``phrase => id[, id]`` (see
  `parse_synonym_rules` for the other two kinds of line).

Public entry points:

* `category_tree()` -> `CategoryTree` with ``get``, ``by_slug``, ``children``, ``descendants``,
  ``ancestors``, ``roots``, ``search_names`` (type-ahead), ``equivalents`` and ``search_scope``
  (Open Eligibility repeats a term under several parents: "Emergency Shelter" is both 1121 under
  Emergency and 1135 under Housing; those same-name twins are *equivalents*).
* `categorize(codes_or_names)` -> category ids for OE ids, legacy OE codes, AIRS codes and exact
  category names or slugs, in any mix (also ``"101, 102-04"`` or ``"BD-1800; BH-1800 * YB-8000"``).
* `situations_for(codes_or_names)` -> situation ids for situation ids, AIRS ``Y`` codes, names.
* `synonyms()` -> `Synonyms` whose ``expand(text)`` finds synonym phrases inside a free-text
  query (word boundaries, case-insensitive, longest match first, negated phrases left out),
  whose ``describes_client(phrase)`` tells phrases about the client ("pregnant") from needs,
  and whose ``combinations`` list needs that together mean a more specific one.
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import NamedTuple

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "taxonomy"

CATEGORIES_FILE = "categories.json"
SITUATIONS_FILE = "situations.json"
AIRS_CATEGORIES_FILE = "airs_to_categories.csv"
AIRS_SITUATIONS_FILE = "airs_to_situations.csv"
SYNONYMS_FILE = "synonyms.txt"
PHRASINGS_FILE = "phrasings.tsv"

#: An AIRS/211 LA taxonomy code or prefix: ``B``, ``BD``, ``BD-1800``, ``BD-1800.2000``,
#: ``BD-1800.2000-640``, ``RP-1400.8000-020.80``.
AIRS_CODE = re.compile(r"^[A-Z]{1,2}(?:-\d{4}(?:\.\d{4}(?:-\d{3}(?:\.\d{2})?)?)?)?$")
#: A legacy Open Eligibility code (Ohana): ``101``, ``101-02``, ``103-05-02-01``.
LEGACY_CODE = re.compile(r"^\d{3}(?:-\d{2}){0,3}$")
#: What `normalise` turns into spaces.
_NOT_WORD = re.compile(r"[^a-z0-9]+")
#: Separators between several codes or names in one import field.
_LIST_SEPARATORS = re.compile(r"[;,*|]")

#: Category names too generic to act as implicit synonyms ("it doesn't work", "health").
_GENERIC_NAMES = frozenset(
    {"care", "goods", "money", "work", "emergency", "health", "transit", "more education"}
)


# --------------------------------------------------------------------------- text helpers


def normalise(text: str) -> str:
    """Lower-case, strip accents and apostrophes, ``&`` -> ``and``, other punctuation to spaces."""
    if not text.isascii():  # (ASCII is as NFKD leaves it)
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = text.lower().replace("'", "").replace("&", " and ")
    return " ".join(_NOT_WORD.sub(" ", text).split())


def tokens(text: str) -> tuple[str, ...]:
    """The words of `text` as `normalise` sees them."""
    return tuple(normalise(text).split())


# --------------------------------------------------------------------------- the tree


@dataclass(frozen=True, slots=True)
class Category:
    """One node of a category (or situation) tree."""

    id: str
    slug: str
    name: str
    parent_id: str | None = None
    description: str | None = None
    legacy_codes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Category:
        """Build from one record of ``categories.json`` or ``situations.json``."""
        parent = data.get("parent_id")
        description = data.get("description")
        return cls(
            id=str(data["id"]),
            slug=str(data["slug"]),
            name=str(data["name"]),
            parent_id=str(parent) if parent not in (None, "") else None,
            description=str(description) if description else None,
            legacy_codes=tuple(str(c) for c in data.get("legacy_codes") or ()),  # type: ignore[union-attr]
            aliases=tuple(str(a) for a in data.get("aliases") or ()),  # type: ignore[union-attr]
        )


class CategoryTree:
    """An immutable, validated category tree (every parent exists, ids and slugs unique, acyclic).

    Methods taking an id raise `KeyError` for an unknown id, except `get`.
    """

    def __init__(self, categories: Iterable[Category]) -> None:
        self._by_id: dict[str, Category] = {}
        self._order: dict[str, int] = {}
        self._by_slug: dict[str, Category] = {}
        self._children: dict[str | None, list[Category]] = {}
        for cat in categories:
            if cat.id in self._by_id:
                raise ValueError(f"duplicate category id {cat.id}")
            if cat.slug in self._by_slug:
                raise ValueError(f"duplicate category slug {cat.slug}")
            self._order[cat.id] = len(self._by_id)
            self._by_id[cat.id] = cat
            self._by_slug[cat.slug] = cat
        for cat in self._by_id.values():
            if cat.parent_id is not None and cat.parent_id not in self._by_id:
                raise ValueError(f"category {cat.id}: parent {cat.parent_id} does not exist")
            self._children.setdefault(cat.parent_id, []).append(cat)
        self._depth: dict[str, int] = {}
        for cat in self._by_id.values():
            seen = {cat.id}
            node = cat
            while node.parent_id is not None:
                if node.parent_id in seen:
                    raise ValueError(f"category {cat.id}: cycle through {node.parent_id}")
                seen.add(node.parent_id)
                node = self._by_id[node.parent_id]
            self._depth[cat.id] = len(seen) - 1
        self._by_name: dict[str, list[Category]] = {}
        for cat in self._by_id.values():
            for name in {normalise(cat.name), *(normalise(a) for a in cat.aliases)}:
                self._by_name.setdefault(name, []).append(cat)
        self._legacy: dict[str, str] = {}
        for cat in self._by_id.values():
            for code in cat.legacy_codes:
                if self._legacy.setdefault(code, cat.id) != cat.id:
                    raise ValueError(f"legacy code {code} is mapped twice")

    @classmethod
    def load(cls, path: Path) -> CategoryTree:
        """Read a ``categories.json`` / ``situations.json`` file."""
        records = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(Category.from_dict(r) for r in records)

    # -- container protocol

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Category]:
        return iter(self._by_id.values())

    def __contains__(self, category_id: object) -> bool:
        return category_id in self._by_id

    def __getitem__(self, category_id: str) -> Category:
        return self._by_id[category_id]

    # -- look-ups

    def get(self, category_id: str) -> Category | None:
        """The category with this id, or None."""
        return self._by_id.get(category_id)

    def by_slug(self, slug: str) -> Category | None:
        """The category with this slug (e.g. ``"food-pantry"``), or None."""
        return self._by_slug.get(slug.strip().lower())

    def by_name(self, name: str) -> list[Category]:
        """Categories whose name or alias equals `name` once normalised, in tree order."""
        return list(self._by_name.get(normalise(name), ()))

    def legacy(self, code: str) -> str | None:
        """The category id for a legacy Open Eligibility code, falling back to its parent code.

        ``"101-02-09"`` (unknown) -> the id of ``"101-02"``; returns None if nothing matches.
        """
        code = code.strip()
        while code:
            if code in self._legacy:
                return self._legacy[code]
            code = code.rpartition("-")[0]
        return None

    # -- structure

    def roots(self) -> list[Category]:
        """The top-level categories, in tree order."""
        return list(self._children.get(None, ()))

    def children(self, category_id: str) -> list[Category]:
        """Direct children, in tree order."""
        self._by_id[category_id]
        return list(self._children.get(category_id, ()))

    def descendants(self, category_id: str) -> set[str]:
        """Ids of the category and everything below it."""
        self._by_id[category_id]
        out: set[str] = set()
        stack = [category_id]
        while stack:
            current = stack.pop()
            out.add(current)
            stack.extend(c.id for c in self._children.get(current, ()))
        return out

    def ancestors(self, category_id: str) -> list[Category]:
        """The categories above this one, root first (empty for a root)."""
        out: list[Category] = []
        node = self._by_id[category_id]
        while node.parent_id is not None:
            node = self._by_id[node.parent_id]
            out.append(node)
        return out[::-1]

    def path(self, category_id: str) -> list[Category]:
        """Ancestors then the category itself: a breadcrumb."""
        return [*self.ancestors(category_id), self._by_id[category_id]]

    def depth(self, category_id: str) -> int:
        """0 for a root."""
        return self._depth[category_id]

    def equivalents(self, category_id: str) -> set[str]:
        """Ids of categories with the same name (the category's twins), itself included."""
        cat = self._by_id[category_id]
        return {c.id for c in self._by_name[normalise(cat.name)] if c.name == cat.name}

    def canonical(self, category_id: str) -> str:
        """The preferred twin: the shallowest same-name category, first in tree order.

        It is the one holding the bare slug (``emergency-shelter`` is 1121).
        """
        return min(self.equivalents(category_id), key=lambda i: (self._depth[i], self._order[i]))

    def search_scope(self, category_id: str) -> set[str]:
        """Ids a search filtered on this category should accept.

        The descendants of the category and of each of its same-name twins, so that a service
        filed under Housing > Emergency Shelter (1135) is found when filtering on Emergency >
        Emergency Shelter (1121) and vice versa.
        """
        out: set[str] = set()
        for twin in self.equivalents(category_id):
            out |= self.descendants(twin)
        return out

    def search_names(self, prefix: str, limit: int = 10, distinct: bool = True) -> list[Category]:
        """Type-ahead: categories whose name or alias starts with `prefix` or has a word that does.

        Whole-name matches rank before word matches, then shallower before deeper. With
        `distinct`, same-name twins collapse onto the canonical one.
        """
        key = normalise(prefix)
        if not key or limit <= 0:
            return []
        ranked: list[tuple[int, int, int, Category]] = []
        for cat in self._by_id.values():
            names = [normalise(cat.name), *(normalise(a) for a in cat.aliases)]
            if any(n.startswith(key) for n in names):
                rank = 0
            elif any(f" {key}" in f" {n}" for n in names):
                rank = 1
            else:
                continue
            ranked.append((rank, self._depth[cat.id], self._order[cat.id], cat))
        ranked.sort(key=lambda r: r[:3])
        out: list[Category] = []
        seen: set[str] = set()
        for *_, cat in ranked:
            if distinct:
                canonical = self.canonical(cat.id)
                if canonical in seen:
                    continue
                seen.add(canonical)
                cat = self._by_id[canonical]
            out.append(cat)
            if len(out) >= limit:
                break
        return out


# --------------------------------------------------------------------------- AIRS prefixes


def airs_lineage(code: str) -> list[str]:
    """A code and its ancestors, longest first: ``RP-1400.8000-020`` -> ``RP-1400.8000``,
    ``RP-1400``, ``RP``, ``R``. Empty if `code` is not an AIRS code."""
    code = code.strip().upper().replace(" ", "")
    if not AIRS_CODE.match(code):
        return []
    out = [code]
    while len(code) > 2:
        code = code[: max(code.rfind("."), code.rfind("-"))]
        out.append(code)
    if len(code) == 2:
        out.append(code[0])
    return out


class PrefixMap:
    """AIRS code prefix -> ids, looked up by longest matching prefix on code boundaries."""

    def __init__(self, rows: Iterable[tuple[str, str]]) -> None:
        self._map: dict[str, tuple[str, ...]] = {}
        for prefix, target in rows:
            prefix = prefix.strip().upper()
            if not AIRS_CODE.match(prefix):
                raise ValueError(f"not an AIRS code prefix: {prefix!r}")
            ids = self._map.get(prefix, ())
            if target not in ids:
                self._map[prefix] = (*ids, target.strip())

    @classmethod
    def load(cls, path: Path) -> PrefixMap:
        """Read a CSV whose first column is the prefix and second the target id."""
        with Path(path).open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            return cls((row[0], row[1]) for row in reader if row and row[0].strip())

    def __len__(self) -> int:
        return len(self._map)

    def items(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        return iter(self._map.items())

    def match(self, code: str) -> tuple[str, tuple[str, ...]] | None:
        """(the longest prefix of `code` in the map, its ids), or None."""
        for candidate in airs_lineage(code):
            if candidate in self._map:
                return candidate, self._map[candidate]
        return None

    def lookup(self, code: str) -> tuple[str, ...]:
        """The ids of the longest matching prefix; empty if none matches."""
        found = self.match(code)
        return found[1] if found else ()


# --------------------------------------------------------------------------- synonyms


class SynonymMatch(NamedTuple):
    """A synonym phrase found in a query and the category ids it stands for."""

    phrase: str
    category_ids: tuple[str, ...]


class SynonymRules(NamedTuple):
    """Everything ``synonyms.txt`` says, as `parse_synonym_rules` reads it."""

    entries: list[tuple[str, tuple[str, ...]]]  # phrase => ids, both kinds of phrase
    describing: list[str]  # phrases (``~>``) that say who the client is, not what they need
    combinations: list[tuple[tuple[str, ...], tuple[str, ...]]]  # (ids read together) => ids


#: Words a phrase may have or lack in a query and still match ("sleeping in a car", "sleeping
#: in my car", "kept her deposit"): articles and possessives, nothing that carries meaning.
FILLER_WORDS = frozenset({"a", "an", "the", "my", "his", "her", "their", "our", "your", "its"})
#: Words that, right before a phrase, say the client is *not* in that situation ("not
#: homeless", "no longer drinking", "isn't suicidal"); a few soft words may stand between.
#: ("no food" and "can't pay rent" name a need, so "no" and "can't" are not among them.)
NEGATIONS = (("not",), ("isnt",), ("arent",), ("wasnt",), ("werent",), ("never",),
             ("no", "longer"), ("doesnt", "need"), ("dont", "need"), ("doesnt", "want"),
             ("dont", "want"), ("refuses",))
_NEGATION_GAP = frozenset({"currently", "really", "actually", "yet", "even", "been", "be",
                           "being", "any", "at", "all", "in", "using"})
_COMBINATION = re.compile(r"^\s*\d+(?:\s*&\s*\d+)+\s*$")


def parse_synonym_rules(text: str) -> SynonymRules:
    """Parse ``synonyms.txt``; ``#`` starts a comment. Three kinds of line:

    * ``phrase => id[, id]``: words that name a need;
    * ``phrase ~> id[, id]``: words that say who the client is ("pregnant", "senior"): they
      stand for their categories when the query names no need, and yield to any that it names;
    * ``id & id => id[, id]``: a query read as both categories (each the main one of some
      phrase) means these more specific ones ("abusive husband" and "a bed tonight": a
      domestic violence shelter).
    """
    rules = SynonymRules([], [], [])
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        arrow = "~>" if "~>" in line else "=>"
        phrase, found, targets = line.partition(arrow)
        ids = tuple(t.strip() for t in targets.split(",") if t.strip())
        if not found or not phrase.strip() or not ids:
            raise ValueError(f"line {lineno}: expected 'phrase => id[, id]': {raw!r}")
        if not all(i.isdigit() for i in ids):
            raise ValueError(f"line {lineno}: ids must be numeric: {raw!r}")
        if _COMBINATION.match(phrase):
            if arrow != "=>":
                raise ValueError(f"line {lineno}: a combination takes '=>': {raw!r}")
            parts = tuple(p.strip() for p in phrase.split("&"))
            rules.combinations.append((parts, ids))
            continue
        if not tokens(phrase):
            raise ValueError(f"line {lineno}: phrase has no words: {raw!r}")
        rules.entries.append((phrase.strip(), ids))
        if arrow == "~>":
            rules.describing.append(phrase.strip())
    return rules


def parse_synonyms(text: str) -> list[tuple[str, tuple[str, ...]]]:
    """The ``phrase => id[, id]`` (and ``~>``) lines of ``synonyms.txt``, in file order."""
    return parse_synonym_rules(text).entries


def _key(phrase: str) -> tuple[str, ...]:
    """The words a phrase is matched on (filler words left out, unless that leaves none)."""
    words = tokens(phrase)
    return tuple(w for w in words if w not in FILLER_WORDS) or words


class Synonyms:
    """Phrase -> category ids, matched on whole words inside free text."""

    def __init__(
        self,
        entries: Iterable[tuple[str, Iterable[str]]],
        describing: Iterable[str] = (),
        combinations: Iterable[tuple[tuple[str, ...], tuple[str, ...]]] = (),
    ) -> None:
        self._index: dict[tuple[str, ...], SynonymMatch] = {}
        for phrase, ids in entries:
            key = _key(phrase)
            if not key:
                continue
            known = self._index.get(key)
            merged = dict.fromkeys([*(known.category_ids if known else ()), *ids])
            self._index[key] = SynonymMatch(known.phrase if known else phrase, tuple(merged))
        self._longest = max((len(k) for k in self._index), default=0)
        self._describing = {_key(p) for p in describing}
        self.combinations = list(combinations)

    @classmethod
    def load(
        cls, path: Path, tree: CategoryTree | None = None, include_names: bool = True
    ) -> Synonyms:
        """Read a synonyms file; with a tree and `include_names`, category names and aliases
        (except a few generic one-word names) become phrases too, unless the file has them."""
        rules = parse_synonym_rules(Path(path).read_text(encoding="utf-8"))
        entries = list(rules.entries)
        if tree is not None and include_names:
            explicit = {_key(p) for p, _ in entries}
            implicit: dict[str, list[str]] = {}
            for cat in tree:
                for name in (cat.name, *cat.aliases):
                    if normalise(name) in _GENERIC_NAMES or _key(name) in explicit:
                        continue
                    implicit.setdefault(name, []).append(cat.id)
            entries += [(name, tuple(ids)) for name, ids in implicit.items()]
        return cls(entries, rules.describing, rules.combinations)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, phrase: object) -> bool:
        return isinstance(phrase, str) and _key(phrase) in self._index

    def lookup(self, phrase: str) -> tuple[str, ...]:
        """The ids for exactly this phrase (normalised), or empty."""
        found = self._index.get(_key(phrase))
        return found.category_ids if found else ()

    def describes_client(self, phrase: str) -> bool:
        """Whether a phrase says who the client is rather than what they need (``~>``)."""
        return _key(phrase) in self._describing

    def expand(self, text: str) -> list[SynonymMatch]:
        """Synonym phrases found in `text`, in text order.

        Matching is on whole words, case- and punctuation-insensitive, and ignores articles
        and possessives ("sleeping in my car" is "sleeping in car"). Overlaps are resolved
        longest match first: in "needs a bed tonight at a shelter" both "bed tonight" and
        "shelter" match, but "food" alone never steals from "food stamps". A phrase right
        after a negation ("not homeless", "no longer drinking") is left out.
        """
        return [match for match, negated in self.expand_with_negations(text) if not negated]

    def expand_with_negations(self, text: str) -> list[tuple[SynonymMatch, bool]]:
        """Like `expand`, with each phrase found and whether a negation stands before it."""
        words = tuple(w for w in tokens(text) if w not in FILLER_WORDS)
        found: list[tuple[int, int]] = []
        for start in range(len(words)):
            for size in range(min(self._longest, len(words) - start), 0, -1):
                if words[start : start + size] in self._index:
                    found.append((start, size))
        found.sort(key=lambda f: (-f[1], f[0]))
        taken = [False] * len(words)
        chosen: list[tuple[int, int]] = []
        for start, size in found:
            if any(taken[start : start + size]):
                continue
            taken[start : start + size] = [True] * size
            chosen.append((start, size))
        return [(self._index[words[s : s + n]], _negated(words, s)) for s, n in sorted(chosen)]

    def category_ids(self, text: str) -> set[str]:
        """All category ids named by synonym phrases in `text`."""
        return {i for match in self.expand(text) for i in match.category_ids}


def _negated(words: tuple[str, ...], start: int) -> bool:
    """Whether a negation ends right before ``words[start]`` (soft words may stand between)."""
    end = start
    while end > 0 and words[end - 1] in _NEGATION_GAP:
        end -= 1
    return any(words[max(0, end - len(n)) : end] == n for n in NEGATIONS)


def read_phrasings(path: Path) -> list[tuple[str, str]]:
    """(phrase, expected category id) rows of ``phrasings.tsv`` (header row skipped)."""
    rows: list[tuple[str, str]] = []
    with Path(path).open(encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\r\n")
            if (
                not line.strip()
                or line.startswith("#")
                or lineno == 1
                and line.startswith("phrase\t")
            ):
                continue
            phrase, tab, cid = line.partition("\t")
            if not tab or not phrase.strip() or not cid.strip():
                raise ValueError(f"{path}:{lineno}: expected 'phrase<TAB>category_id'")
            rows.append((phrase.strip(), cid.strip()))
    return rows


# --------------------------------------------------------------------------- lazy singletons


@cache
def category_tree() -> CategoryTree:
    """The need categories (``data/taxonomy/categories.json``), loaded once."""
    return CategoryTree.load(DATA_DIR / CATEGORIES_FILE)


@cache
def situation_tree() -> CategoryTree:
    """The human situations (``data/taxonomy/situations.json``), loaded once."""
    return CategoryTree.load(DATA_DIR / SITUATIONS_FILE)


@cache
def airs_categories() -> PrefixMap:
    """AIRS prefix -> category ids (``data/taxonomy/airs_to_categories.csv``), loaded once."""
    return PrefixMap.load(DATA_DIR / AIRS_CATEGORIES_FILE)


@cache
def airs_situations() -> PrefixMap:
    """AIRS ``Y`` prefix -> situation ids (``data/taxonomy/airs_to_situations.csv``)."""
    return PrefixMap.load(DATA_DIR / AIRS_SITUATIONS_FILE)


@cache
def synonyms() -> Synonyms:
    """The synonyms (``data/taxonomy/synonyms.txt``) plus category names, loaded once."""
    return Synonyms.load(DATA_DIR / SYNONYMS_FILE, category_tree())


# --------------------------------------------------------------------------- categorize


def _split(codes_or_names: Iterable[str] | str) -> Iterator[str]:
    items = [codes_or_names] if isinstance(codes_or_names, str) else codes_or_names
    for item in items:
        if item is None:
            continue
        for part in _LIST_SEPARATORS.split(str(item)):
            part = part.strip()
            if part:
                yield part


def _resolve(token: str, tree: CategoryTree, prefixes: PrefixMap, legacy: bool = True) -> set[str]:
    if token in tree:
        return {token}
    if legacy and LEGACY_CODE.match(token):
        found = tree.legacy(token)
        if found:
            return {found}
    ids = prefixes.lookup(token)
    if ids:
        return {i for i in ids if i in tree}
    named = tree.by_name(token) or [c for c in [tree.by_slug(token)] if c is not None]
    return {c.id for c in named}


def categorize(
    codes_or_names: Iterable[str] | str,
    tree: CategoryTree | None = None,
    airs: PrefixMap | None = None,
) -> set[str]:
    """Map codes and names from an import onto category ids.

    Each item may be an Open Eligibility v2 id (``"1130"``), a legacy Open Eligibility code
    (``"102-04"``; an unknown sub-code falls back to its parent), an AIRS/211 LA code (longest
    mapped prefix wins: ``"BD-1800.2000-640"``), or an exact category name or slug
    (``"Food Pantry"``, ``"food-pantry"``; a name shared by twins gives all of them). Items may
    hold several values separated by ``,`` ``;`` ``*`` or ``|``. Anything else is ignored.
    """
    tree = tree if tree is not None else category_tree()
    airs = airs if airs is not None else airs_categories()
    out: set[str] = set()
    for token in _split(codes_or_names):
        out |= _resolve(token, tree, airs)
    return out


def situations_for(
    codes_or_names: Iterable[str] | str,
    tree: CategoryTree | None = None,
    airs: PrefixMap | None = None,
) -> set[str]:
    """Map situation ids (``"20010"``), AIRS target-population codes (``"YN-9000"``) and exact
    situation names or slugs (``"Veterans"``) onto situation ids."""
    tree = tree if tree is not None else situation_tree()
    airs = airs if airs is not None else airs_situations()
    out: set[str] = set()
    for token in _split(codes_or_names):
        out |= _resolve(token, tree, airs, legacy=False)
    return out


__all__ = [
    "AIRS_CODE",
    "FILLER_WORDS",
    "NEGATIONS",
    "DATA_DIR",
    "LEGACY_CODE",
    "Category",
    "CategoryTree",
    "PrefixMap",
    "SynonymMatch",
    "SynonymRules",
    "Synonyms",
    "airs_categories",
    "airs_lineage",
    "airs_situations",
    "categorize",
    "category_tree",
    "normalise",
    "parse_synonym_rules",
    "parse_synonyms",
    "read_phrasings",
    "situation_tree",
    "situations_for",
    "synonyms",
    "tokens",
]
