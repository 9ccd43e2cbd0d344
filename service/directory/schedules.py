"""Opening hours: HSDS 3.1 schedules, free-text hours, and "open now" with three answers.

Pure Python, no database. The pieces:

* `Rule` is one HSDS 3.1 ``schedule`` row (an RFC 5545 RRULE subset plus opening times):
  weekly rules (``freq=WEEKLY, byday=MO,TU``), monthly rules with ordinal weekdays
  (``2SA,4SA`` is the 2nd and 4th Saturday, ``-1FR`` the last Friday), ``bymonthday``,
  ``valid_from``/``valid_to`` windows, hours past midnight (opens 22:00, closes 06:00 means open
  until 06:00 the next day) and 24-hour rules (00:00-23:59). A rule with ``is_closure`` set is a
  closure: it removes time instead of adding it (see `Rule`).
* `HolidayClosure` is an HSDS 1.x ``holiday_schedule`` row (dates, ``closed``, optional times).
* `parse_hours_text` turns free text ("Mon-Fri 9am-5pm", "2nd & 4th Saturday 10am-12pm",
  "Saturday: 9:00:00-12:00:00, ...") into rules, keeps the text, and says whether it is
  confident. It prefers no answer to a wrong one: any word it does not understand, an
  implausible time or an ambiguous one makes it give up (no rules, ``confident=False``).
* `rules_from_weekday_rows` reads HSDS 1.x ``regular_schedule`` rows (weekday + times).
* `open_status` / `is_open_at` answer OPEN, CLOSED or UNKNOWN in the location's IANA time
  zone. They never say CLOSED without rules that apply on the day (or a holiday closure).
* `rule_from_hsds` / `to_hsds_rows` round-trip rules to HSDS 3.1 schedule fields, and
  `describe` writes a short human text ("Mon\u2013Fri 9:00 AM\u20135:00 PM").
* `weekly_open_slots` gives hour-of-week buckets (0 = Monday 00:00-01:00 local time, 167 =
  Sunday 23:00-24:00) for a search index that answers "open now" fast.

Times are wall-clock times in the location's zone. A UTC offset written after an HSDS time
("09:00Z", "09:00-05:00") is kept for the round trip but not used when a zone is given.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DAY_CODES",
    "DayRef",
    "HolidayClosure",
    "OpenResult",
    "OpenStatus",
    "ParsedHours",
    "Rule",
    "WeeklySlots",
    "describe",
    "holiday_from_row",
    "hour_of_week",
    "is_open_at",
    "open_status",
    "parse_hours_text",
    "parse_hsds_time",
    "rule_from_hsds",
    "rules_from_weekday_rows",
    "to_hsds_rows",
    "weekly_open_slots",
]

DAY_CODES: tuple[str, ...] = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_DAY_ABBR = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FREQS = ("WEEKLY", "MONTHLY")
_END_OF_DAY = (time(23, 59), time(23, 59, 59))
_HORIZON_DAYS = 62  # how far ahead open_status looks for the next opening
_DAY_MINUTES = 1440
_WEEK_MINUTES = 7 * _DAY_MINUTES


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayRef:
    """One ``byday`` entry: a weekday (0 = Monday) with an optional month ordinal (2 / -1)."""

    weekday: int
    ordinal: int | None = None

    @property
    def code(self) -> str:
        """The RFC 5545 text, e.g. ``SA``, ``2SA`` or ``-1FR``."""
        prefix = "" if self.ordinal is None else str(self.ordinal)
        return prefix + DAY_CODES[self.weekday]

    @classmethod
    def from_code(cls, text: str) -> DayRef:
        """Read ``MO``, ``2SA``, ``+1SA`` or ``-1FR``; raise ValueError otherwise."""
        match = re.fullmatch(r"\s*([+-]?\d{1,2})?\s*([A-Za-z]{2})\s*", text)
        if not match or match.group(2).upper() not in DAY_CODES:
            raise ValueError(f"not an RFC 5545 weekday: {text!r}")
        ordinal = int(match.group(1)) if match.group(1) else None
        if ordinal is not None and not (1 <= abs(ordinal) <= 5):
            raise ValueError(f"weekday ordinal out of range: {text!r}")
        return cls(DAY_CODES.index(match.group(2).upper()), ordinal)


def _days(codes: str | Iterable[str | int | DayRef]) -> tuple[DayRef, ...]:
    """Turn ``"MO,TU"``, ``["2SA"]`` or weekday numbers into DayRefs."""
    if isinstance(codes, str):
        codes = [part for part in codes.split(",") if part.strip()]
    out: list[DayRef] = []
    for item in codes:
        if isinstance(item, DayRef):
            out.append(item)
        elif isinstance(item, int):
            out.append(DayRef(item))
        else:
            out.append(DayRef.from_code(item))
    return tuple(out)


@dataclass(frozen=True)
class Rule:
    """One HSDS 3.1 schedule row: when it recurs and the hours it is open (or closed).

    ``opens_at``/``closes_at`` are local wall-clock times; ``closes_at`` at or before
    ``opens_at`` runs past midnight into the next day, and 23:59 counts as the end of the day.
    A closure (``is_closure``) removes ``[opens_at, closes_at)`` on the days it recurs, or the
    whole day without times. A closure without any recurrence field covers every day from
    ``valid_from`` (or ``dtstart``) to ``valid_to`` (or ``until``) inclusive.
    """

    freq: str | None = "WEEKLY"
    byday: tuple[DayRef, ...] = ()
    opens_at: time | None = None
    closes_at: time | None = None
    interval: int | None = None
    bymonthday: tuple[int, ...] = ()
    byweekno: tuple[int, ...] = ()
    byyearday: tuple[int, ...] = ()
    dtstart: date | None = None
    until: date | None = None
    count: int | None = None
    wkst: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    timezone: float | None = None
    opens_offset: str | None = None
    closes_offset: str | None = None
    description: str | None = None
    notes: str | None = None
    attending_type: str | None = None
    schedule_link: str | None = None
    is_closure: bool = False

    @classmethod
    def weekly(cls, byday: str, opens_at: str, closes_at: str, **fields: Any) -> Rule:
        """Build a weekly rule from codes and "HH:MM" times, e.g. ``weekly("MO,TU", ...)``."""
        return cls(
            freq="WEEKLY",
            byday=_days(byday),
            opens_at=parse_hsds_time(opens_at)[0],
            closes_at=parse_hsds_time(closes_at)[0],
            interval=fields.pop("interval", 1),
            **fields,
        )

    @classmethod
    def monthly(cls, byday: str, opens_at: str, closes_at: str, **fields: Any) -> Rule:
        """Build a monthly rule, e.g. ``monthly("2SA,4SA", "10:00", "12:00")``."""
        return cls(
            freq="MONTHLY",
            byday=_days(byday),
            opens_at=parse_hsds_time(opens_at)[0],
            closes_at=parse_hsds_time(closes_at)[0],
            interval=fields.pop("interval", 1),
            **fields,
        )

    @property
    def effective_freq(self) -> str | None:
        """``freq``, or the one implied by ``byday``/``bymonthday`` when it is missing."""
        if self.freq:
            return self.freq
        if self.bymonthday or any(d.ordinal is not None for d in self.byday):
            return "MONTHLY"
        return "WEEKLY" if self.byday else None

    @property
    def has_recurrence(self) -> bool:
        """Whether the rule says on which days it recurs (not just a date window)."""
        return bool(self.freq or self.byday or self.bymonthday or self.byweekno or self.byyearday)

    @property
    def is_all_day(self) -> bool:
        """Whether the rule spans a whole day (00:00 to 23:59/00:00)."""
        return self.opens_at == time(0) and (
            self.closes_at in _END_OF_DAY or self.closes_at == time(0)
        )


@dataclass(frozen=True)
class HolidayClosure:
    """An HSDS 1.x holiday_schedule entry: a date range that is closed or has special hours.

    ``closed=True`` without times closes every day of the range. ``closed=True`` with times
    keeps only the regular hours inside ``[opens_at, closes_at)`` (closes early at
    ``closes_at`` and/or opens late at ``opens_at``). ``closed=False`` with both times replaces
    the regular hours on those days with ``[opens_at, closes_at)``. ``annual=True`` ignores
    the years and recurs every year (Ohana writes such dates with the year 0001).
    """

    start_date: date
    end_date: date
    closes_at: time | None = None
    opens_at: time | None = None
    closed: bool = True
    annual: bool = False

    def covers(self, day: date) -> bool:
        """Whether ``day`` falls inside the range (inclusive)."""
        if not self.annual:
            return self.start_date <= day <= self.end_date
        key = (day.month, day.day)
        start = (self.start_date.month, self.start_date.day)
        end = (self.end_date.month, self.end_date.day)
        return start <= key <= end if start <= end else (key >= start or key <= end)

    def to_rules(self) -> list[Rule]:
        """Express a (non-annual) closure as HSDS 3.1 closure rules (``is_closure``)."""
        if self.annual:
            raise ValueError("an annual holiday has no HSDS 3.1 schedule equivalent")
        if not self.closed:
            raise ValueError("special opening hours are not a closure")
        window = {"freq": None, "valid_from": self.start_date, "valid_to": self.end_date}
        if self.opens_at is None and self.closes_at is None:
            return [Rule(is_closure=True, description="Closed", **window)]
        rules = []
        if self.opens_at is not None and self.opens_at != time(0):
            rules.append(Rule(is_closure=True, opens_at=time(0), closes_at=self.opens_at, **window))
        if self.closes_at is not None and self.closes_at not in _END_OF_DAY:
            rules.append(
                Rule(is_closure=True, opens_at=self.closes_at, closes_at=time(23, 59), **window)
            )
        return rules


@dataclass(frozen=True)
class ParsedHours:
    """The result of reading free-text hours: rules, the original text, and confidence."""

    rules: list[Rule]
    text: str
    confident: bool


class OpenStatus(StrEnum):
    """Whether a place is open: ``open``, ``closed`` or ``unknown``."""

    OPEN = "open"
    CLOSED = "closed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OpenResult:
    """An `OpenStatus` with the times that go with it, as aware datetimes in the local zone.

    ``closes_at`` is set when open and the place closes within the look-ahead horizon (two
    months; a 24/7 place has none). ``opens_next`` is set when closed and it opens again
    within the horizon.
    """

    status: OpenStatus
    closes_at: datetime | None = None
    opens_next: datetime | None = None

    @property
    def value(self) -> str:
        """The status text: ``open``, ``closed`` or ``unknown``."""
        return self.status.value

    @property
    def is_open(self) -> bool:
        """Whether the status is OPEN."""
        return self.status is OpenStatus.OPEN


# --------------------------------------------------------------------------------------------
# HSDS 3.1 rows
# --------------------------------------------------------------------------------------------

_HSDS_TIME_RE = re.compile(
    r"\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*", re.I
)


def parse_hsds_time(value: str | time) -> tuple[time, str | None]:
    """Read an HSDS time ("09:00", "09:00:00Z", "09:00-05:00") into (time, offset suffix)."""
    if isinstance(value, time):
        return value.replace(tzinfo=None), None
    match = _HSDS_TIME_RE.fullmatch(value)
    if not match:
        raise ValueError(f"not an HH:MM time: {value!r}")
    hour, minute, second = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hour == 24 and minute == 0 and second == 0:
        hour = 0
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError(f"not an HH:MM time: {value!r}")
    offset = match.group(4)
    return time(hour, minute, second), offset.upper() if offset else None


def _format_hsds_time(value: time, offset: str | None) -> str:
    """Write ``HH:MM`` (``HH:MM:SS`` when seconds are set) plus any offset suffix."""
    text = value.strftime("%H:%M:%S" if value.second else "%H:%M")
    return text + (offset or "")


def _blank(value: Any) -> bool:
    """Whether an HSDS cell is empty (None, "", white space or the text "null")."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "null"))


def _int_list(value: Any) -> tuple[int, ...]:
    """Read "2,3,-1" (or a list of numbers) into ints."""
    if _blank(value):
        return ()
    if isinstance(value, int | float):
        return (int(value),)
    parts = value.split(",") if isinstance(value, str) else list(value)
    return tuple(int(str(part).strip()) for part in parts if str(part).strip())


def _as_date(value: Any) -> date | None:
    """Read an ISO date (a datetime's date part is accepted)."""
    if _blank(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value).strip()[:10])


def _as_int(value: Any) -> int | None:
    """Read an integer written as text, int or float."""
    return None if _blank(value) else int(float(value))


def _as_text(value: Any) -> str | None:
    """Return text, or None for a blank cell."""
    return None if _blank(value) else str(value)


def _as_bool(value: Any) -> bool:
    """Read true/false written as bool, number or text."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "t", "yes", "y", "1")
    return bool(value)


_CLOSED_TEXT_RE = re.compile(r"\s*closed\b", re.I)


def _says_closed(description: str | None, notes: str | None) -> bool:
    """Whether a description or note starts with the word "closed"."""
    return any(text and _CLOSED_TEXT_RE.match(text) for text in (description, notes))


def rule_from_hsds(row: Mapping[str, Any]) -> Rule:
    """Read one HSDS 3.1 schedule row (dict of fields) into a Rule; raise ValueError if bad.

    A row is a closure when its ``is_closure`` extension field is true, or when it has no
    times and its description or notes start with "closed".
    """
    freq = _as_text(row.get("freq"))
    if freq is not None:
        freq = freq.strip().upper()
        if freq not in _FREQS:
            raise ValueError(f"unsupported freq: {freq!r}")
    wkst = _as_text(row.get("wkst"))
    if wkst is not None:
        wkst = wkst.strip().upper()
        if wkst not in DAY_CODES:
            raise ValueError(f"not a weekday code: {wkst!r}")
    opens = closes = None
    opens_offset = closes_offset = None
    if not _blank(row.get("opens_at")):
        opens, opens_offset = parse_hsds_time(row["opens_at"])
    if not _blank(row.get("closes_at")):
        closes, closes_offset = parse_hsds_time(row["closes_at"])
    timezone = row.get("timezone")
    tz_value: float | None = None
    if not _blank(timezone):
        tz_value = float(timezone)
        tz_value = int(tz_value) if tz_value.is_integer() else tz_value
    description, notes = _as_text(row.get("description")), _as_text(row.get("notes"))
    is_closure = _as_bool(row.get("is_closure")) or (
        opens is None and closes is None and _says_closed(description, notes)
    )
    byday = row.get("byday")
    return Rule(
        freq=freq,
        byday=() if _blank(byday) else _days(byday),
        opens_at=opens,
        closes_at=closes,
        interval=_as_int(row.get("interval")),
        bymonthday=_int_list(row.get("bymonthday")),
        byweekno=_int_list(row.get("byweekno")),
        byyearday=_int_list(row.get("byyearday")),
        dtstart=_as_date(row.get("dtstart")),
        until=_as_date(row.get("until")),
        count=_as_int(row.get("count")),
        wkst=wkst,
        valid_from=_as_date(row.get("valid_from")),
        valid_to=_as_date(row.get("valid_to")),
        timezone=tz_value,
        opens_offset=opens_offset,
        closes_offset=closes_offset,
        description=description,
        notes=notes,
        attending_type=_as_text(row.get("attending_type")),
        schedule_link=_as_text(row.get("schedule_link")),
        is_closure=is_closure,
    )


def to_hsds_rows(rules: Iterable[Rule]) -> list[dict[str, Any]]:
    """Write rules as HSDS 3.1 schedule field dicts (no ids; empty fields left out).

    Closures carry the ``is_closure: True`` extension field unless their text already says
    "closed" and they have no times, so `rule_from_hsds` reads every row back to the same rule.
    """
    rows = []
    for rule in rules:
        row: dict[str, Any] = {}
        for key in ("valid_from", "valid_to", "dtstart"):
            if getattr(rule, key) is not None:
                row[key] = getattr(rule, key).isoformat()
        if rule.timezone is not None:
            row["timezone"] = rule.timezone
        if rule.until is not None:
            row["until"] = rule.until.isoformat()
        if rule.count is not None:
            row["count"] = rule.count
        if rule.wkst is not None:
            row["wkst"] = rule.wkst
        if rule.freq is not None:
            row["freq"] = rule.freq
        if rule.interval is not None:
            row["interval"] = rule.interval
        if rule.byday:
            row["byday"] = ",".join(d.code for d in rule.byday)
        for key in ("byweekno", "bymonthday", "byyearday"):
            if getattr(rule, key):
                row[key] = ",".join(str(n) for n in getattr(rule, key))
        if rule.description is not None:
            row["description"] = rule.description
        if rule.opens_at is not None:
            row["opens_at"] = _format_hsds_time(rule.opens_at, rule.opens_offset)
        if rule.closes_at is not None:
            row["closes_at"] = _format_hsds_time(rule.closes_at, rule.closes_offset)
        for key in ("schedule_link", "attending_type", "notes"):
            if getattr(rule, key) is not None:
                row[key] = getattr(rule, key)
        implied = (
            rule.opens_at is None
            and rule.closes_at is None
            and _says_closed(rule.description, rule.notes)
        )
        if rule.is_closure and not implied:
            row["is_closure"] = True
        rows.append(row)
    return rows


_MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): n for n, name in enumerate(calendar.month_abbr) if name})


def _holiday_date(value: Any) -> tuple[date, bool]:
    """Read "2015-12-24", "12/24/2015", "12/24/15" or "January 01, 0001" into (date, annual)."""
    if isinstance(value, date):
        return value, False
    text = str(value).strip()
    if match := re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text):
        year, month, day = (int(g) for g in match.groups())
    elif match := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", text):
        month, day, year = (int(g) for g in match.groups())
        year += 2000 if len(match.group(3)) == 2 else 0
    elif match := re.fullmatch(r"([A-Za-z]+)\.?\s+(\d{1,2}),?\s+(\d{1,4})", text):
        month = _MONTHS.get(match.group(1).lower(), 0)
        day, year = int(match.group(2)), int(match.group(3))
    else:
        raise ValueError(f"not a date: {value!r}")
    annual = year <= 1
    return date(2000 if annual else year, month, day), annual


def holiday_from_row(row: Mapping[str, Any]) -> HolidayClosure:
    """Read an HSDS 1.x / Ohana holiday_schedules row; year 0001 means every year."""
    start, annual = _holiday_date(row["start_date"])
    end, end_annual = _holiday_date(row.get("end_date") or row["start_date"])
    opens = None if _blank(row.get("opens_at")) else _read_clock(row["opens_at"])
    closes = None if _blank(row.get("closes_at")) else _read_clock(row["closes_at"])
    closed = True if _blank(row.get("closed")) else _as_bool(row.get("closed"))
    return HolidayClosure(
        start, end, closes_at=closes, opens_at=opens, closed=closed, annual=annual and end_annual
    )


def _read_clock(value: Any) -> time:
    """Read one stand-alone clock time ("10:00", "4:00 PM", "3pm") for a holiday row."""
    token = _scan_single_time(str(value))
    if token is None:
        raise ValueError(f"not a time: {value!r}")
    minutes = token.fixed_minutes()
    if minutes is None:
        minutes = token.hour % 24 * 60 + token.minute
    return _minutes_to_time(minutes)


# --------------------------------------------------------------------------------------------
# Free-text hours
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Clock:
    """A time as written: hour/minute, meridiem if any, and whether it reads as 24-hour."""

    hour: int
    minute: int
    meridiem: str | None
    literal: bool  # 24-hour style: leading zero, hour 0 or >12, or seconds

    def fixed_minutes(self) -> int | None:
        """Minutes after midnight when the text is unambiguous, else None."""
        if self.meridiem:
            return (self.hour % 12 + (12 if self.meridiem == "pm" else 0)) * 60 + self.minute
        if self.literal:
            return self.hour % 24 * 60 + self.minute
        return None

    def candidates(self) -> tuple[int, int]:
        """The morning and the afternoon reading of an ambiguous 1-12 hour, in minutes."""
        base = self.hour % 12 * 60 + self.minute
        return base, base + 720


_TIME_TOKEN = r"\d+(?::\d+){0,2}(?:\s*[ap]\.?m\.?|[ap](?![a-z]))?"
_TOKEN_RE = re.compile(
    rf"""
      (?P<ws>[ \t\r\f\v]+)
    | (?P<date>\d{{1,4}}/\d{{1,2}}(?:/\d{{1,4}})?)
    | (?P<ord>\d+(?:st|nd|rd|th)\b)
    | (?P<time>{_TIME_TOKEN})
    | (?P<dash>-+)
    | (?P<amp>[&+])
    | (?P<brk>[;\n()\[\]])
    | (?P<soft>[,:./|])
    | (?P<word>[a-z]+)
    """,
    re.X,
)
_CLOCK_RE = re.compile(r"(\d+)(?::(\d+))?(?::(\d+))?\s*(?:([ap])\.?m?\.?)?")


def _clock_from_token(text: str) -> _Clock | None:
    """Validate a time token ("9", "9:30am", "09:00", "9:00:00") into a _Clock."""
    match = _CLOCK_RE.fullmatch(text)
    if not match:
        return None
    hour_text, minute_text, second_text, meridiem = match.groups()
    if len(hour_text) > 2 or (minute_text is not None and len(minute_text) != 2):
        return None
    if second_text is not None and len(second_text) != 2:
        return None
    hour, minute = int(hour_text), int(minute_text or 0)
    if minute > 59 or (second_text is not None and int(second_text) > 59):
        return None
    if meridiem:
        if not 1 <= hour <= 12:
            return None
        return _Clock(hour, minute, "am" if meridiem == "a" else "pm", False)
    if hour > 24 or (hour == 24 and minute):
        return None
    literal = hour == 0 or hour > 12 or hour_text.startswith("0") or second_text is not None
    return _Clock(hour, minute, None, literal)


def _scan_single_time(text: str) -> _Clock | None:
    """Read a cell holding exactly one time ("9:00am", "17:00", "4:00 PM", "noon")."""
    cleaned = _normalise(text).strip()
    match = re.fullmatch(_TIME_TOKEN, cleaned)
    return _clock_from_token(cleaned) if match else None


_DAY_WORDS: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("monday", "mondays", "mon", "m"),
        ("tuesday", "tuesdays", "tue", "tues", "tu"),
        ("wednesday", "wednesdays", "wed", "weds", "w"),
        ("thursday", "thursdays", "thu", "thur", "thurs", "th"),
        ("friday", "fridays", "fri", "f"),
        ("saturday", "saturdays", "sat", "sa"),
        ("sunday", "sundays", "sun", "su"),
    )
):
    for _name in _names:
        _DAY_WORDS[_name] = _index
_DAY_SETS = {
    "daily": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset((5, 6)),
    "weekend": frozenset((5, 6)),
}
_ORDINAL_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "last": -1}
_RANGE_WORDS = {"to", "through", "thru", "till", "til", "until"}
_NOISE_WORDS = {
    "open",
    "hours",
    "from",
    "of",
    "the",
    "each",
    "every",
    "month",
    "monthly",
    "only",
    "on",
}

_NORMALISE = [
    (re.compile(r"\\[nr]"), "\n"),  # Miami stores line breaks as a literal backslash-n
    (re.compile(r"gçô|[\u2010-\u2015\u2212]"), "-"),  # en/em dashes, and their mojibake
    (re.compile(r"\(\s*noon\s*\)"), " "),
    (re.compile(r"\b(?:12(?::00)?\s*)?noon\b"), " 12:00pm "),
    (re.compile(r"\b(?:12(?::00)?\s*)?midnight\b"), " 12:00am "),
    (re.compile(r"\b24\s*/\s*7\b"), " allday daily "),
    (
        re.compile(
            r"\b(?:7|seven)\s*days\s*(?:a|per)\s*week\b|\bevery\s*day\b|\beveryday\b"
            r"|\bnightly\b"
        ),
        " daily ",
    ),
    (re.compile(r"\b24\s*-?\s*(?:hours?|hrs?)\b(?:\s*(?:a|per)\s*day\b)?"), " allday "),
    (
        re.compile(r"\b(?:office|business|operating|regular)\s+hours\b|\bhours\s+of\s+operation\b"),
        " hours ",
    ),
]


def _normalise(text: str) -> str:
    """Lower-case the text and rewrite phrases the tokenizer reads as single words."""
    out = text.lower()
    for pattern, replacement in _NORMALISE:
        out = pattern.sub(replacement, out)
    return out


class _Unreadable(Exception):
    """Raised inside the parser when the text cannot be read with confidence."""


@dataclass
class _Tok:
    """A token: kind is T, R, D, O, DASH, AND, SOFT or CLOSED."""

    kind: str
    clock: _Clock | None = None
    span: tuple[int, int] | None = None  # R: open/close minutes
    days: frozenset[int] = frozenset()  # D: weekdays
    single: bool = False  # D: one named weekday (can start or end a range)
    every: bool = False  # D: "daily"/"weekdays"-style word
    refs: frozenset[DayRef] = frozenset()  # D from ordinals: monthly refs
    ordinal: int | None = None  # O


def _tokenize(text: str) -> list[list[_Tok]]:
    """Split normalised text into clauses of tokens; raise _Unreadable on unknown words."""
    clauses: list[list[_Tok]] = [[]]
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise _Unreadable(text[pos : pos + 10])
        pos = match.end()
        kind, value = match.lastgroup, match.group()
        current = clauses[-1]
        if kind == "ws":
            continue
        if kind == "date":
            raise _Unreadable(value)
        if kind == "ord":
            number = int(re.match(r"\d+", value).group())
            if not 1 <= number <= 5:
                raise _Unreadable(value)
            current.append(_Tok("O", ordinal=number))
        elif kind == "time":
            if pos < len(text) and text[pos].isdigit():
                raise _Unreadable(value)
            clock = _clock_from_token(value)
            if clock is None:
                raise _Unreadable(value)
            current.append(_Tok("T", clock=clock))
        elif kind == "dash":
            current.append(_Tok("DASH"))
        elif kind == "amp":
            current.append(_Tok("AND"))
        elif kind == "brk":
            clauses.append([])
        elif kind == "soft":
            current.append(_Tok("SOFT"))
        else:
            current.extend(_word_tokens(value))
    return [clause for clause in clauses if clause]


def _word_tokens(word: str) -> list[_Tok]:
    """Classify one word; raise _Unreadable for a word outside the vocabulary."""
    if word in _DAY_WORDS:
        return [_Tok("D", days=frozenset({_DAY_WORDS[word]}), single=True)]
    if word in _DAY_SETS:
        return [_Tok("D", days=_DAY_SETS[word], every=True)]
    if word in _ORDINAL_WORDS:
        return [_Tok("O", ordinal=_ORDINAL_WORDS[word])]
    if word == "allday":
        return [_Tok("R", span=(0, 1439))]
    if word == "closed":
        return [_Tok("CLOSED")]
    if word == "and":
        return [_Tok("AND")]
    if word in _RANGE_WORDS:
        return [_Tok("DASH")]
    if word in _NOISE_WORDS:
        return []
    raise _Unreadable(word)


def _resolve(first: _Clock, second: _Clock) -> tuple[int, int]:
    """Turn two written times into (opens, closes) minutes, or raise when ambiguous."""
    opens, closes = first.fixed_minutes(), second.fixed_minutes()
    if opens is not None and closes is None:
        closes = min(second.candidates(), key=lambda c: (c - opens) % _DAY_MINUTES or 9999)
    elif opens is None and closes is not None:
        opens = min(first.candidates(), key=lambda o: (closes - o) % _DAY_MINUTES or 9999)
    elif opens is None and closes is None:
        opens, closes = _resolve_bare(first, second)
    assert opens is not None and closes is not None
    _check_plausible(opens, closes)
    return opens, closes


def _resolve_bare(first: _Clock, second: _Clock) -> tuple[int, int]:
    """Read two times without am/pm ("9-5", "8:30-4:30", "1-6", "9-12") or raise."""
    a = first.hour * 60 + first.minute
    b = second.hour * 60 + second.minute
    if b <= a:  # "9-5", "11-7", "9-9", "12:30-4", "6-3": closes in the afternoon
        if first.hour == 12:
            opens = a
        elif 5 <= first.hour <= 11:
            opens = a
        else:
            raise _Unreadable("ambiguous hours")
        closes = second.hour % 12 * 60 + second.minute + 720
        if closes <= opens:
            raise _Unreadable("ambiguous hours")
        return opens, closes
    if second.hour == 12:  # "8-12", "12-12:30": until noon
        return a, b
    if 1 <= first.hour <= 6:  # "1-5", "4-8", "5:30-7": afternoon or evening
        return a + 720, b + 720
    raise _Unreadable("ambiguous hours")  # "8-10": morning only or until the evening?


def _check_plausible(opens: int, closes: int) -> None:
    """Reject typos such as 9:00 pm-5:00 pm, 2:30 am-7:00 pm or 12:00 am-8:00 pm."""
    if opens == closes:
        if opens != 0:
            raise _Unreadable("empty range")
        return
    if 60 <= opens < 300:
        raise _Unreadable("opens in the small hours")
    if opens == 0 and closes != 1439:
        raise _Unreadable("opens at midnight")
    if closes < opens and closes != 0:
        if opens < 720 or closes > 720 or closes + _DAY_MINUTES - opens > 16 * 60:
            raise _Unreadable("implausible overnight range")


def _build_ranges(tokens: list[_Tok]) -> list[_Tok]:
    """Combine T DASH T (or T T with am/pm) into ranges; a time left alone is unreadable."""
    collapsed: list[_Tok] = []
    for tok in tokens:
        if not (tok.kind == "DASH" and collapsed and collapsed[-1].kind == "DASH"):
            collapsed.append(tok)
    tokens = collapsed
    out: list[_Tok] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.kind == "T":
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            after = tokens[i + 2] if i + 2 < len(tokens) else None
            if nxt and nxt.kind == "DASH" and after and after.kind == "T":
                out.append(_Tok("R", span=_resolve(tok.clock, after.clock)))
                i += 3
                continue
            if nxt and nxt.kind == "T" and tok.clock.meridiem and nxt.clock.meridiem:
                out.append(_Tok("R", span=_resolve(tok.clock, nxt.clock)))
                i += 2
                continue
            raise _Unreadable("a time without a range")
        out.append(tok)
        i += 1
    return out


def _build_days(tokens: list[_Tok]) -> list[_Tok]:
    """Combine day ranges (Mon-Fri, Sunday to Friday) and ordinals (2nd & 4th Saturday)."""
    out: list[_Tok] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (
            tok.kind == "D"
            and tok.single
            and i + 2 < len(tokens)
            and tokens[i + 1].kind == "DASH"
            and tokens[i + 2].kind == "D"
            and tokens[i + 2].single
        ):
            start, end = min(tok.days), min(tokens[i + 2].days)
            span = frozenset((start + k) % 7 for k in range((end - start) % 7 + 1))
            out.append(_Tok("D", days=span))
            i += 3
            continue
        if tok.kind == "O":
            ordinals = [tok.ordinal]
            j = i + 1
            while (
                j + 1 < len(tokens)
                and tokens[j].kind in ("AND", "SOFT")
                and tokens[j + 1].kind == "O"
            ):
                ordinals.append(tokens[j + 1].ordinal)
                j += 2
            if j >= len(tokens) or tokens[j].kind != "D" or not tokens[j].single:
                raise _Unreadable("an ordinal without a weekday")
            if j + 1 < len(tokens) and tokens[j + 1].kind == "DASH":
                raise _Unreadable("an ordinal before a day range")
            weekday = min(tokens[j].days)
            refs = frozenset(DayRef(weekday, n) for n in ordinals)
            out.append(_Tok("D", refs=refs))
            i = j + 1
            continue
        out.append(_Tok("SOFT") if tok.kind == "DASH" else tok)
        i += 1
    return out


@dataclass
class _Group:
    """A run of same-kind tokens in a clause: days (D), times (T) or a closed marker (C)."""

    kind: str
    days: set[int] = field(default_factory=set)
    refs: set[DayRef] = field(default_factory=set)
    every: int = 0
    members: int = 0
    spans: list[tuple[int, int]] = field(default_factory=list)


def _group(tokens: list[_Tok]) -> list[_Group]:
    """Merge consecutive day tokens and consecutive ranges; separators only split kinds."""
    groups: list[_Group] = []
    for tok in tokens:
        if tok.kind in ("SOFT", "AND"):
            continue
        kind = {"D": "D", "R": "T", "CLOSED": "C"}[tok.kind]
        if kind == "C" or not groups or groups[-1].kind != kind:
            groups.append(_Group(kind))
        group = groups[-1]
        if kind == "D":
            group.days |= tok.days
            group.refs |= tok.refs
            group.every += tok.every
            group.members += 1
        elif kind == "T" and tok.span not in group.spans:
            group.spans.append(tok.span)
    for group in groups:
        if group.kind == "D" and group.every and group.members > 1:
            raise _Unreadable("'daily' mixed with named days")
    return groups


_Pair = tuple[_Group, _Group | None, bool]  # days, times, is_closure


def _pair(groups: list[_Group]) -> list[_Pair]:
    """Pair day groups with time groups in a clause, including one closed part."""
    pairs: list[_Pair] = []
    kinds = [g.kind for g in groups]
    if "C" in kinds:
        if kinds.count("C") > 1:
            raise _Unreadable("several 'closed'")
        i = kinds.index("C")
        tail = kinds[i + 1 :]
        if not tail and i >= 1 and kinds[i - 1] == "D":
            pairs.append((groups[i - 1], None, True))
            groups = groups[: i - 1]
        elif tail == ["D"]:
            pairs.append((groups[i + 1], None, True))
            groups = groups[:i]
        elif tail in (["D", "T"], ["T", "D"]):
            d, t = (
                (groups[i + 1], groups[i + 2]) if tail[0] == "D" else (groups[i + 2], groups[i + 1])
            )
            pairs.append((d, t, True))
            groups = groups[:i]
        elif tail == ["T"] and i >= 1 and kinds[i - 1] == "D":
            pairs.append((groups[i - 1], groups[i + 1], True))
            groups = groups[: i - 1]
        else:
            raise _Unreadable("unclear 'closed'")
        kinds = [g.kind for g in groups]
    if not groups:
        return pairs
    if kinds == ["T"]:
        if all(span == (0, 1439) for span in groups[0].spans):
            return [*pairs, (_Group("D", days=set(range(7))), groups[0], False)]
        raise _Unreadable("hours without days")
    if len(groups) % 2:
        raise _Unreadable("days and hours do not pair up")
    for k in range(0, len(groups), 2):
        first, second = groups[k], groups[k + 1]
        days, times = (first, second) if first.kind == "D" else (second, first)
        if days.kind != "D" or times.kind != "T" or first.kind != groups[0].kind:
            raise _Unreadable("days and hours do not pair up")
        pairs.append((days, times, False))
    return pairs


def _minutes_to_time(minutes: int) -> time:
    """Turn minutes after midnight (0-1439, 1440 = midnight) into a time."""
    minutes %= _DAY_MINUTES
    return time(minutes // 60, minutes % 60)


def _rules_from_pairs(pairs: list[_Pair]) -> list[Rule]:
    """Build merged weekly/monthly rules (and closures) from paired groups; check conflicts."""
    opening: dict[tuple[str, int, int], set[DayRef]] = {}
    closing: dict[tuple[str, int | None, int | None], set[DayRef]] = {}
    all_day_closed: set[int] = set()
    for days, times, closure in pairs:
        refs = {DayRef(d) for d in days.days} | set(days.refs)
        spans: list[tuple[int | None, int | None]] = list(times.spans) if times else [(None, None)]
        for opens, closes in spans:
            for ref in refs:
                freq = "WEEKLY" if ref.ordinal is None else "MONTHLY"
                target = closing if closure else opening
                target.setdefault((freq, opens, closes), set()).add(ref)
                if closure and opens is None and ref.ordinal is None:
                    all_day_closed.add(ref.weekday)
    open_weekdays = {ref.weekday for refs in opening.values() for ref in refs}
    if all_day_closed & open_weekdays:
        raise _Unreadable("a day both open and closed")
    rules: list[Rule] = []
    for (freq, opens, closes), refs in sorted(opening.items(), key=_rule_order):
        rules.append(
            Rule(
                freq=freq,
                byday=tuple(sorted(refs, key=_ref_order)),
                interval=1,
                opens_at=_minutes_to_time(opens),
                closes_at=_minutes_to_time(closes),
            )
        )
    for (freq, opens, closes), refs in sorted(closing.items(), key=_rule_order):
        if freq == "WEEKLY" and opens is None:
            continue  # "Closed Sunday" with no Sunday hours adds nothing
        rules.append(
            Rule(
                freq=freq,
                byday=tuple(sorted(refs, key=_ref_order)),
                interval=1,
                is_closure=True,
                opens_at=None if opens is None else _minutes_to_time(opens),
                closes_at=None if closes is None else _minutes_to_time(closes),
            )
        )
    _check_overlaps([r for r in rules if not r.is_closure])
    return rules


def _ref_order(ref: DayRef) -> tuple[int, int]:
    """Sort weekdays Monday first, and ordinals 1..5 before -1 (last)."""
    ordinal = 0 if ref.ordinal is None else ref.ordinal if ref.ordinal > 0 else 10 - ref.ordinal
    return ref.weekday, ordinal


def _rule_order(item: tuple[tuple[str, Any, Any], set[DayRef]]) -> tuple[Any, ...]:
    """Order merged rules by first weekday, weekly before monthly, then opening time."""
    (freq, opens, _closes), refs = item
    return min(_ref_order(r) for r in refs), freq != "WEEKLY", opens if opens is not None else -1


def _weekday_spans(rule: Rule) -> list[tuple[int, int, int]]:
    """(weekday, start, end) minute spans of a rule, overnight parts moved to the next day."""
    opens, closes = _span_minutes(rule.opens_at, rule.closes_at)
    out = []
    for weekday in sorted({ref.weekday for ref in rule.byday}):
        out.append((weekday, opens, min(closes, _DAY_MINUTES)))
        if closes > _DAY_MINUTES:
            out.append(((weekday + 1) % 7, 0, closes - _DAY_MINUTES))
    return out


def _check_overlaps(rules: list[Rule]) -> None:
    """Refuse different ranges that overlap on one weekday ("Mon-Fri 9-5; Fri 9-3")."""
    spans: dict[int, set[tuple[int, int]]] = {}
    for rule in rules:
        for weekday, start, end in _weekday_spans(rule):
            spans.setdefault(weekday, set()).add((start, end))
    for day_spans in spans.values():
        ordered = sorted(day_spans)
        for (_s1, e1), (s2, _e2) in zip(ordered, ordered[1:], strict=False):
            if s2 < e1:
                raise _Unreadable("overlapping ranges")


def parse_hours_text(text: str | None) -> ParsedHours:
    """Read free-text opening hours into rules; give up (no rules, not confident) if unsure."""
    original = text or ""
    try:
        clauses = _tokenize(_normalise(original))
        pairs: list[_Pair] = []
        for clause in clauses:
            pairs.extend(_pair(_group(_build_days(_build_ranges(clause)))))
        rules = _rules_from_pairs(pairs)
    except _Unreadable:
        return ParsedHours([], original, False)
    if not any(not rule.is_closure for rule in rules):
        return ParsedHours([], original, False)
    return ParsedHours(rules, original, True)


def rules_from_weekday_rows(
    rows: Iterable[Mapping[str, Any]], *, use_original_text: bool = True
) -> list[Rule]:
    """Turn HSDS 1.x regular_schedule rows (weekday, opens_at, closes_at) into weekly rules.

    Times such as "9:00am", "4:00 PM" or "17:00" are read like free text. If any row cannot
    be read the result is empty, so that a partial week is never mistaken for closed days.

    When the rows share one ``original_text`` (Open211 Miami), that text is the source the
    rows were made from, and it wins: the Miami rows drop "Thur" from day lists and keep only
    one day of multi-line texts. Text that cannot be read confidently then gives no rules.
    """
    rows = list(rows)
    texts = {str(row.get("original_text")) for row in rows if not _blank(row.get("original_text"))}
    if use_original_text and len(texts) == 1:
        parsed = parse_hours_text(texts.pop())
        return parsed.rules if parsed.confident else []
    opening: dict[tuple[str, int, int], set[DayRef]] = {}
    for row in rows:
        weekday = str(row.get("weekday") or "").strip().lower().rstrip(".")
        if weekday not in _DAY_WORDS or len(weekday) < 3:
            return []
        opens = _scan_single_time(str(row.get("opens_at") or ""))
        closes = _scan_single_time(str(row.get("closes_at") or ""))
        if opens is None or closes is None:
            return []
        try:
            start, end = _resolve(opens, closes)
        except _Unreadable:
            return []
        opening.setdefault(("WEEKLY", start, end), set()).add(DayRef(_DAY_WORDS[weekday]))
    rules = [
        Rule(
            freq="WEEKLY",
            byday=tuple(sorted(refs, key=_ref_order)),
            interval=1,
            opens_at=_minutes_to_time(start),
            closes_at=_minutes_to_time(end),
        )
        for (_freq, start, end), refs in sorted(opening.items(), key=_rule_order)
    ]
    try:
        _check_overlaps(rules)
    except _Unreadable:
        return []
    return rules


# --------------------------------------------------------------------------------------------
# Recurrence
# --------------------------------------------------------------------------------------------


def _span_minutes(opens: time | None, closes: time | None) -> tuple[int, int]:
    """(start, end) minutes of an opening; end past 1440 runs into the next day."""
    start = 0 if opens is None else opens.hour * 60 + opens.minute
    if closes is None or closes in _END_OF_DAY:
        end = _DAY_MINUTES
    else:
        end = closes.hour * 60 + closes.minute + (closes.second > 0)
        if end <= start:
            end += _DAY_MINUTES
    return start, end


def _in_window(rule: Rule, day: date) -> bool:
    """Whether ``day`` is inside the rule's valid_from/valid_to and dtstart/until bounds."""
    lower = [d for d in (rule.valid_from, rule.dtstart) if d is not None]
    upper = [d for d in (rule.valid_to, rule.until) if d is not None]
    return all(day >= d for d in lower) and all(day <= d for d in upper)


def _nth(values: Sequence[int], position: int, total: int) -> bool:
    """Whether a 1-based position matches a list of positive/negative RFC 5545 numbers."""
    return any(v == position or (v < 0 and total + v + 1 == position) for v in values)


def _matches(rule: Rule, day: date) -> bool | None:
    """Whether the rule recurs on ``day`` (ignoring windows and count); None if unknowable."""
    freq = rule.effective_freq
    if freq is None:
        return None if rule.dtstart is None else day == rule.dtstart
    if rule.byyearday:
        total = 366 if calendar.isleap(day.year) else 365
        if not _nth(rule.byyearday, day.timetuple().tm_yday, total):
            return False
    if rule.byweekno:
        iso = day.isocalendar()
        if not _nth(rule.byweekno, iso.week, date(iso.year, 12, 28).isocalendar().week):
            return False
    days_in_month = calendar.monthrange(day.year, day.month)[1]
    if rule.bymonthday and not _nth(rule.bymonthday, day.day, days_in_month):
        return False
    interval = rule.interval or 1
    if freq == "WEEKLY":
        if any(ref.ordinal is not None for ref in rule.byday):
            return None
        weekdays = {ref.weekday for ref in rule.byday}
        if not weekdays:
            if rule.dtstart is None:
                return None
            weekdays = {rule.dtstart.weekday()}
        if day.weekday() not in weekdays:
            return False
        if interval > 1:
            if rule.dtstart is None:
                return None
            week_start = DAY_CODES.index(rule.wkst) if rule.wkst else 0
            first = rule.dtstart - timedelta(days=(rule.dtstart.weekday() - week_start) % 7)
            this = day - timedelta(days=(day.weekday() - week_start) % 7)
            return (this - first).days // 7 % interval == 0
        return True
    if rule.byday:
        nth = (day.day - 1) // 7 + 1
        from_end = -((days_in_month - day.day) // 7 + 1)
        if not any(
            ref.weekday == day.weekday() and ref.ordinal in (None, nth, from_end)
            for ref in rule.byday
        ):
            return False
    elif not rule.bymonthday:
        if rule.dtstart is None:
            return None
        if day.day != rule.dtstart.day:
            return False
    if interval > 1:
        if rule.dtstart is None:
            return None
        months = (day.year - rule.dtstart.year) * 12 + day.month - rule.dtstart.month
        return months % interval == 0
    return True


def _occurs(rule: Rule, day: date) -> bool | None:
    """Whether the rule happens on ``day``, with windows and ``count``; None if unknowable."""
    if not _in_window(rule, day):
        return False
    if rule.is_closure and not rule.has_recurrence:
        lower = rule.valid_from or rule.dtstart
        upper = rule.valid_to or rule.until
        if lower is None and upper is None:
            return False
        return (lower or upper) <= day <= (upper or lower)
    hit = _matches(rule, day)
    if not hit or rule.count is None:
        return hit
    if rule.dtstart is None:
        return None
    seen, cursor = 0, rule.dtstart
    while cursor <= day:
        if _matches(rule, cursor):
            seen += 1
            if seen > rule.count:
                return False
        cursor += timedelta(days=1)
    return True


# --------------------------------------------------------------------------------------------
# Open now
# --------------------------------------------------------------------------------------------

_Interval = tuple[datetime, datetime]


def _subtract(intervals: list[_Interval], start: datetime, end: datetime) -> list[_Interval]:
    """Remove ``[start, end)`` from a list of intervals."""
    out = []
    for s, e in intervals:
        if e <= start or s >= end:
            out.append((s, e))
            continue
        if s < start:
            out.append((s, start))
        if e > end:
            out.append((end, e))
    return out


def _merge(intervals: list[_Interval]) -> list[_Interval]:
    """Sort intervals and join overlapping or touching ones."""
    merged: list[_Interval] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _day_interval(day: date, opens: time | None, closes: time | None) -> _Interval:
    """The wall-clock interval of an opening that starts on ``day``."""
    start, end = _span_minutes(opens, closes)
    midnight = datetime.combine(day, time(0))
    return midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)


@dataclass
class _Evaluation:
    """Intermediate state of open_status over a range of local days."""

    intervals: list[_Interval]
    applicable_today: bool
    unknowable: bool
    holiday_decides: bool


def _evaluate(
    rules: Sequence[Rule], closures: Sequence[HolidayClosure], now: datetime, last_day: date
) -> _Evaluation:
    """Build opening intervals from yesterday to ``last_day`` and what is known about now."""
    today = now.date()
    first_day = today - timedelta(days=1)
    open_rules = [r for r in rules if not r.is_closure]
    closure_rules = [r for r in rules if r.is_closure]
    intervals: list[_Interval] = []
    unknowable = False
    day = first_day
    while day <= last_day:
        for rule in open_rules:
            hit = _occurs(rule, day)
            relevant = day == today or (
                day < today and _span_minutes(rule.opens_at, rule.closes_at)[1] > _DAY_MINUTES
            )
            if hit is None or (hit and (rule.opens_at is None or rule.closes_at is None)):
                unknowable = unknowable or (relevant and _in_window(rule, day))
                continue
            if hit:
                intervals.append(_day_interval(day, rule.opens_at, rule.closes_at))
        day += timedelta(days=1)
    day = first_day
    while day <= last_day:
        for rule in closure_rules:
            if _occurs(rule, day):
                intervals = _subtract(intervals, *_day_interval(day, rule.opens_at, rule.closes_at))
        day += timedelta(days=1)
    holiday_decides = False
    specials: list[_Interval] = []
    day = first_day
    while day <= last_day:
        midnight, next_midnight = (
            datetime.combine(day, time(0)),
            datetime.combine(day + timedelta(days=1), time(0)),
        )
        for holiday in closures:
            if not holiday.covers(day):
                continue
            if holiday.closed:
                if holiday.opens_at is None and holiday.closes_at is None:
                    keep_start = keep_end = midnight  # closed all day
                else:
                    keep_start, keep_end = _day_interval(day, holiday.opens_at, holiday.closes_at)
                    keep_end = min(keep_end, next_midnight)
                intervals = _subtract(intervals, midnight, keep_start)
                intervals = _subtract(intervals, keep_end, next_midnight)
                if day == today and not keep_start <= now < keep_end:
                    holiday_decides = True
            elif holiday.opens_at is not None and holiday.closes_at is not None:
                intervals = _subtract(intervals, midnight, next_midnight)
                specials.append(_day_interval(day, holiday.opens_at, holiday.closes_at))
                holiday_decides = holiday_decides or day == today
        day += timedelta(days=1)
    applicable = any(_in_window(rule, today) for rule in open_rules)
    return _Evaluation(_merge(intervals + specials), applicable, unknowable, holiday_decides)


def _as_rules(rules: Iterable[Rule] | ParsedHours) -> list[Rule]:
    """The rules to evaluate: a list, and none from text that was not understood."""
    if isinstance(rules, ParsedHours):
        return list(rules.rules) if rules.confident else []
    return list(rules)


@lru_cache(maxsize=1024)
def _zone(tz: str) -> tzinfo:
    # zoneinfo keeps only 8 zones strongly; a national directory uses more, so keep them all.
    return ZoneInfo(tz)


def _zone_for(tz: str | None, at: datetime) -> tzinfo:
    """The IANA zone named by ``tz``, or the zone of ``at`` when none is given."""
    if tz:
        try:
            return _zone(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone: {tz!r}") from exc
    assert at.tzinfo is not None
    return at.tzinfo


def _aware(naive: datetime, zone: tzinfo) -> datetime:
    """Attach the zone to a wall-clock time, moving non-existent (DST gap) times forward."""
    return naive.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)


def open_status(
    rules: Iterable[Rule] | ParsedHours,
    closures: Iterable[HolidayClosure] = (),
    at: datetime | None = None,
    tz: str | None = None,
) -> OpenResult:
    """Say whether the place is open at ``at`` (aware; default now) in time zone ``tz``.

    OPEN when an opening covers the moment (yesterday's hours past midnight count). CLOSED
    when a holiday closure covers it, or when rules apply today and none is open. UNKNOWN
    when there are no rules, the text was not understood, no rule is valid today, or a rule
    that applies cannot be evaluated (e.g. an interval without dtstart, or missing times).
    """
    return _status(rules, closures, at, tz, detail=True)


def is_open_at(
    rules: Iterable[Rule] | ParsedHours,
    closures: Iterable[HolidayClosure] = (),
    at: datetime | None = None,
    tz: str | None = None,
) -> OpenStatus:
    """The tri-state answer of `open_status` alone, cheaper (for an "open at" search filter)."""
    return _status(rules, closures, at, tz, detail=False).status


def _status(
    rules: Iterable[Rule] | ParsedHours,
    closures: Iterable[HolidayClosure],
    at: datetime | None,
    tz: str | None,
    *,
    detail: bool,
) -> OpenResult:
    """Shared body of open_status and is_open_at."""
    rules = _as_rules(rules)
    closures = list(closures)
    at = datetime.now(UTC) if at is None else at
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("'at' must be timezone-aware")
    zone = _zone_for(tz, at)
    now = at.astimezone(zone).replace(tzinfo=None, fold=0)
    last_day = now.date() + timedelta(days=_HORIZON_DAYS if detail else 0)
    ev = _evaluate(rules, closures, now, last_day)
    horizon_end = datetime.combine(last_day + timedelta(days=1), time(0))
    for start, end in ev.intervals:
        if start <= now < end:
            closes = _aware(end, zone) if detail and end < horizon_end else None
            return OpenResult(OpenStatus.OPEN, closes_at=closes)
    has_open_rules = any(not rule.is_closure for rule in rules)
    if not ev.holiday_decides and (not has_open_rules or not ev.applicable_today or ev.unknowable):
        return OpenResult(OpenStatus.UNKNOWN)
    opens_next = None
    if detail:
        opens_next = next((_aware(s, zone) for s, _e in ev.intervals if s > now), None)
    return OpenResult(OpenStatus.CLOSED, opens_next=opens_next)


# --------------------------------------------------------------------------------------------
# Weekly slots for a search index
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeeklySlots:
    """Hour-of-week buckets for an "open now" index, in the location's local time.

    Bucket ``weekday * 24 + hour`` (0 = Monday 00:00-01:00, 167 = Sunday 23:00-24:00).

    * ``hours``: the place may be open at some moment of that hour in some week. A bucket
      outside it means closed whenever the rules apply (query the exact answer when
      ``date_limited`` and the rules may not apply today).
    * ``certain``: open for the whole hour every week, from plain weekly rules that no
      closure rule touches. Holiday closures are not included: check them separately.
    * ``conditional``: ``hours - certain``, buckets that need `is_open_at` to decide:
      monthly rules ("2nd & 4th Sat"), dated or fortnightly rules, part-hours, closures.
    * ``date_limited``: some rule has valid_from/valid_to/dtstart/until, or there are dated
      closures (holidays); the buckets then hold only on the dates the rules apply.
    * ``known``: whether there were open rules at all; without them the answer is UNKNOWN.
    """

    hours: frozenset[int]
    certain: frozenset[int]
    date_limited: bool
    known: bool

    @property
    def conditional(self) -> frozenset[int]:
        """Buckets that may be open but need an exact check."""
        return self.hours - self.certain

    def bitmap(self, which: str = "hours") -> int:
        """The chosen bucket set as a 168-bit integer (bit n = bucket n)."""
        return sum(1 << n for n in getattr(self, which))


def _unconditional(rule: Rule) -> bool:
    """Whether a rule opens the same hours every week with no date limits."""
    return (
        rule.effective_freq == "WEEKLY"
        and (rule.interval or 1) == 1
        and bool(rule.byday)
        and all(ref.ordinal is None for ref in rule.byday)
        and not rule.bymonthday
        and not rule.byweekno
        and not rule.byyearday
        and rule.count is None
        and rule.opens_at is not None
        and rule.closes_at is not None
        and not _date_limited(rule)
    )


def _date_limited(rule: Rule) -> bool:
    """Whether a rule only applies between dates."""
    return any(d is not None for d in (rule.valid_from, rule.valid_to, rule.dtstart, rule.until))


def _rule_weekdays(rule: Rule) -> set[int]:
    """Weekdays a rule can fall on (every weekday for bymonthday-only monthly rules)."""
    days = {ref.weekday for ref in rule.byday}
    if days:
        return days
    if rule.effective_freq == "WEEKLY" and rule.dtstart is not None and not rule.bymonthday:
        return {rule.dtstart.weekday()}
    return set(range(7)) if rule.effective_freq or rule.dtstart else set()


_ONES = b"\x01" * (7 * 24 * 60)


def weekly_open_slots(rules: Iterable[Rule] | ParsedHours) -> WeeklySlots:
    """Hour-of-week buckets of ``rules`` for a fast "open now" prefilter (see WeeklySlots)."""
    rules = _as_rules(rules)
    maybe = bytearray(_WEEK_MINUTES)
    sure = bytearray(_WEEK_MINUTES)
    touched_by_closure = bytearray(_WEEK_MINUTES)
    open_rules = [r for r in rules if not r.is_closure]
    for rule in rules:
        if rule.is_closure and not rule.has_recurrence:
            continue  # a dated closure is a holiday: checked at query time, like HolidayClosure
        start, end = _span_minutes(rule.opens_at, rule.closes_at)
        if not rule.is_closure and (rule.opens_at is None or rule.closes_at is None):
            start, end = 0, _DAY_MINUTES
        unconditional = not rule.is_closure and _unconditional(rule)
        targets = [touched_by_closure] if rule.is_closure else (
            [maybe, sure] if unconditional else [maybe])
        for weekday in _rule_weekdays(rule):
            first = weekday * _DAY_MINUTES + start
            last = weekday * _DAY_MINUTES + end  # may run past the week's end: wrap it
            for lo, hi in ((first, min(last, _WEEK_MINUTES)),
                           (0, max(0, last - _WEEK_MINUTES))):
                if hi > lo:
                    for target in targets:
                        target[lo:hi] = _ONES[: hi - lo]
    hours = set()
    certain = set()
    for bucket in range(168):
        lo, hi = bucket * 60, bucket * 60 + 60
        if maybe.find(1, lo, hi) != -1:
            hours.add(bucket)
            if sure.find(0, lo, hi) == -1 and touched_by_closure.find(1, lo, hi) == -1:
                certain.add(bucket)
    return WeeklySlots(
        hours=frozenset(hours),
        certain=frozenset(certain),
        date_limited=any(_date_limited(r) for r in rules),
        known=bool(open_rules),
    )


def hour_of_week(at: datetime, tz: str | None = None) -> int:
    """The bucket (0-167) of an aware moment in the location's local time."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("'at' must be timezone-aware")
    local = at.astimezone(_zone_for(tz, at))
    return local.weekday() * 24 + local.hour


# --------------------------------------------------------------------------------------------
# Human text
# --------------------------------------------------------------------------------------------

_DASH = "\u2013"


def _clock_text(value: time) -> str:
    """9:00 AM style."""
    hour = value.hour % 12 or 12
    return f"{hour}:{value.minute:02d} {'AM' if value.hour < 12 else 'PM'}"


def _times_text(rule: Rule) -> str:
    """ "9:00 AM–5:00 PM", "24 hours", or "" without times."""
    if rule.opens_at is None and rule.closes_at is None:
        return ""
    if rule.is_all_day or (rule.opens_at is not None and rule.opens_at == rule.closes_at):
        return "24 hours"
    opens = _clock_text(rule.opens_at) if rule.opens_at else "?"
    closes = _clock_text(rule.closes_at) if rule.closes_at else "?"
    return f"{opens}{_DASH}{closes}"


def _weekday_list(weekdays: Iterable[int]) -> str:
    """ "Mon–Fri", "Mon, Wed, Fri", "Daily"."""
    days = sorted(set(weekdays))
    if len(days) == 7:
        return "Daily"
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{_DAY_ABBR[run[0]]}{_DASH}{_DAY_ABBR[run[-1]]}")
        else:
            parts.extend(_DAY_ABBR[d] for d in run)
    return ", ".join(parts)


def _and_list(items: list[str]) -> str:
    """ "a", "a & b", "a, b & c"."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " & " + items[-1]


def _ordinal_text(n: int) -> str:
    """1st, 2nd, 3rd, 4th, Last, 2nd-to-last."""
    if n == -1:
        return "Last"
    if n < 0:
        return f"{_ordinal_text(-n)}-to-last"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(n, "th")
    return f"{n}{suffix}"


def _days_text(rule: Rule) -> str:
    """The day part of a rule's description."""
    plain = [r.weekday for r in rule.byday if r.ordinal is None]
    ordinals: dict[int, list[int]] = {}
    for ref in sorted(rule.byday, key=_ref_order):
        if ref.ordinal is not None:
            ordinals.setdefault(ref.weekday, []).append(ref.ordinal)
    parts = [_weekday_list(plain)] if plain else []
    parts += [
        f"{_and_list([_ordinal_text(n) for n in ns])} {_DAY_ABBR[wd]}"
        for wd, ns in ordinals.items()
    ]
    text = _and_list(parts) if parts else ""
    if rule.bymonthday:
        days = [
            str(n) if n > 0 else ("last day" if n == -1 else f"{-n} days before end")
            for n in rule.bymonthday
        ]
        text = (text + " " if text else "") + f"day {_and_list(days)} of the month"
    if (rule.interval or 1) > 1:
        unit = "weeks" if rule.effective_freq == "WEEKLY" else "months"
        text = f"Every {rule.interval} {unit}: {text}".rstrip()
    return text


def _window_text(rule: Rule) -> str:
    """ " (2024-06-01 to 2024-10-31)", " (from …)", " (until …)" or ""."""
    starts = [d for d in (rule.valid_from, rule.dtstart) if d is not None]
    ends = [d for d in (rule.valid_to, rule.until) if d is not None]
    start, end = (max(starts) if starts else None), (min(ends) if ends else None)
    if start and end:
        return (
            f" ({start.isoformat()} to {end.isoformat()})"
            if start != end
            else f" ({start.isoformat()})"
        )
    if start:
        return f" (from {start.isoformat()})"
    return f" (until {end.isoformat()})" if end else ""


def describe(rules: Iterable[Rule] | ParsedHours) -> str:
    """A short human text, e.g. "Mon–Fri 9:00 AM–5:00 PM; 2nd & 4th Sat 10:00 AM–12:00 PM"."""
    rules = _as_rules(rules)
    parts: dict[tuple[bool, str, str], list[str]] = {}
    order: dict[tuple[bool, str, str], tuple[Any, ...]] = {}
    for rule in rules:
        key = (rule.is_closure, _days_text(rule), _window_text(rule))
        times = _times_text(rule)
        texts = parts.setdefault(key, [])
        if times and times not in texts:
            texts.append(times)
        first = min((_ref_order(r) for r in rule.byday), default=(7, 0))
        order.setdefault(key, (rule.is_closure, first, rule.effective_freq != "WEEKLY"))
    out = []
    for key in sorted(parts, key=lambda k: order[k]):
        closure, days, window = key
        body = " ".join(p for p in (days, ", ".join(parts[key])) if p)
        if closure:
            body = "Closed " + (body or "")
        out.append((body.strip() + window).strip())
    return "; ".join(part for part in out if part)
