"""Referrals: make and send them, answer them (partners), follow up (who may call what:
`service.access`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from service.deps import CurrentUser, SessionDep, SettingsDep, WriteSessionDep
from service.referrals import fhir
from service.referrals import service as referrals
from service.referrals.schemas import (
    FollowUpIn,
    ReferralCreate,
    ReferralDetail,
    ReferralPage,
    ReferralSummary,
    Status,
    TransitionIn,
    WorkQueue,
    WorkQueueItem,
)

router = APIRouter(prefix="/api/v1/referrals", tags=["referrals"])

ReferralId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", response_model=ReferralDetail, status_code=201, summary="Make a referral")
def create_referral(body: ReferralCreate, user: CurrentUser, session: SessionDep,
                    settings: SettingsDep) -> ReferralDetail:
    """Refer one of your agency's clients to a service or one of its sites: a draft, or sent
    at once with `send` (which needs the client's consent to share with the organization,
    unless the referral is only logged)."""
    return ReferralDetail(**referrals.create_referral(
        session, actor=user, data=body, policy=referrals.FollowUpPolicy.from_settings(settings),
        public_base_url=settings.public_base_url))


@router.get("", response_model=ReferralPage, summary="List referrals")
def list_referrals(
    user: CurrentUser,
    session: WriteSessionDep,
    status: Annotated[Status | None, Query()] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> ReferralPage:
    """Your agency's referrals, or (partners) the referrals sent to your organizations; newest
    first (the read is audited)."""
    total, rows = referrals.list_referrals(session, actor=user, status=status, page=page,
                                           per_page=per_page)
    return ReferralPage(total=total, page=page, per_page=per_page,
                        items=[ReferralSummary(**r) for r in rows])


@router.get("/work-queue", response_model=WorkQueue, summary="Referrals that need a look")
def work_queue(user: CurrentUser, session: WriteSessionDep,
               settings: SettingsDep) -> WorkQueue:
    """Your agency's overdue follow-ups and referrals with no partner answer yet."""
    policy = referrals.FollowUpPolicy.from_settings(settings)
    items = referrals.work_queue(session, actor=user, policy=policy)
    return WorkQueue(follow_up_days=dict(policy.days), idle_days=policy.idle_days,
                     items=[WorkQueueItem(**i) for i in items])


@router.get("/{referral_id}", response_model=ReferralDetail, summary="Read a referral")
def get_referral(referral_id: ReferralId, user: CurrentUser,
                 session: WriteSessionDep) -> ReferralDetail:
    """One referral with its version and history, and what you may see of the client (the
    read is audited)."""
    return ReferralDetail(**referrals.get_referral(session, actor=user,
                                                   referral_id=referral_id))


@router.post("/{referral_id}/transitions", response_model=ReferralDetail,
             summary="Move a referral to another status")
def transition(referral_id: ReferralId, body: TransitionIn, user: CurrentUser,
               session: SessionDep, settings: SettingsDep) -> ReferralDetail:
    """Send, accept, reject, start, hold, complete, fail, cancel. `expected_version` is the
    version you last read: 409 if the referral changed since."""
    return ReferralDetail(**referrals.transition(
        session, actor=user, referral_id=referral_id, data=body,
        policy=referrals.FollowUpPolicy.from_settings(settings),
        public_base_url=settings.public_base_url))


@router.post("/{referral_id}/follow-ups", response_model=ReferralDetail, status_code=201,
             summary="Record a follow-up")
def follow_up(referral_id: ReferralId, body: FollowUpIn, user: CurrentUser,
              session: SessionDep, settings: SettingsDep) -> ReferralDetail:
    """Whether the client got help, as the case manager learned when checking back."""
    return ReferralDetail(**referrals.record_follow_up(
        session, actor=user, referral_id=referral_id, data=body,
        policy=referrals.FollowUpPolicy.from_settings(settings)))


@router.get("/{referral_id}/fhir", summary="Export a referral as FHIR R4",
            response_class=JSONResponse,
            responses={200: {"content": {"application/fhir+json": {}},
                             "description": "A FHIR R4 Bundle (collection)."}})
def export_fhir(referral_id: ReferralId, user: CurrentUser,
                session: WriteSessionDep) -> JSONResponse:
    """The referral as a FHIR R4 Bundle holding a ServiceRequest + Task pair in the shape of
    the HL7 SDOH Clinical Care guide (TaskForReferralManagement), with only what you may see
    of the client (a partner sees initials until accepting). The export is audited."""
    return JSONResponse(fhir.referral_bundle(session, actor=user, referral_id=referral_id),
                        media_type="application/fhir+json")
