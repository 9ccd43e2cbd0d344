"""Structured eligibility from free text and the HSDS `minimum_age` / `maximum_age` fields.

A 211 record's eligibility is a sentence or a list written by a resource specialist: "Homeless
men 18 years of age and over", "Veterans and their families", "Ps - 5th grade", "DC residents,
low income". `parse_eligibility` turns it into an `Eligibility`: ages, genders, populations,
residency, insurance, documents to bring and an income limit.

A wrong restriction hides a service from someone it serves, so the parser prefers to miss a
restriction rather than invent one. Every age, gender, population and residency finding has a
*kind*:

* ``"restriction"``: only those people are served ("Ages 18+", "Women only", "Must be a
  veteran", "Homeless men 18 and over"). `check_client` reports a client that contradicts one.
* ``"focus"``: the programme is meant for them but the text does not turn others away ("for
  veterans", "priority given to seniors", "women and children", "open to the public").

Documents are things to bring and are never restrictions. The source text is always kept.
Ages are whole years: "under 21" is at most 20, "over 18" is read as 18 and over (the common
meaning, and the reading that hides nobody), "up to 21" and "21 and under" are at most 21, and a
lower bound of 0 (from birth) is no bound.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

RESTRICTION = "restriction"
FOCUS = "focus"

GENDERS: tuple[str, ...] = ("female", "male", "nonbinary", "transgender")

# Population codes and what each means. Age groups (youth, seniors) are kept as populations for
# search, but a restriction by age is expressed with min_age / max_age, never with these two.
POPULATIONS: dict[str, str] = {
    "veterans": "people who served in the armed forces",
    "military": "active-duty service members (and sometimes their families)",
    "youth": "young people, teens and young adults",
    "seniors": "older adults and senior citizens",
    "families": "families and households with children",
    "lgbtq": "lesbian, gay, bisexual, transgender and queer people",
    "survivors_of_domestic_violence": "people who have experienced domestic violence",
    "people_experiencing_homelessness": "people who are homeless now",
    "people_with_disabilities": "people with a physical, sensory, intellectual or other disability",
    "pregnant": "pregnant people and expectant parents",
    "immigrants": "immigrants, refugees and asylees",
    "formerly_incarcerated": "people returning from prison or jail, ex-offenders",
    "people_with_hiv": "people living with HIV/AIDS",
}
AGE_GROUP_POPULATIONS = frozenset({"youth", "seniors"})

INSURANCE: tuple[str, ...] = (
    "medicaid", "medicare", "private", "uninsured", "sliding_scale", "free", "self_pay",
)
DOCUMENTS: tuple[str, ...] = (
    "photo_id", "proof_of_address", "proof_of_income", "social_security_card",
    "birth_certificate", "referral", "immigration_documents", "medical_documentation", "tb_test",
)


@dataclass
class IncomeLimit:
    """An income condition: the source phrase, and a % of the federal poverty level if stated."""

    text: str
    percent_fpl: int | None = None
    amount: float | None = None
    period: str | None = None  # "year" or "month" when `amount` is given

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IncomeLimit:
        """Rebuild from `to_dict()` output."""
        return cls(
            text=data.get("text", ""),
            percent_fpl=data.get("percent_fpl"),
            amount=data.get("amount"),
            period=data.get("period"),
        )


@dataclass
class Eligibility:
    """Who a service is for, parsed from its eligibility text and HSDS age fields."""

    text: str | None = None
    min_age: int | None = None
    max_age: int | None = None
    age_kind: str | None = None
    genders: list[str] = field(default_factory=list)
    gender_kind: str | None = None
    populations: list[str] = field(default_factory=list)
    population_kind: str | None = None
    required_populations: list[str] = field(default_factory=list)
    residency: str | None = None
    residency_kind: str | None = None
    insurance: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    income_limit: IncomeLimit | None = None
    open_to_all: bool = False

    def restrictions(self) -> dict[str, Any]:
        """Only the fields of kind "restriction", e.g. {"min_age": 18, "genders": ["male"]}."""
        out: dict[str, Any] = {}
        if self.age_kind == RESTRICTION:
            if self.min_age is not None:
                out["min_age"] = self.min_age
            if self.max_age is not None:
                out["max_age"] = self.max_age
        if self.gender_kind == RESTRICTION and self.genders:
            out["genders"] = list(self.genders)
        if self.required_populations:
            out["populations"] = list(self.required_populations)
        if self.residency_kind == RESTRICTION and self.residency:
            out["residency"] = self.residency
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (lists and scalars only)."""
        data = asdict(self)
        data["income_limit"] = self.income_limit.to_dict() if self.income_limit else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Eligibility:
        """Rebuild from `to_dict()` output; unknown keys are ignored, missing ones defaulted."""
        income = data.get("income_limit")
        return cls(
            text=data.get("text"),
            min_age=data.get("min_age"),
            max_age=data.get("max_age"),
            age_kind=data.get("age_kind"),
            genders=list(data.get("genders") or []),
            gender_kind=data.get("gender_kind"),
            populations=list(data.get("populations") or []),
            population_kind=data.get("population_kind"),
            required_populations=list(data.get("required_populations") or []),
            residency=data.get("residency"),
            residency_kind=data.get("residency_kind"),
            insurance=list(data.get("insurance") or []),
            documents=list(data.get("documents") or []),
            income_limit=IncomeLimit.from_dict(income) if isinstance(income, dict) else None,
            open_to_all=bool(data.get("open_to_all", False)),
        )


@dataclass(frozen=True)
class Mismatch:
    """One explicit restriction a client profile contradicts."""

    code: str  # "age" | "gender" | "population" | "residency" | "income"
    params: dict[str, Any]
    text: str


# --------------------------------------------------------------------------- normalisation

_MOJIBAKE = {
    "GÇ£": '"', "GÇ¥": '"', "GÇÖ": "'", "GÇÿ": "'", "GÇô": "-", "GÇö": "-", "GÇª": "...",
    "\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u00a0": " ", "\u2022": "*", "\u00bd": " 1/2",
}


def _normalise(text: str) -> str:
    """Undo escaped line breaks and mojibake, keep one space between words and lines apart."""
    out = text.replace("\\r\\n", "\n").replace("\\n", "\n").replace("\\r", "\n")
    out = out.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    for bad, good in _MOJIBAKE.items():
        out = out.replace(bad, good)
    lines = [re.sub(r" {2,}", " ", line).strip() for line in out.split("\n")]
    return "\n".join(line for line in lines if line)


_ABBREVIATIONS = frozenset(
    "dr st mr mrs ms jr sr dept inc co corp ave blvd no vs etc am pm afr incl approx gov "
    "u.s us d.c dc p.o po".split()
)


def _clauses(text: str) -> list[tuple[int, int]]:
    """Spans of the clauses of `text`: lines, bullets, semicolons and sentences."""
    cuts = [0]
    for m in re.finditer(r"\n|;|(?<=\.)\s+(?=[A-Z*\"(])", text):
        if m.group(0).strip() == "" and m.group(0) != "\n":
            before = re.search(r"(\S+)\.$", text[: m.start()])
            word = before.group(1).lower() if before else ""
            if len(word) <= 1 or word in _ABBREVIATIONS:
                continue
        cuts.append(m.end())
    cuts.append(len(text))
    spans = []
    for start, end in zip(cuts, cuts[1:], strict=False):
        while start < end and text[start] in " *-\n;":
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def _clause_of(spans: list[tuple[int, int]], pos: int) -> tuple[int, int]:
    for start, end in spans:
        if start <= pos < end:
            return start, end
    return 0, 0


def _blank_parentheticals_without_digits(low: str) -> str:
    """Replace "(potty trained)" by spaces (same length) so it cannot split an age range."""
    return re.sub(r"\([^()\d]*\)", lambda m: " " * len(m.group(0)), low)


def _in_parentheses(low: str, start: int, end: int) -> str | None:
    """The text of the parenthetical around [start, end), if any."""
    open_at = low.rfind("(", 0, start)
    if open_at == -1 or low.rfind(")", open_at, start) != -1:
        return None
    close_at = low.find(")", end)
    if close_at == -1:
        return None
    return low[open_at + 1 : close_at]


# --------------------------------------------------------------------------- ages

_UNIT = r"(?:years?|yrs?\.?|y/?o\b)"
_AFTER = r"(?:\s*-?\s*olds?\b|\s+of\s+age\b)?"
# A number that starts an age phrase: not inside a word, a phone number, money or an ordinal.
_NUM = r"(?<![\w$#/.:,-])(?P<n>\d{1,3})(?:\s+1/2|\.5)?(?![\d%])(?!\s*(?:st|nd|rd|th)\b)"
_NOT_AGE_AFTER = re.compile(
    r"\s*(?:-\s*)?(?:degrees?|hours?|hrs|days?|minutes?|miles?|streets?|st\b|avenue|ave\b|"
    r"blocks?|percent|dollars|units?|beds?|grades?|am\b|pm\b|a\.m|p\.m|:\d|%|experience|"
    r"degree|program|college|university|course|commitment|lease|period|term|contract|"
    r"in (?:prison|jail|incarceration)|of (?:experience|service|residency|residence))"
)
_DURATION_BEFORE = re.compile(
    r"(?:\bfor|\bwithin|\bpast|\blast|\bin the|\bbeen|\bspent|\bserved)\s*"
    r"(?:at\s+least\s+|over\s+|up\s+to\s+|more\s+than\s+|under\s+)?$"
)
_RANGE = re.compile(
    r"(?P<pre>\b(?:between\s+)?(?:the\s+)?(?:ages?|aged)(?:\s+(?:of|from|between))?\s*:?\s*)?"
    r"(?P<between>\bbetween\s+|\bfrom\s+)?"
    r"(?P<a>\bbirth\b|\bnewborns?\b|\binfants?\b|(?<![\w$#/.:,-])\d{1,3}(?![\d%])"
    r"(?!\s*(?:st|nd|rd|th)\b))(?:\s+1/2|\.5)?"
    r"(?:\s*(?P<aunit>months?|mos?\.?|weeks?|wks?|days?|years?|yrs?\.?)(?:\s+old)?)?"
    r"\s*(?P<conn>-|to\b|through\b|thru\b|and\b)\s*"
    r"(?P<b>\d{1,3})(?:\s+1/2|\.5)?(?![\d%])(?!\s*(?:st|nd|rd|th)\b)"
    r"(?:\s*(?P<bunit>years?|yrs?\.?|y/?o\b|months?|mos?\.?))?(?P<after>" + _AFTER + r")"
)
_MIN_PLUS = re.compile(_NUM + r"\s*(?:" + _UNIT + r"\s*)?(?:old\s*)?(?:\+|plus\b)")
_MIN_AND_OLDER = re.compile(
    r"(?:\b(?:ages?|aged)\s+)?" + _NUM + r"\s*(?P<unit>" + _UNIT + r")?\s*"
    r"(?:old\s*|of\s+age\s*)?(?:and|or|&)\s*(?:older|over\b|above\b|up\b|upwards?\b|beyond\b)"
)
_MIN_AT_LEAST = re.compile(
    r"(?:\bat\s+least|\bminimum(?:\s+age)?\s*(?:of|:|is)?|\bmin\.?\s*age\s*:?|"
    r"\bno\s+younger\s+than|\bnot\s+younger\s+than)\s*(?P<age>(?:the\s+)?age\s+(?:of\s+)?)?"
    + _NUM + r"\s*(?P<unit>" + _UNIT + r")?" + _AFTER
)
_MIN_OVER = re.compile(
    r"\b(?:over|older\s+than|above)\s+(?P<age>(?:the\s+)?age\s+(?:of\s+)?)?"
    + _NUM + r"\s*(?P<unit>" + _UNIT + r")?" + _AFTER
)
_MIN_MUST_BE = re.compile(r"\bmust\s+be\s+" + _NUM + r"\s*(?P<unit>" + _UNIT + r")" + _AFTER)
_MAX_UNDER = re.compile(
    r"\b(?:under|younger\s+than|below|less\s+than)\s+(?P<age>(?:the\s+)?age\s+(?:of\s+)?)?"
    + _NUM + r"\s*(?P<unit>" + _UNIT + r")?" + _AFTER
)
_MAX_AND_UNDER = re.compile(
    r"(?:\b(?:ages?|aged)\s+)?" + _NUM + r"\s*(?:" + _UNIT + r"\s*)?(?:old\s*|of\s+age\s*)?"
    r"(?:and|or|&)\s*(?:under|younger|below|less)\b"
)
_MAX_UP_TO = re.compile(
    r"\b(?:up\s+to|through|thru|no\s+older\s+than)\s+(?P<age>(?:the\s+)?age\s+(?:of\s+)?)?"
    + _NUM + r"\s*(?P<unit>" + _UNIT + r")?" + _AFTER
)
_CONTINUED_RANGE = re.compile(
    r"\s*(?:\([^()]*\)\s*)?(?:,|or\b|and\b)\s*(\d{1,3})\s*-\s*(\d{1,3})(?![\d%])"
)
_WHOLE_AGES = re.compile(r"^\s*(\d{1,3})\s*(?:\+|-\s*(\d{1,3}))\s*$")

_PERSON_NOUNS = (
    r"children|child|kids?|youths?|teens?|teenagers?|adolescents?|adults?|individuals?|persons?|"
    r"people|men|women|man|woman|boys?|girls?|seniors?|babies|baby|infants?|toddlers?|minors?|"
    r"juveniles?|dependents?|clients?|participants?|applicants?|patients?"
)
_CHILD_NOUNS = re.compile(
    r"\b(?:children|child|kids?|babies|baby|infants?|toddlers?|newborns?|minors?|dependents?|"
    r"grandchildren|sons|daughters)\b"
)
_PARENT_CONTEXT = re.compile(
    r"\b(?:parents?|mothers?|fathers?|famil(?:y|ies)|women|woman|households?|guardians?|"
    r"pregnant|caregivers?|grandparents?)\b"
)
_CHILD_MENTION = re.compile(
    r"(?<!\bno )(?<!\bwithout )\b(?:children|child|kids|minors|infants|babies|newborns|"
    r"juveniles)\b"
)
_ADULT_MENTION = re.compile(
    r"(?<!\bwithout )(?<!\bwithout their )(?<!\bwithout thier )(?<!\bno )"
    r"\b(?:parents?|mothers?|fathers?|famil(?:y|ies)|women|woman|men|adults|guardians?|"
    r"pregnant|caregivers?|grandparents?)\b(?!\s+(?:and\s+family\s+)?services)"
)
_OR_ALTERNATIVE = re.compile(
    r"\s*,?\s*or\s+(?!older|younger|over|under|above|below|more|less|\d)"
)
_AGE_SOFTENERS = re.compile(
    r"\bpriority\b|\bprefer|\bprimarily\b|\bparticularly\b|\bespecially\b|\bgenerally\b|"
    r"\btypically\b|\busually\b|\bmostly\b|\bmost programs\b|\bcase[- ]by[- ]case\b|\bexception|"
    r"\bmay be (?:considered|accepted|eligible|served)\b|\bcan be accepted\b|\balso accept|"
    r"\balso serve|\bconsent\b|\baccompanied\b|\bvar(?:y|ies)\b|\bdepend(?:s|ing)? on\b|"
    r"\bsome programs\b|\bfor specific\b|\bvolunteer|\ball others\b|\bothers (?:must|may|are)\b|"
    r"\bregardless of (?:\w+ )?age\b|\ball ages\b|\bany age\b|\baffected by\b|\bcaregivers?\b|"
    r"\bloved ones?\b|\bfamily members of\b|\btheir famil|\bfriends\b"
)
_OPENNESS = re.compile(
    r"\bopen to (?:the )?(?:general )?public\b|\bopen to all(?=\s*(?:[,.;!:]|$|and\b))|"
    r"\bopen to everyone\b|\ball (?:are )?welcome|\bno restrictions?\b|\bno requirements?\b|"
    r"\bavailable to (?:the )?general public\b|\banyone (?:can|may)\b|"
    r"\bopen to anyone(?=\s*[,.;!]|$)"
)
_MUST = re.compile(r"\bmust\b|\brequired\b|\bonly\b|\brestricted\b|\blimited to\b")


@dataclass
class _Age:
    lo: int | None
    hi: int | None
    start: int
    end: int
    kind: str = RESTRICTION
    dropped: bool = False


def _floor_age(value: str, unit: str | None) -> int:
    number = int(value)
    if unit and unit.startswith(("month", "mo")):
        return number // 12
    if unit and unit.startswith(("week", "wk", "day")):
        return 0
    return number


def _person_before(low: str, clause_start: int, start: int) -> str | None:
    """The last person noun within a few words before `start` in the same clause."""
    window = low[max(clause_start, start - 45) : start]
    found = re.findall(r"\b(" + _PERSON_NOUNS + r")\b", window)
    return found[-1] if found else None


def _find_ages(low: str, spans: list[tuple[int, int]]) -> list[_Age]:
    """Every age phrase in `low` (lower-cased, normalised), in text order."""
    text = _blank_parentheticals_without_digits(low)
    taken: list[tuple[int, int]] = []
    ages: list[_Age] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def ok_after(end: int) -> bool:
        return not _NOT_AGE_AFTER.match(text, end)

    def ok_before(start: int) -> bool:
        return not _DURATION_BEFORE.search(text[max(0, start - 20) : start])

    def add(lo: int | None, hi: int | None, start: int, end: int) -> None:
        if lo is not None and hi is not None and lo > hi:
            return
        if (lo is not None and lo > 120) or (hi is not None and hi > 120):
            return
        taken.append((start, end))
        ages.append(_Age(lo, hi, start, end))
        cont = _CONTINUED_RANGE.match(text, end)
        if cont and ok_after(cont.end()):
            a, b = int(cont.group(1)), int(cont.group(2))
            if a <= b <= 120:
                taken.append((cont.start(1), cont.end()))
                ages.append(_Age(a, b, cont.start(1), cont.end()))

    whole = _WHOLE_AGES.match(text)
    if whole:
        lo = int(whole.group(1))
        hi = int(whole.group(2)) if whole.group(2) else None
        add(lo, hi, whole.start(1), whole.end())
        return ages

    for m in _RANGE.finditer(text):
        a, b = m.group("a"), m.group("b")
        start = m.start("pre") if m.group("pre") else m.start("a")
        if not free(start, m.end()) or not ok_after(m.end()) or not ok_before(start):
            continue
        pre = bool(m.group("pre"))
        if m.group("conn") == "and" and not (m.group("between") or pre):
            continue
        bunit = m.group("bunit")
        tail = text[m.end() :]
        if bunit == "year" and not m.group("after") and not re.match(r"\s*(?:or|and)\b", tail):
            continue  # "a 2 - 4 year degree"
        has_unit = bool(bunit or m.group("after") or m.group("aunit"))
        word_a = not a[0].isdigit()
        if not (pre or has_unit):
            if word_a:
                continue
            clause_start = _clause_of(spans, m.start())[0]
            gap = text[clause_start : m.start("a")]
            if not re.search(r"\b(?:" + _PERSON_NOUNS + r")\W*(?:between\s+)?$", gap):
                continue  # "5-14" alone may be grades, times or counts
        lo = 0 if word_a else _floor_age(a, m.group("aunit"))
        hi: int | None = _floor_age(b, bunit)
        if re.match(r"\s*(?:and|or)\s+(?:older|over|up)\b", tail):
            hi = None  # "9-18 years old and older"
        add(lo, hi, start, m.end())

    singles: list[tuple[re.Pattern[str], str]] = [
        (_MIN_PLUS, "min"),
        (_MIN_AND_OLDER, "min"),
        (_MAX_AND_UNDER, "max"),
        (_MIN_AT_LEAST, "min_ctx"),
        (_MIN_OVER, "min_ctx"),
        (_MIN_MUST_BE, "min"),
        (_MAX_UNDER, "below"),
        (_MAX_UP_TO, "max_ctx"),
    ]
    for pattern, how in singles:
        for m in pattern.finditer(text):
            if not free(m.start(), m.end()) or not ok_after(m.end()) or not ok_before(m.start()):
                continue
            groups = pattern.groupindex
            unit = m.group("unit") if "unit" in groups else None
            has_age_word = "age" in groups and bool(m.group("age"))
            has_unit = bool(unit) or bool(re.search(r"(?:olds?|of\s+age)\s*$", m.group(0)))
            n = int(m.group("n"))
            if (
                unit
                and re.fullmatch(r"(?:year|yr\.?)", unit)
                and not re.search(r"(?:old|of\s+age)\s*$", m.group(0))
                and how not in ("min", "max")
            ):
                continue  # "a minimum of 1 year experience" is a duration
            if how in ("min_ctx", "max_ctx") and not (has_age_word or has_unit):
                continue
            if how == "below" and not (has_age_word or has_unit):
                clause_start = _clause_of(spans, m.start())[0]
                before = text[max(clause_start, m.start() - 25) : m.start()]
                if not re.search(r"\b(?:" + _PERSON_NOUNS + r")\W*$", before):
                    continue  # "income below 150" is not an age
            if how.startswith("min"):
                add(n, None, m.start(), m.end())
            elif how == "below":
                add(None, n - 1, m.start(), m.end())
            else:
                add(None, n, m.start(), m.end())
    ages.sort(key=lambda a: a.start)
    return ages


def _parse_ages(
    low: str, spans: list[tuple[int, int]], ages: list[_Age]
) -> tuple[int | None, int | None, str | None]:
    """(min_age, max_age, kind) from the age phrases found; marks each phrase's own kind."""
    if not ages:
        return None, None, None
    parent_context = bool(_PARENT_CONTEXT.search(low))
    for age in ages:
        clause_start = _clause_of(spans, age.start)[0]
        noun = _person_before(low, clause_start, age.start)
        before = low[max(clause_start, age.start - 40) : age.start]
        if re.search(r"\bwith\s+(?:\w+\s+){0,3}(?:children|child|kids|dependents)\W*$", before):
            age.dropped = True  # the client's children, not the client
        elif re.search(r"\bat\s+least\s+one\b|\b(?:households?|famil(?:y|ies))\s+with\b", before):
            age.dropped = True  # a household member's age, not the client's
        elif noun and _CHILD_NOUNS.fullmatch(noun) and parent_context:
            age.dropped = True
        paren = _in_parentheses(low, age.start, age.end)
        if paren is not None and not re.search(r"\bmust\b|\bonly\b", paren):
            age.kind = FOCUS
        if _OR_ALTERNATIVE.match(low, age.end):
            age.kind = FOCUS  # "children 12-18 years old or a first time offender"
    kept = [a for a in ages if not a.dropped]
    if not kept:
        return None, None, None
    lo: int | None = min(a.lo or 0 for a in kept)
    hi: int | None = None if any(a.hi is None for a in kept) else max(a.hi or 0 for a in kept)
    if lo == 0:
        lo = None
    if lo is None and hi is None:
        return None, None, None
    kind = RESTRICTION if any(a.kind == RESTRICTION for a in kept) else FOCUS
    if kind == RESTRICTION and _AGE_SOFTENERS.search(low):
        kind = FOCUS
    if kind == RESTRICTION and _OPENNESS.search(low):
        must_clause = any(
            _MUST.search(low[slice(*_clause_of(spans, a.start))])
            for a in kept
            if a.kind == RESTRICTION
        )
        if not must_clause:
            kind = FOCUS
    if kind == RESTRICTION and lo is not None and lo >= 18 and _CHILD_MENTION.search(low):
        kind = FOCUS  # children are served too
    if kind == RESTRICTION and hi is not None and hi <= 18 and _ADULT_MENTION.search(low):
        kind = FOCUS  # parents, families or pregnant women are served too
    return lo, hi, kind


_AGE_WORDS: list[tuple[re.Pattern[str], int | None, int | None]] = [
    (re.compile(r"\b(?:senior citizens?|seniors?|elderly|older adults?)\b"), 60, None),
    (re.compile(r"\b(?:young adults?)\b"), 18, 25),
    (re.compile(r"(?<!young )\badults?\b(?! (?:children|child))"), 18, None),
    (re.compile(r"\b(?:teens?|teenagers?|adolescents?)\b"), 12, 19),
    (re.compile(r"\byouths?\b"), None, 24),
    (re.compile(r"\b(?:children|child|kids?|juveniles?|minors?)\b"), None, 17),
    (re.compile(r"\b(?:infants?|babies|baby|toddlers?|newborns?)\b"), None, 3),
]


def _age_words(low: str) -> tuple[int | None, int | None]:
    """A focus age range from age words alone ("adults", "children"), or (None, None)."""
    ranges = [(lo, hi) for rx, lo, hi in _AGE_WORDS if rx.search(low)]
    if not ranges or re.search(r"\b(?:individuals|persons|people|families|anyone|everyone)\b", low):
        return None, None
    lo = min(r[0] or 0 for r in ranges)
    hi = None if any(r[1] is None for r in ranges) else max(r[1] or 0 for r in ranges)
    return (lo or None), hi


# --------------------------------------------------------------------------- gender

_FEMALE = re.compile(r"\b(?:women|woman|females?|girls?|ladies|lady)\b(?!'s)(?!\s+scouts?\b)")
_MALE = re.compile(r"\b(?:men|man|males?|boys?|gentlemen)\b(?!'s)(?!\s+scouts?\b)")
_FEMALE_WEAK = re.compile(
    r"\b(?:mothers?|moms?|wives|wife|daughters?|sisters?|grandmothers?|pregnant)\b"
)
_MALE_WEAK = re.compile(r"\b(?:fathers?|dads?|husbands?|sons|brothers?|grandfathers?)\b")
_TRANS = re.compile(r"\btrans(?:gender)?\b")
_NONBINARY = re.compile(r"\bnon-?binary\b|\bgender[- ]?(?:non-?conforming|queer|fluid|expansive)\b")
_GENDER_BLOCKERS = re.compile(
    r"\b(?:children|child|kids|youths?|teens|teenagers|adolescents|minors|infants|babies|"
    r"newborns|toddlers|families|family|parents|couples|households?|individuals|persons|"
    r"people|anyone|everyone|adults|students|members|caregivers|seniors|dependents|public)\b"
)
_GENDER_WORD = r"(?:female|male|women|men|girls|boys|woman|man)"
_GENDER_EXPLICIT = re.compile(
    r"\bmust\s+be\s+(?:a\s+)?(?P<g1>female|male|woman|man|women|men)\b|"
    r"\b(?P<g2>women|men|females|males|girls|boys)\s+only\b|"
    r"\bonly\s+(?:for\s+|to\s+)?(?P<g3>women|men|females|males|girls|boys)\b"
)
_GENDER_OPEN = re.compile(r"\bregardless of (?:\w+,? )*?(?:gender|sex)\b|\ball genders\b")


def _sex_of(word: str) -> str:
    return "male" if re.fullmatch(r"men|man|males?|boys?|gentlemen", word) else "female"


def _parse_gender(low: str, minors: bool = False) -> tuple[list[str], str | None, int]:
    """(genders, kind, end of the first restricting gender word or -1).

    `minors` says the text states an age range for children, who may be of any sex.
    """
    if _GENDER_OPEN.search(low):
        return [], None, -1
    female = list(_FEMALE.finditer(low))
    male = list(_MALE.finditer(low))
    female_weak = bool(_FEMALE_WEAK.search(low))
    male_weak = bool(_MALE_WEAK.search(low))
    extra = (["transgender"] if _TRANS.search(low) else []) + (
        ["nonbinary"] if _NONBINARY.search(low) else []
    )
    has_female = bool(female) or female_weak
    has_male = bool(male) or male_weak
    if has_female and has_male:
        return extra, (FOCUS if extra else None), -1
    strong = female or male
    if not strong:
        if female_weak or male_weak:
            return ["female" if female_weak else "male"] + extra, FOCUS, -1
        return extra, (FOCUS if extra else None), -1
    sex = _sex_of(strong[0].group(0))
    genders = [sex] + extra
    explicit = _GENDER_EXPLICIT.search(low)
    if explicit:
        return genders, RESTRICTION, explicit.end()
    if _OPENNESS.search(low):
        return genders, FOCUS, -1
    if minors and any(re.fullmatch(r"wom[ae]n|m[ae]n|ladies|lady", m.group(0)) for m in strong):
        return genders, FOCUS, -1  # "ages 0-3; pregnant women": the children are not women
    for m in _GENDER_BLOCKERS.finditer(low):
        before = low[max(0, m.start() - 12) : m.start()]
        if re.search(r"\b" + _GENDER_WORD + r"\s+$", before):
            continue  # "female youth", "male adolescents": the gender narrows the group
        if re.search(r"\b(?:no|without|not)\s+$", before):
            continue
        return genders, FOCUS, -1
    return genders, RESTRICTION, strong[0].end()


# --------------------------------------------------------------------------- populations

_POPULATION_PATTERNS: dict[str, re.Pattern[str]] = {
    "veterans": re.compile(r"(?<!non-)\bveterans?\b(?!\s+(?:affairs|administration))|\bvets\b"),
    "military": re.compile(
        r"\bactive[- ]duty\b|\bservice ?members?\b|"
        r"(?<!served in the )(?<!in the )\bmilitary\b(?!\s+(?:survivors?|base|bases))"
    ),
    "youth": re.compile(
        r"\b(?:youths?|teens?|teenagers?|adolescents?|young adults?|juveniles?|young people)\b"
    ),
    "seniors": re.compile(r"\b(?:seniors?|senior citizens?|elderly|older adults?)\b"),
    "families": re.compile(
        r"\bfamil(?:y|ies)\b(?!\s+(?:home|law|resource|services?|court|planning|medicine|"
        r"practice|dwelling|flat|risk|matter))"
    ),
    "lgbtq": re.compile(r"\b(?:lgbt\w*|glbt\w*|gay|lesbians?|bisexual|queer|transgender)\b"),
    "survivors_of_domestic_violence": re.compile(
        r"\bdomestic (?:violence|abuse)\b|\bintimate partner violence\b|\bbattered\b|"
        r"\bdating violence\b"
    ),
    "people_experiencing_homelessness": re.compile(
        r"\bhomeless(?:ness)?\b(?!\s+(?:trust|prevention|coalition|services? (?:network|agency)))|"
        r"\bunhoused\b|\bwithout (?:a )?homes?\b|\bunsheltered\b|\bliving on the streets?\b"
    ),
    "people_with_disabilities": re.compile(
        r"\bdisabled\b|\bdisable\b|\bdisabilit(?:y|ies)\b|\bhandicap\w*|\bblind\b|"
        r"\bvisually impaired\b|\bvisual impairment\b|\bdeaf\b|\bhard of hearing\b|"
        r"\bhearing impaired\b|\bmentally (?:retarded|challenged)\b|\bmental retardation\b|"
        r"\bspecial needs\b|\bwheelchair users?\b"
    ),
    "pregnant": re.compile(
        r"(?<!potentially )(?<!possibly )\bpregnan(?:t|cy)\b|\bexpectant\b|\bexpecting\b|"
        r"\bprenatal\b"
    ),
    "immigrants": re.compile(
        r"\bimmigrants?\b|\brefugees?\b|\basylees?\b|\basylum\b|\bforeign[- ]born\b|"
        r"\bentrants?\b|\bnewcomers\b"
    ),
    "formerly_incarcerated": re.compile(
        r"\bex-?offenders?\b|\bex-?felons?\b|\bformerly incarcerated\b|\breturning citizens\b|"
        r"\bre-?entry\b|\breleased from (?:prison|jail|incarceration)\b|\bparolees?\b"
    ),
    "people_with_hiv": re.compile(
        r"\bhiv\b(?!\s*[- ]?(?:test|testing|prevention|education|awareness|negative))|"
        r"\b(?:with|diagnosed with|living with) aids\b|\baids (?:patients|clients)\b"
    ),
}
# A mention in one of these phrases is not membership: the past, a risk, a document, an org.
_NOT_MEMBERSHIP_BEFORE = re.compile(
    r"(?:history of|at risk of|at-risk of|risk of|formerly|previously|proof of|documentation of|"
    r"with or without|prevent|preventing|prevention of|becoming|non-|agency for|network on|"
    r"verification of|letter of|or without)\s*(?:\w+\s+){0,1}$"
)
_POPULATION_SOFTENERS = re.compile(
    r"\btheir famil|\bthier famil|\bfamil(?:y|ies) of\b|\baffected by\b|\bcaregivers?\b|"
    r"\bloved ones?\b|\bfriends\b|\bfamily members\b|\balso (?:eligible|accept|serve)|"
    r"\bas well as\b|\bpriority\b|\bprefer|\bprimarily\b|\bespecially\b|\bparticularly\b|"
    r"\bregardless of\b|\bat risk\b|\bat-risk\b"
)
_FPL_PHRASE = re.compile(
    r"\s*(?:at or )?(?:below |under )?\d{2,3}\s*%[^,;.]*?\b(?:poverty|fpl)\b"
    r"(?:\s+(?:level|guidelines?|line))?"
)
_WINDOW_END = re.compile(r"[,;:.\n(]")
_OR = re.compile(r"\bor\b|/")
_OR_OK = re.compile(
    r"\bor\s+(?:older|over|above|younger|under|below|more|less|equal)\b|"
    r"\b(?:and|or)/or\b(?=\s+(?:older|younger))"
)


@dataclass
class _Mention:
    code: str
    start: int
    end: int


def _population_mentions(low: str, original: str) -> list[_Mention]:
    mentions = []
    for code, rx in _POPULATION_PATTERNS.items():
        for m in rx.finditer(low):
            if _NOT_MEMBERSHIP_BEFORE.search(low[max(0, m.start() - 40) : m.start()]):
                continue
            # A word inside a capitalised organisation name ("Homeless Trust", "Agency for
            # Persons with Disabilities") is a name, not a population.
            tail = original[m.end() : m.end() + 30]
            if re.match(r"\s+(?:Trust|Agency|Network|Coalition|Council|Center|Alliance|"
                        r"Foundation|Administration|Office|Affairs|Act)\b", tail):
                continue
            mentions.append(_Mention(code, m.start(), m.end()))
    mentions.sort(key=lambda x: x.start)
    return mentions


def _or_near(low: str, start: int, end: int) -> bool:
    """True if an "or" sits in low[start:end] (ignoring "or older" and the like)."""
    segment = _OR_OK.sub(" ", low[start:end])
    return bool(_OR.search(segment))


def _followed_by_or(low: str, end: int) -> bool:
    return bool(re.match(r"\s*(?:,\s*)?(?:or\b|and/or\b|/)", low[end:]))


def _required_populations(
    low: str,
    spans: list[tuple[int, int]],
    mentions: list[_Mention],
    ages: list[_Age],
    age_kind: str | None,
    gender_end: int,
) -> set[str]:
    """Population codes every client must belong to (the explicit, unambiguous ones)."""
    if not mentions or _POPULATION_SOFTENERS.search(low) or _OPENNESS.search(low):
        return set()
    required: set[str] = set()

    def take(m: _Mention) -> None:
        if m.code not in AGE_GROUP_POPULATIONS:
            required.add(m.code)

    # 1. "must be a veteran", "must have a developmental disability", "required: ..."
    for marker in re.finditer(r"\bmust\b(?:\s+(?:be|have|meet|show))?|\brequired to\b", low):
        stop = _WINDOW_END.search(low, marker.end())
        end = stop.start() if stop else len(low)
        for m in mentions:
            if marker.end() <= m.start and m.end <= end:
                if _or_near(low, marker.end(), m.start) or _followed_by_or(low, m.end):
                    continue
                take(m)
    # 2. "families only", "only for veterans", "restricted to ..."
    for marker in re.finditer(r"\bonly\b", low):
        stop = max((low.rfind(c, 0, marker.start()) for c in ",;:.\n("), default=-1)
        start = stop + 1
        for m in mentions:
            inside = start <= m.start and m.end <= marker.start()
            if inside and not _or_near(low, start, marker.start()):
                take(m)
    for marker in re.finditer(
        r"(?<!not )\b(?:only|restricted|limited|exclusively)\s+(?:to|for)\b", low
    ):
        stop = _WINDOW_END.search(low, marker.end())
        end = stop.start() if stop else len(low)
        for m in mentions:
            if marker.end() <= m.start and m.end <= end and not _or_near(low, marker.end(), end):
                take(m)
    # 3. The group a restriction is stated for: "Homeless men 18 and over", "Homeless males".
    lead_ends = []
    if age_kind == RESTRICTION:
        for age in ages:
            if age.kind == RESTRICTION and not age.dropped:
                clause_start = _clause_of(spans, age.start)[0]
                if len(low[clause_start : age.start].split()) <= 6:
                    lead_ends.append((clause_start, age.start))
                    # "... 18 years or older with a developmental disability"
                    with_m = re.match(r"\s*with\s+(?:an?\s+)?", low[age.end :])
                    if with_m:
                        stop = _WINDOW_END.search(low, age.end + with_m.end())
                        end = stop.start() if stop else len(low)
                        lead_ends.append((age.end, end))
                break
    if gender_end >= 0:
        clause_start = _clause_of(spans, max(gender_end - 1, 0))[0]
        if len(low[clause_start:gender_end].split()) <= 5:
            lead_ends.append((clause_start, gender_end))
    for start, end in lead_ends:
        if _or_near(low, start, end):
            continue
        for m in mentions:
            if start <= m.start and m.end <= end and not _followed_by_or(low, m.end):
                take(m)
    # 4. The whole text is one short noun phrase naming the group: "Homeless adults",
    #    "Survivors of domestic violence", "Persons living with HIV/AIDS".
    #    An income condition does not change the group: "Families 200% below the poverty level".
    offset = len(low) - len(low.lstrip())
    whole = _FPL_PHRASE.sub("", low.strip().rstrip(".")).strip()
    if (
        len(whole.split()) <= 6
        and not re.search(r"[,;:()\n*]|\bor\b|\btheir\b|\bfor\b|\bserving\b|\bprogram", whole)
        and not re.search(r"\d", whole)
    ):
        conjuncts = re.split(r"\s+(?:and|&)\s+", whole)
        for m in mentions:
            if len(conjuncts) == 1:
                take(m)
                continue
            first = conjuncts[0]
            # A modifier opening the phrase ("homeless individuals and families") applies to
            # bare nouns joined to it; "expectant parents and parents of newborns" has two
            # groups, and a group named in one conjunct only is an alternative.
            opens = m.start == offset and m.end - offset < len(first)
            bare = all(len(c.split()) == 1 for c in conjuncts[1:])
            if opens and bare:
                take(m)
            elif all(_POPULATION_PATTERNS[m.code].search(c) for c in conjuncts):
                take(m)
    return required


# --------------------------------------------------------------------------- residency

_CAP = r"[A-Z](?:[\w'&-]|\.(?=\w))*"
_PLACE = (
    r"(?P<place>(?:the +)?(?:" + _CAP + r"|[Ww]ard +\d+)"
    r"(?: +(?:of|and|or|&|de|la|del|\d+|[Cc]ounty|[Cc]ounties|[Cc]ity|[Ww]ard +\d+|"
    + _CAP + r"))*)"
)
_PLACE_MORE = re.compile(
    r"(?:, *| +and +| +or +|, +and +|, +or +)(?:the +)?(?:" + _CAP + r")(?: +(?:of|de|la|"
    r"[Cc]ounty|[Cc]ounties|[Cc]ity|" + _CAP + r"))*"
)
_RESIDENCY_PATTERNS = [
    re.compile(r"(?i:\bresidents?\s+of\s+)" + _PLACE),
    re.compile(r"(?i:\b(?:resid(?:e|es|ing)|live|lives|living)\s+(?:with)?in\s+)" + _PLACE),
    re.compile(r"(?<![-\w])" + _PLACE + r"(?i:\s+(?:residents?|residency)\b)"),
    re.compile(
        r"(?i:\b(?:live|lives|living|reside|residing)\s+in\s+)(?P<place>zip codes?[\d ,or]+)"
    ),
]
_GENERIC_PLACE_WORDS = frozenset(
    "the all area local current prospective potential qualifying "
    "adult low income low-income homeless any our".split()
)
_PLACE_LEAD_WORDS = frozenset(
    "the all local current prospective potential qualifying eligible adult adults low "
    "income low-income homeless disabled senior seniors elderly any our jewish permanent legal "
    "lawful".split()
)
_RESIDENCY_SOFTENERS = re.compile(
    r"\bpriority\b|\bprimarily\b|\bpreferred\b|\bparticularly\b|\bfocus|\bmainly\b|"
    r"\band the public\b|\bor (?:work|working|visiting|workers)\b|\bprospective\b|"
    r"\bpotential\b|\bfee charged\b|\bopen to (?:the )?public\b|\bmay accept\b|"
    r"\bothers\b|\boutside\b|\bother (?:counties|states|areas)\b"
)


def _parse_residency(text: str, low: str) -> tuple[str | None, str | None]:
    """(place text, kind) of a residency condition such as "Miami-Dade County residents"."""
    if re.search(r"\bno residency requirements?\b", low):
        return None, None
    for rx in _RESIDENCY_PATTERNS:
        for m in rx.finditer(text):
            place = m.group("place").strip()
            end = m.end("place")
            while more := _PLACE_MORE.match(text, end):  # "DC, Montgomery County, MD and ..."
                end = more.end()
            if end > m.end("place"):
                place = text[m.start("place") : end].strip()
            place = re.sub(r"^(?:the|The)\s+", "", place)
            place = re.sub(r"\s+(?:and|or|of|&)$", "", place).strip(" ,.")
            if not place or place.lower() in _GENERIC_PLACE_WORDS:
                continue
            if text[max(0, m.start() - 4) : m.start()].lower().endswith("non-"):
                continue
            words = place.split()
            while words and words[0].lower() in _PLACE_LEAD_WORDS:
                words = words[1:]
            place = " ".join(words)
            if not words or all(w.lower() in _GENERIC_PLACE_WORDS for w in words):
                continue
            kind = FOCUS if _RESIDENCY_SOFTENERS.search(low) else RESTRICTION
            return place, kind
    return None, None


# --------------------------------------------------------------------------- insurance, documents

_INSURANCE_PATTERNS: dict[str, re.Pattern[str]] = {
    "medicaid": re.compile(r"\bmedicaid\b"),
    "medicare": re.compile(r"\bmedicare\b"),
    "private": re.compile(r"\bprivate(?:ly)?\s+(?:health\s+)?insur\w*|\bcommercial insurance\b"),
    "uninsured": re.compile(
        r"\buninsured\b|\b(?:no|without|lack of|limited or no)\s+(?:\w+\s+)?insurance\b|"
        r"\bnot have any (?:form of )?(?:private or government )?insurance\b|"
        r"\bno insurance coverage\b"
    ),
    "sliding_scale": re.compile(r"\bsliding[- ](?:fee[- ])?scale\b"),
    "free": re.compile(
        r"\bfree of charge\b|\bat no (?:cost|charge)\b|\bno (?:cost|charge)\b|"
        r"\bfree (?:services?|care|clinic|treatment|of cost)\b"
    ),
    "self_pay": re.compile(r"\bself[- ]pay\b"),
}
_DOCUMENT_PATTERNS: dict[str, re.Pattern[str]] = {
    "photo_id": re.compile(
        r"\b(?:photo|picture|government[- ]issued(?: picture)?|valid|state|dc|military)\s+"
        r"(?:id|identification)\b|\bidentification\b|\bid (?:card )?required\b"
    ),
    "proof_of_address": re.compile(
        r"\bproof of (?:\w+ )?(?:residency|residence|address)\b|\butility bill\b"
    ),
    "proof_of_income": re.compile(
        r"\bproof of (?:household )?income\b|\bpay ?stubs?\b|\bincome verification\b|"
        r"\bverification of income\b|\btax returns?\b|\bw-?2s?\b"
    ),
    "social_security_card": re.compile(r"\bsocial security (?:card|number)s?\b|\bssn\b"),
    "birth_certificate": re.compile(r"\bbirth certificates?\b"),
    "referral": re.compile(r"\breferrals?\b|\breferred by\b|\bmust be referred\b"),
    "immigration_documents": re.compile(
        r"\bproof of (?:their )?(?:immigration|legal|refugee|asylee) status\b|\bi-94\b|"
        r"\bgreen card\b|\bwork permit\b|\bdocumentation stating they are legal\b"
    ),
    "medical_documentation": re.compile(
        r"\bproof of (?:\w+ )?(?:hiv|aids|disability|medical|diagnosis|pregnancy)\b|"
        r"\bmedical (?:documentation|certification|records)\b|\bdoctor'?s (?:note|referral)\b|"
        r"\bphysician'?s orders?\b|\b(?:psychological|neurological) report\b"
    ),
    "tb_test": re.compile(r"\btb test|\btuberculosis (?:screening|test)"),
}
_PROOF_LIST = re.compile(r"\bproof of\s*:\s*([^.\n;]+)")
_PROOF_ITEMS = [
    ("proof_of_income", re.compile(r"\bincome\b")),
    ("proof_of_address", re.compile(r"\bresiden|\baddress\b")),
    ("photo_id", re.compile(r"\bid\b|\bidentification\b")),
    ("social_security_card", re.compile(r"\bsocial security\b")),
    ("birth_certificate", re.compile(r"\bbirth\b")),
    ("immigration_documents", re.compile(r"\bimmigration\b|\blegal status\b|\bcitizenship\b")),
    ("medical_documentation", re.compile(r"\bmedical\b|\bdiagnosis\b")),
]


def _parse_documents(text: str, low: str) -> list[str]:
    found = {code for code, rx in _DOCUMENT_PATTERNS.items() if rx.search(low)}
    if re.search(r"\bID\b", text):
        found.add("photo_id")
    for m in _PROOF_LIST.finditer(low):
        found |= {code for code, rx in _PROOF_ITEMS if rx.search(m.group(1))}
    return [code for code in DOCUMENTS if code in found]


# --------------------------------------------------------------------------- income

_FPL = re.compile(
    r"(\d{2,3})\s*%\s*(?:or (?:less|below)\s+)?(?:of\s+|below\s+|above\s+)?(?:the\s+)?"
    r"(?:federal\s+|fed\.?\s+|hhs\s+)?(?:poverty|fpl\b|fpg\b|pig\b)"
)
_MONEY = re.compile(r"\$\s?(\d[\d,]*(?:\.\d+)?)")
_INCOME_WORDS = re.compile(
    r"\blow[- ]income\b|\blow to moderate income\b|\bincome\b|\bpoverty\b|\bindigent\b|"
    r"\bearn\b|\bfinancial (?:need|eligibility)\b"
)


def _parse_income(norm: str, low: str, spans: list[tuple[int, int]]) -> IncomeLimit | None:
    m = _INCOME_WORDS.search(low)
    fpl = [int(x) for x in _FPL.findall(low)]
    if not m and not fpl:
        return None
    anchor = m.start() if m else low.find("%")
    start, end = _clause_of(spans, anchor)
    phrase = norm[start:end].strip(" .;") if end > start else norm.strip()
    if len(phrase) > 160:
        phrase = phrase[:157].rstrip() + "..."
    limit = IncomeLimit(text=phrase, percent_fpl=max(fpl) if fpl else None)
    money = _MONEY.search(low)
    if money and m and abs(money.start() - m.start()) < 80:
        limit.amount = float(money.group(1).replace(",", ""))
        near = low[max(0, money.start() - 40) : money.end() + 40]
        if re.search(r"month", near):
            limit.period = "month"
        elif re.search(r"annual|year|yearly", near):
            limit.period = "year"
    return limit


# --------------------------------------------------------------------------- public API

_OPEN_WHOLE = re.compile(
    r"(?:none(?: required)?|n/a|no restrictions?|no requirements?|open to all|open to everyone|"
    r"all are eligible|anyone|anyone in need|everyone|open to the (?:general )?public|"
    r"available to (?:the )?general public|services are available to anyone who needs them)"
)


def _as_int_age(value: Any) -> int | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(number) or number < 0:
        return None
    return int(math.floor(number))


def parse_eligibility(
    text: str | None, *, minimum_age: Any = None, maximum_age: Any = None
) -> Eligibility:
    """Parse eligibility text (and HSDS minimum/maximum_age, always restrictions)."""
    elig = Eligibility(text=text)
    norm = _normalise(text or "")
    low = norm.lower()
    spans = _clauses(low)

    ages = _find_ages(low, spans) if low else []
    lo, hi, age_kind = _parse_ages(low, spans, ages)
    if age_kind is None and low:
        lo, hi = _age_words(low)
        age_kind = FOCUS if (lo is not None or hi is not None) else None
    hsds_min, hsds_max = _as_int_age(minimum_age), _as_int_age(maximum_age)
    if hsds_min is not None or hsds_max is not None:
        text_restricts = age_kind == RESTRICTION
        lo = hsds_min if hsds_min is not None else (lo if text_restricts else None)
        hi = hsds_max if hsds_max is not None else (hi if text_restricts else None)
        if lo == 0:
            lo = None
        age_kind = RESTRICTION if (lo is not None or hi is not None) else None
    elig.min_age, elig.max_age, elig.age_kind = lo, hi, age_kind

    minors = any(a.hi is not None and a.hi <= 17 and not a.dropped for a in ages)
    genders, gender_kind, gender_end = _parse_gender(low, minors) if low else ([], None, -1)
    elig.genders, elig.gender_kind = genders, gender_kind

    mentions = _population_mentions(low, norm)
    elig.populations = [c for c in POPULATIONS if any(m.code == c for m in mentions)]
    required = _required_populations(
        low, spans, mentions, ages, age_kind, gender_end if gender_kind == RESTRICTION else -1
    )
    elig.required_populations = [c for c in POPULATIONS if c in required]
    if elig.required_populations:
        elig.population_kind = RESTRICTION
    elif elig.populations:
        elig.population_kind = FOCUS

    elig.residency, elig.residency_kind = _parse_residency(norm, low)
    elig.insurance = [c for c, rx in _INSURANCE_PATTERNS.items() if rx.search(low)]
    elig.documents = _parse_documents(norm, low)
    elig.income_limit = _parse_income(norm, low, spans)
    nothing_restricts = not elig.restrictions()
    elig.open_to_all = nothing_restricts and bool(
        _OPEN_WHOLE.fullmatch(low.strip(" .;!")) or _OPENNESS.search(low)
    )
    return elig


# --------------------------------------------------------------------------- matching a client

_GENDER_ALIASES = {
    "f": "female", "woman": "female", "women": "female", "girl": "female", "female": "female",
    "m": "male", "man": "male", "men": "male", "boy": "male", "male": "male",
    "non-binary": "nonbinary", "nonbinary": "nonbinary", "nb": "nonbinary",
    "trans": "transgender", "transgender": "transgender",
}
_POPULATION_ALIASES = {
    "veteran": "veterans", "homeless": "people_experiencing_homelessness",
    "disabled": "people_with_disabilities", "disability": "people_with_disabilities",
    "hiv": "people_with_hiv", "refugee": "immigrants", "immigrant": "immigrants",
    "domestic_violence": "survivors_of_domestic_violence", "dv": "survivors_of_domestic_violence",
    "senior": "seniors", "family": "families", "ex_offender": "formerly_incarcerated",
    "reentry": "formerly_incarcerated", "lgbt": "lgbtq", "lgbtq+": "lgbtq",
}


def normalize_gender(value: str | None) -> str | None:
    """Map a free gender value ("Woman", "F", "non-binary") to a `GENDERS` code or None."""
    if not value:
        return None
    key = value.strip().lower()
    return _GENDER_ALIASES.get(key, key if key in GENDERS else None)


def normalize_population(value: str) -> str:
    """Map a population alias ("veteran", "homeless") to its `POPULATIONS` code."""
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    return _POPULATION_ALIASES.get(key, key)


def _age_label(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"ages {lo}-{hi}"
    if lo is not None:
        return f"ages {lo}+"
    return f"ages {hi} and under"


def check_client(
    elig: Eligibility,
    *,
    age: int | None = None,
    gender: str | None = None,
    populations: list[str] | set[str] | tuple[str, ...] | None = None,
    state: str | None = None,
    county: str | None = None,
    city: str | None = None,
    postal_code: str | None = None,
    income_fpl_percent: float | None = None,
) -> list[Mismatch]:
    """The explicit restrictions of `elig` that the client profile contradicts."""
    out: list[Mismatch] = []
    if age is not None and elig.age_kind == RESTRICTION:
        too_young = elig.min_age is not None and age < elig.min_age
        too_old = elig.max_age is not None and age > elig.max_age
        if too_young or too_old:
            label = _age_label(elig.min_age, elig.max_age)
            out.append(Mismatch(
                "age",
                {"min_age": elig.min_age, "max_age": elig.max_age, "client_age": age},
                f"{label}; client {age}",
            ))
    client_gender = normalize_gender(gender)
    binary = {"female", "male"}
    if (
        client_gender in binary
        and elig.gender_kind == RESTRICTION
        and elig.genders
        and set(elig.genders) <= binary
        and client_gender not in elig.genders
    ):
        served = " and ".join("women" if g == "female" else "men" for g in elig.genders)
        out.append(Mismatch(
            "gender",
            {"genders": list(elig.genders), "client_gender": client_gender},
            f"{served} only; client {client_gender}",
        ))
    if populations is not None and elig.required_populations:
        have = {normalize_population(p) for p in populations}
        for code in elig.required_populations:
            if code not in have:
                out.append(Mismatch(
                    "population",
                    {"population": code},
                    f"{code.replace('_', ' ')} only; not in the client's profile",
                ))
    if elig.residency and elig.residency_kind == RESTRICTION and (
        state or county or city or postal_code
    ):
        from service.directory.service_areas import covers, parse_service_area

        coverage = parse_service_area(elig.residency)
        inside = covers(coverage, state=state, county=county, city=city, postal_code=postal_code)
        if inside is False:
            where = ", ".join(x for x in (postal_code, city, county, state) if x)
            out.append(Mismatch(
                "residency",
                {"residency": elig.residency, "client_place": where},
                f"{elig.residency} residents only; client in {where}",
            ))
    limit = elig.income_limit
    if (
        income_fpl_percent is not None
        and limit is not None
        and limit.percent_fpl is not None
        and income_fpl_percent > limit.percent_fpl
    ):
        out.append(Mismatch(
            "income",
            {"percent_fpl": limit.percent_fpl, "client_percent_fpl": income_fpl_percent},
            f"income up to {limit.percent_fpl}% FPL; client {income_fpl_percent:g}%",
        ))
    return out
