"""Referral reports: counts, partners' response times, the closed-loop rate and unmet needs.

A report covers the referrals sent (`sent_at`) in a period that the actor may see, by the same
scope as reading referrals (`service.referrals.service.scope`). It holds counts only, never a
client; reading one is audited all the same. Definitions are in `service.reports.schemas`.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.audit import service as audit
from service.directory.categories import category_tree
from service.directory.tables import hsds_tables, location, organization
from service.errors import BadRequest
from service.referrals import service as referrals
from service.referrals.tables import referral, referral_event

LEFT_OUT = frozenset({"cancelled", "entered-in-error"})
UNMET = frozenset({"rejected", "failed"})
OUTCOMES = frozenset({"got_help", "did_not_get_help"})
CSV_COLUMNS = ("dimension", "key", "label", "measure", "value")
address = hsds_tables["address"]


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _need_name(category_id: str) -> str:
    category = category_tree().get(category_id)
    return category.name if category else category_id


def _month(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m")


def _rows(session: Session, *, actor: Principal, date_from: date | None,
          date_to: date | None) -> tuple[list[dict[str, Any]], Any]:
    """The referrals in the report, and the query of their ids."""
    conditions = [referral.c.sent_at.is_not(None)]
    allowed = referrals.scope(session, actor=actor)
    if allowed is not None:
        conditions.append(allowed)
    if date_from is not None:
        conditions.append(referral.c.sent_at >= _start(date_from))
    if date_to is not None:
        conditions.append(referral.c.sent_at < _start(date_to + timedelta(days=1)))
    query = (select(referral.c.id, referral.c.client_id, referral.c.organization_id,
                    referral.c.location_id, referral.c.need_category_id, referral.c.status,
                    referral.c.sent_at, referral.c.follow_up_outcome,
                    organization.c.name.label("organization_name"))
             .join(organization, organization.c.id == referral.c.organization_id)
             .where(*conditions).order_by(referral.c.id))
    ids = select(referral.c.id).where(*conditions)
    return [dict(r) for r in session.execute(query).mappings()], ids


def _first_answers(session: Session, *, ids: Any) -> dict[int, datetime]:
    """Each referral's first partner move (by the table of moves) after it was sent."""
    events = session.execute(
        select(referral_event.c.referral_id, referral_event.c.from_status,
               referral_event.c.to_status, referral_event.c.at)
        .where(referral_event.c.referral_id.in_(ids))
        .where(referral_event.c.kind == "transition")
        .order_by(referral_event.c.referral_id, referral_event.c.seq)).all()
    first: dict[int, datetime] = {}
    sent: set[int] = set()
    for e in events:
        if e.to_status == "requested":
            sent.add(e.referral_id)
            continue
        side = referrals.TRANSITIONS.get((e.from_status, e.to_status))
        if e.referral_id in sent and side == referrals.PARTNER and e.referral_id not in first:
            first[e.referral_id] = e.at
    return first


def _areas(session: Session, *, location_ids: Iterable[str]) -> dict[str, str]:
    """location id -> its postal code (the city for a confidential site or one without a
    postal code)."""
    wanted = sorted(set(location_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(address.c.location_id, address.c.postal_code, address.c.city,
               address.c.address_type, location.c.is_confidential)
        .join(location, location.c.id == address.c.location_id)
        .where(address.c.location_id.in_(wanted))
        .order_by(address.c.location_id, address.c.id)).all()
    found: dict[str, str] = {}
    for r in rows:
        postal = None if r.is_confidential else (r.postal_code or "").strip() or None
        area = postal or (r.city or "").strip() or None
        if area and (r.location_id not in found or r.address_type == "physical"):
            found[r.location_id] = area
    return found


def _counts(values: Iterable[str], names: Mapping[str, str] | None = None,
            *, by_key: bool = False) -> list[dict[str, Any]]:
    counted = Counter(values)
    order = sorted(counted) if by_key else sorted(counted, key=lambda k: (-counted[k], k))
    return [{"key": k, "name": (names or {}).get(k, k), "count": counted[k]} for k in order]


def _closed_loop(key: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    counted = [r for r in rows if r["status"] not in LEFT_OUT]
    closed = [r for r in counted
              if r["status"] == "completed" or r["follow_up_outcome"] in OUTCOMES]
    return {"key": key, "sent": len(rows), "left_out": len(rows) - len(counted),
            "counted": len(counted), "closed": len(closed),
            "rate": round(len(closed) / len(counted), 4) if counted else None,
            "partner_closed": sum(r["status"] == "completed" for r in counted),
            "client_got_help": sum(r["follow_up_outcome"] == "got_help" for r in counted)}


def _unmet(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    needs: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        if r["status"] not in LEFT_OUT:
            needs[(r["client_id"], r["need_category_id"])].append(r)
    unmet = [attempts for attempts in needs.values()
             if all(a["status"] in UNMET for a in attempts)]
    areas = _areas(session, location_ids=[a["location_id"] for attempts in unmet
                                          for a in attempts if a["location_id"]])
    counted: Counter[tuple[str, str]] = Counter()
    for attempts in unmet:
        latest = max(attempts, key=lambda a: (a["sent_at"], a["id"]))
        counted[(latest["need_category_id"], areas.get(latest["location_id"], "unknown"))] += 1
    return [{"need_id": need, "need_name": _need_name(need), "area": area, "count": n}
            for (need, area), n in sorted(counted.items(), key=lambda i: (-i[1], i[0]))]


def referral_report(session: Session, *, actor: Principal, date_from: date | None = None,
                    date_to: date | None = None) -> dict[str, Any]:
    """The report over referrals sent from `date_from` to `date_to` (inclusive, UTC days) that
    the actor may see; the read is audited."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise BadRequest("the period ends before it starts: 'to' must not be before 'from'",
                         field="to")
    rows, ids = _rows(session, actor=actor, date_from=date_from, date_to=date_to)
    answers = _first_answers(session, ids=ids)
    hours = [(answers[r["id"]] - r["sent_at"]).total_seconds() / 3600 for r in rows
             if r["id"] in answers]
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_month[_month(r["sent_at"])].append(r)
    report = {
        "from": date_from, "to": date_to, "referrals_sent": len(rows),
        "by_status": _counts(r["status"] for r in rows),
        "by_need": _counts((r["need_category_id"] for r in rows),
                           {r["need_category_id"]: _need_name(r["need_category_id"])
                            for r in rows}),
        "by_partner": _counts((r["organization_id"] for r in rows),
                              {r["organization_id"]: r["organization_name"] or ""
                               for r in rows}),
        "by_month": _counts((_month(r["sent_at"]) for r in rows), by_key=True),
        "response": {
            "responded": len(hours),
            "awaiting": sum(r["status"] == "requested" and r["id"] not in answers
                            for r in rows),
            "median_hours": round(statistics.median(hours), 2) if hours else None},
        "closed_loop": _closed_loop("all", rows),
        "closed_loop_by_month": [_closed_loop(m, by_month[m]) for m in sorted(by_month)],
        "unmet_needs": _unmet(session, rows),
    }
    audit.record(session, actor=actor, action="report.referrals", entity_type="report",
                 changes={"period": {"old": None, "new": [_plain(date_from), _plain(date_to)]},
                          "referrals_counted": {"old": None, "new": len(rows)}})
    return report


def _plain(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def to_csv(report: Mapping[str, Any]) -> str:
    """The report as CSV, one row per value: dimension, key, label, measure, value."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)

    def row(*cells: Any) -> None:
        writer.writerow([_cell(c) for c in cells])

    row("period", "from", "", "date", _plain(report["from"]))
    row("period", "to", "", "date", _plain(report["to"]))
    row("referrals", "all", "", "sent", report["referrals_sent"])
    for dimension in ("status", "need", "partner", "month"):
        for c in report[f"by_{dimension}"]:
            row(dimension, c["key"], c["name"], "count", c["count"])
    for measure in ("responded", "awaiting", "median_hours"):
        row("response", "all", "", measure, report["response"][measure])
    for loop in (report["closed_loop"], *report["closed_loop_by_month"]):
        for measure in ("sent", "left_out", "counted", "closed", "rate", "partner_closed",
                        "client_got_help"):
            row("closed_loop", loop["key"], "", measure, loop[measure])
    for need in report["unmet_needs"]:
        row("unmet_need", f"{need['need_id']}/{need['area']}",
            f"{need['need_name']} in {need['area']}", "count", need["count"])
    return out.getvalue()
