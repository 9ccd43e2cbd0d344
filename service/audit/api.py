"""The audit log, for admins: read and export (CSV). Nothing can change it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AwareDatetime

from service.audit import service as audit
from service.audit.schemas import AuditPage
from service.deps import CurrentUser, WriteSessionDep

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

CSV_LIMIT = 100_000


@router.get("", response_model=AuditPage, summary="Read or export the audit log",
            responses={200: {"content": {"text/csv": {}}}})
def list_events(
    user: CurrentUser,
    session: WriteSessionDep,
    action: Annotated[str | None, Query(max_length=64)] = None,
    entity_type: Annotated[str | None, Query(max_length=32)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    user_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    since: Annotated[AwareDatetime | None, Query(description="From (inclusive).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="To (exclusive).")] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
    format: Annotated[Literal["json", "csv"], Query(
        description=f"csv: every matching event (up to {CSV_LIMIT:,}) as a file.")] = "json",
) -> AuditPage | Response:
    """Events newest first, filtered. Reading the log is itself audited."""
    filters = {"action": action, "entity_type": entity_type, "entity_id": entity_id,
               "user_id": user_id, "since": since, "until": until}
    if format == "csv":
        total, rows = audit.list_events(session, **filters, page=1, per_page=CSV_LIMIT)
    else:
        total, rows = audit.list_events(session, **filters, page=page, per_page=per_page)
    audit.record(session, actor=user, action=f"audit.{'export' if format == 'csv' else 'read'}",
                 entity_type="audit_event",
                 changes={k: {"old": None, "new": str(v)} for k, v in filters.items()
                          if v is not None} or None)
    if format == "csv":
        return Response(audit.to_csv(rows), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": 'attachment; filename="signpost-audit.csv"'})
    return AuditPage(total=total, page=page, per_page=per_page, items=rows)
