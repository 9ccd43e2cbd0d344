"""Reading the need: categories from the synonyms file and chosen ids, words, and spelling.

"substance use" finds detox and methadone programmes because documents carry their categories'
ancestors as tokens; "rehab" and "can't pay rent" are synonyms of categories; "shleter" is
corrected to a word the index knows ("shelter") because it is one edit away, while "pantry",
which the index knows, is never turned into "party".

Which reading leads: needs read together ("abusive husband" and "a bed tonight": a domestic
violence shelter), then phrases naming a need before words about the client ("WIC" before
"pregnant", "lawyer" before "evicted"), then phrases of more meaningful words, then deeper
categories. "not homeless" and "no longer drinking" are no part of the need at all.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from service.directory.categories import (
    NEGATIONS,
    SynonymMatch,
    category_tree,
    normalise,
    synonyms,
    tokens,
)
from service.errors import BadRequest

STOP_WORDS = frozenset("""
a an and any are as at be by can cant client clients could do does for from get got has have he
her him his i im in is it its me my need needs of on or our she some that the their them they
this to up us want wants was we who with you your near around help find looking somewhere
place places service services someone program programs please today tonight""".split())
_WORD = re.compile(r"[a-z0-9]+")


@dataclass
class Need:
    """How a query's need was understood."""

    category_ids: set[str] = field(default_factory=set)  # from synonyms and chosen ids
    primary_ids: set[str] = field(default_factory=set)  # each phrase's first category, chosen
    chosen_ids: set[str] = field(default_factory=set)  # the `category` parameter only
    phrases: list[str] = field(default_factory=list)  # synonym phrases found in the text
    describing: list[str] = field(default_factory=list)  # those saying who the client is
    words: list[str] = field(default_factory=list)  # content words searched as text
    corrections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.category_ids and not self.words


def understand(q: str | None, category_ids: list[str]) -> Need:
    """Categories and words of a need; unknown category ids are a 400 naming the field."""
    tree = category_tree()
    need = Need()
    for cid in category_ids:
        found = tree.get(cid) or tree.by_slug(cid)
        if found is None:
            raise BadRequest(f"unknown category {cid!r}; see /api/v1/categories",
                             field="category")
        need.chosen_ids |= tree.search_scope(found.id)
    need.category_ids |= need.chosen_ids
    need.primary_ids |= need.chosen_ids
    if q:
        text = normalise(q)
        covered = set()
        matches = ranked_matches(q)
        combined = combined_categories(matches)
        for i, cid in enumerate(combined):
            need.category_ids |= tree.search_scope(cid)
            if i == 0:
                need.primary_ids |= tree.search_scope(cid)
        for rank, match in enumerate(matches):
            need.phrases.append(match.phrase)
            if synonyms().describes_client(match.phrase):
                need.describing.append(match.phrase)
            for i, cid in enumerate(match.category_ids):
                if cid in tree:
                    need.category_ids |= tree.search_scope(cid)
                    if rank == 0 and i == 0 and not combined:
                        need.primary_ids |= tree.search_scope(cid)
            covered.update(normalise(match.phrase).split())
        # A negated phrase ("not homeless") is no part of the need, not even as text.
        for match, negated in synonyms().expand_with_negations(q):
            if negated:
                covered.update(normalise(match.phrase).split())
                covered.update(w for n in NEGATIONS for w in n)
        need.words = [w for w in _WORD.findall(text)
                      if w not in STOP_WORDS and len(w) > 1 and w not in covered]
        if not need.phrases and not need.words:
            need.words = [w for w in _WORD.findall(text)
                          if len(w) > 1 and w not in covered][:8]
    return need


def ranked_matches(q: str) -> list[SynonymMatch]:
    """The synonym phrases found in a need, the most telling first: phrases naming a need
    before those only saying who the client is ("WIC" before "pregnant"), then phrases of
    more words that carry meaning, then the more specific category ("detox" before "food" in
    "needs food and detox")."""
    tree = category_tree()
    found = synonyms()

    def depth(match: SynonymMatch) -> int:
        cid = match.category_ids[0] if match.category_ids else None
        return tree.depth(cid) if cid in tree else 0

    def length(match: SynonymMatch) -> int:  # in words that carry meaning: "a bed for
        return sum(w not in STOP_WORDS for w in tokens(match.phrase)) or 1  # tonight" is 1

    matches = list(found.expand(q))
    order = {id(m): i for i, m in enumerate(matches)}
    return sorted(matches, key=lambda m: (found.describes_client(m.phrase), -length(m),
                                          -depth(m), order[id(m)]))


def combined_categories(matches: list[SynonymMatch]) -> list[str]:
    """The more specific categories that needs read together mean (``a & b => c`` in the
    synonyms file), in file order: each part must be the main category (or a same-name twin
    of it) of a different phrase of the need."""
    tree = category_tree()
    mains = [set().union(*(tree.equivalents(c) for c in m.category_ids[:1] if c in tree))
             for m in matches]
    out: list[str] = []
    for parts, ids in synonyms().combinations:
        used: set[int] = set()
        for part in parts:
            hit = next((i for i, main in enumerate(mains) if part in main and i not in used),
                       None)
            if hit is None:
                break
            used.add(hit)
        else:
            out += [c for c in ids if c in tree and c not in out]
    return out


def ranked_categories(q: str) -> list[str]:
    """The categories a need is read as, best first: what its needs mean together, then each
    phrase's main one, then the rest."""
    matches = ranked_matches(q)
    ranked: list[str] = combined_categories(matches)
    for match in matches:
        for cid in match.category_ids[:1]:
            if cid not in ranked:
                ranked.append(cid)
    for match in matches:
        for cid in match.category_ids[1:]:
            if cid not in ranked:
                ranked.append(cid)
    return ranked


def broaden(need: Need) -> tuple[Need, list[str]] | None:
    """The same need one level up the category tree (None at the top level)."""
    tree = category_tree()
    parents = {tree[c].parent_id for c in need.category_ids if c in tree and tree[c].parent_id}
    parents -= need.category_ids
    if not parents:
        return None
    scope: set[str] = set()
    for parent in parents:
        scope |= tree.search_scope(parent)
    wider = Need(category_ids=scope, chosen_ids=set(), primary_ids=scope, phrases=need.phrases,
                 words=need.words, corrections=dict(need.corrections))
    return wider, sorted(parents)


# --- spelling --------------------------------------------------------------------------------


_local = threading.local()


def _stemmer() -> sqlite3.Connection:
    """A private in-memory FTS5 table per thread, used only to run SQLite's porter stemmer."""
    conn = getattr(_local, "stemmer", None)
    if conn is None:
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61 "
                     "remove_diacritics 2')")
        conn.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
        _local.stemmer = conn
    return conn


@lru_cache(maxsize=50000)
def stem(word: str) -> str:
    """The porter stem the index stores for a word (SQLite's own tokenizer)."""
    conn = _stemmer()
    conn.execute("DELETE FROM t")
    conn.execute("INSERT INTO t VALUES (?)", (word,))
    row = conn.execute("SELECT term FROM v").fetchone()
    return row[0] if row else word


ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def edits1(word: str) -> set[str]:
    """Every string one deletion, transposition, substitution or insertion away."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    transposes = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    replaces = {a + c + b[1:] for a, b in splits if b for c in ALPHABET}
    inserts = {a + c + b for a, b in splits for c in ALPHABET}
    return deletes | transposes | replaces | inserts


def transpositions(word: str) -> set[str]:
    """Strings with two neighbouring letters swapped (the commonest typing slip)."""
    return {word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(len(word) - 1)
            if word[i] != word[i + 1]}


def spelling_variants(word: str, vocabulary: dict[str, int]) -> tuple[str, list[str]]:
    """(the stem to search, other stems to accept) for one query word."""
    stemmed = stem(word)
    if stemmed in vocabulary:
        # A known word: also accept rare transposed spellings of it in listings.
        common = vocabulary[stemmed]
        rare = [t for t in transpositions(stemmed)
                if t in vocabulary and vocabulary[t] * 20 <= common]
        return stemmed, rare
    if len(stemmed) < 4 or stemmed.isdigit():
        return stemmed, []
    candidates = [t for t in edits1(stemmed) if t in vocabulary and t[0] == stemmed[0]]
    candidates.sort(key=lambda t: (-vocabulary[t], t))
    return stemmed, candidates[:3]


def fts_term(term: str) -> str:
    """A term quoted for an FTS5 query."""
    return '"' + term.replace('"', '""') + '"'
