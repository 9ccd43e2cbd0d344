"""Reports (who may call what: `service.access`)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from service.deps import CurrentUser, WriteSessionDep
from service.reports import service as reports
from service.reports.schemas import ReferralReport

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])


@router.get("/referrals", response_model=ReferralReport, summary="Referral report",
            responses={200: {"content": {"text/csv": {}}}})
def referral_report(
    user: CurrentUser,
    session: WriteSessionDep,
    date_from: Annotated[date | None, Query(alias="from", description=(
        "First day sent (inclusive, UTC), e.g. 2026-01-01."))] = None,
    date_to: Annotated[date | None, Query(alias="to", description=(
        "Last day sent (inclusive, UTC)."))] = None,
    format: Annotated[Literal["json", "csv"], Query(description=(
        "csv: one row per value (dimension, key, label, measure, value)."))] = "json",
) -> ReferralReport | Response:
    """Counts by status, need, partner and month sent; partners' median time to answer; the
    closed-loop rate by month sent; unmet needs by category and area. Admins see every
    referral, agency staff their agency's, partners those sent to their organizations. Counts
    only, no client; the read is audited."""
    report = reports.referral_report(session, actor=user, date_from=date_from, date_to=date_to)
    if format == "csv":
        return Response(reports.to_csv(report), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="signpost-referral-report.csv"'})
    return ReferralReport(**report)
