"""Your notifications (who may call what: `service.access`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.deps import CurrentUser, SessionDep
from service.notifications import service as notifications
from service.notifications.schemas import NotificationOut, NotificationPage

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


@router.get("", response_model=NotificationPage, summary="Your notifications")
def list_notifications(
    user: CurrentUser,
    session: SessionDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> NotificationPage:
    """The messages Signpost queued for you (new referrals, partners' answers, follow-ups
    due), newest first, and whether each email went out."""
    total, rows = notifications.list_own(session, actor=user, page=page, per_page=per_page)
    return NotificationPage(total=total, page=page, per_page=per_page,
                            items=[NotificationOut(**r) for r in rows])
