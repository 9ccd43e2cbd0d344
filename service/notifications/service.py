"""Queue notifications in the caller's transaction, and read a user's own. Functions flush; the
caller owns the commit.

Who hears about what:

- a referral is sent (requested): every active partner user linked to the receiving
  organization (only those whose link names no sites, or names the referral's site);
  a logged referral (provider not on Signpost) has no partner inbox and notifies nobody;
- a partner answers (accepted, rejected, on-hold, failed, completed): the staff member who
  sent the referral;
- a follow-up falls due: the staff member who sent the referral, once per due date (queued by
  the sender's delivery pass, `queue_follow_ups_due`).

A message carries no client name, need, note or status: only that there is something to see
and a link to sign in. A user without an email address still gets the row (they read it with
`GET /api/v1/notifications`); the sender never tries to mail it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, insert, select
from sqlalchemy.orm import Session

from service.accounts.service import Principal
from service.accounts.tables import AGENCY_ROLES, app_user, user_organization
from service.config import Settings
from service.notifications.tables import notification
from service.referrals.tables import referral, referral_event

DEFAULT_BASE_URL: str = Settings.model_fields["public_base_url"].default
ANSWERS = frozenset({"accepted", "rejected", "on-hold", "failed", "completed"})
NO_ADDRESS = "the recipient has no email address: read it on Signpost"

# kind -> (subject, body); the body's {link} is the referral's page. Nothing else goes in.
MESSAGES: dict[str, tuple[str, str]] = {
    "referral_sent": ("New referral on Signpost",
                      "You have a new referral on Signpost. Sign in to see it: {link}"),
    "referral_answered": ("Referral update on Signpost",
                          "A referral you sent has an update on Signpost. Sign in to see it: "
                          "{link}"),
    "follow_up_due": ("Follow-up due on Signpost",
                      "A referral you sent is due for a follow-up on Signpost. Sign in to see "
                      "it: {link}"),
}
FOOTER = ("\n\nThis message holds no details about anyone: they stay on Signpost. You get it "
          "because you have a Signpost account.\n")


def referral_link(base_url: str | None, referral_id: int) -> str:
    """The referral's page, as users reach the app."""
    return f"{(base_url or DEFAULT_BASE_URL).rstrip('/')}/referrals/{referral_id}"


def message(kind: str, *, referral_id: int, base_url: str | None) -> tuple[str, str]:
    """The subject and body of a `kind` message about one referral."""
    subject, body = MESSAGES[kind]
    return subject, body.format(link=referral_link(base_url, referral_id)) + FOOTER


def enqueue(session: Session, *, user_ids: Iterable[int], kind: str, referral_id: int,
            base_url: str | None, now: datetime | None = None) -> list[int]:
    """One message to each of the active `user_ids`; the new notification ids."""
    ids = sorted(set(user_ids))
    if not ids:
        return []
    now = now or datetime.now(UTC)
    users = session.execute(select(app_user.c.id, app_user.c.email)
                            .where(app_user.c.id.in_(ids)).where(app_user.c.is_active)
                            .order_by(app_user.c.id)).all()
    subject, body = message(kind, referral_id=referral_id, base_url=base_url)
    created = []
    for user in users:
        created.append(session.execute(insert(notification).values(
            recipient_user_id=user.id, recipient_address=user.email, kind=kind,
            referral_id=referral_id, subject=subject, body=body, created_at=now, attempts=0,
            next_attempt_at=now if user.email else None,
            last_error=None if user.email else NO_ADDRESS,
        ).returning(notification.c.id)).scalar_one())
    return created


def partner_recipients(session: Session, *, organization_id: str,
                       location_id: str | None) -> list[int]:
    """Active partner users who see this organization's (and site's) referral inbox."""
    rows = session.execute(
        select(user_organization.c.user_id, user_organization.c.location_ids)
        .join(app_user, app_user.c.id == user_organization.c.user_id)
        .where(user_organization.c.organization_id == organization_id)
        .where(app_user.c.role == "partner").where(app_user.c.is_active)).all()
    return [r.user_id for r in rows
            if not r.location_ids or (location_id is not None and location_id in r.location_ids)]


def referral_sender(session: Session, *, referral_id: int) -> int | None:
    """The staff member who last sent the referral (else who made it), if still staff."""
    sent_by = session.execute(
        select(referral_event.c.actor_user_id)
        .where(referral_event.c.referral_id == referral_id)
        .where(referral_event.c.to_status == "requested")
        .where(referral_event.c.kind == "transition")
        .order_by(referral_event.c.seq.desc()).limit(1)).scalar()
    if sent_by is None:
        sent_by = session.execute(select(referral.c.created_by)
                                  .where(referral.c.id == referral_id)).scalar()
    if sent_by is None:
        return None
    role = session.execute(select(app_user.c.role).where(app_user.c.id == sent_by)).scalar()
    return sent_by if role in AGENCY_ROLES else None


def on_referral_sent(session: Session, *, row: Mapping[str, Any],
                     base_url: str | None) -> list[int]:
    """Tell the receiving partners a referral arrived (nobody for a logged referral)."""
    if row["is_logged"]:
        return []
    users = partner_recipients(session, organization_id=row["organization_id"],
                               location_id=row["location_id"])
    return enqueue(session, user_ids=users, kind="referral_sent", referral_id=row["id"],
                   base_url=base_url)


def on_referral_answered(session: Session, *, row: Mapping[str, Any],
                         base_url: str | None) -> list[int]:
    """Tell the staff member who sent the referral that the partner answered."""
    sender = referral_sender(session, referral_id=row["id"])
    return enqueue(session, user_ids=[] if sender is None else [sender],
                   kind="referral_answered", referral_id=row["id"], base_url=base_url)


def queue_follow_ups_due(session: Session, *, base_url: str | None,
                         now: datetime | None = None) -> int:
    """A follow_up_due message for each referral whose follow-up is due and not yet announced
    for that due date (a later due date is announced again); how many were queued."""
    now = now or datetime.now(UTC)
    announced = exists().where(and_(
        notification.c.referral_id == referral.c.id, notification.c.kind == "follow_up_due",
        notification.c.created_at >= referral.c.follow_up_due_at))
    due = session.execute(
        select(referral.c.id).where(referral.c.follow_up_due_at.is_not(None))
        .where(referral.c.follow_up_due_at <= now)
        .where(referral.c.status.not_in(("draft", "cancelled", "entered-in-error")))
        .where(~announced).order_by(referral.c.id)).scalars().all()
    queued = 0
    for referral_id in due:
        sender = referral_sender(session, referral_id=referral_id)
        if sender is None:
            continue
        queued += len(enqueue(session, user_ids=[sender], kind="follow_up_due",
                              referral_id=referral_id, base_url=base_url, now=now))
    return queued


def delivery_status(row: Mapping[str, Any]) -> str:
    """sent, pending (the sender will try), or not_sent (no address, or it gave up)."""
    if row["sent_at"] is not None:
        return "sent"
    return "pending" if row["next_attempt_at"] is not None else "not_sent"


def list_own(session: Session, *, actor: Principal, page: int = 1,
             per_page: int = 25) -> tuple[int, list[dict[str, Any]]]:
    """A page of the actor's own notifications, newest first."""
    where = notification.c.recipient_user_id == actor.user_id
    total = session.execute(select(func.count()).select_from(notification).where(where)
                            ).scalar_one()
    rows = session.execute(select(notification).where(where)
                           .order_by(notification.c.id.desc()).limit(per_page)
                           .offset((page - 1) * per_page)).mappings().all()
    return total, [{**{k: r[k] for k in ("id", "kind", "referral_id", "subject", "body",
                                         "created_at", "sent_at")},
                    "status": delivery_status(r)} for r in rows]


def pending_filter(now: datetime) -> ColumnElement[bool]:
    """Rows the sender should try now."""
    return and_(notification.c.sent_at.is_(None), notification.c.next_attempt_at.is_not(None),
                notification.c.next_attempt_at <= now)
