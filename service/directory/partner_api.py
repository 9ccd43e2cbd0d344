"""JSON API of partner listing updates: edit and confirm listings, review edits, stale listings
(who may call what: `service.access`; the logic: `service.directory.listing_edits`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response

from service.deps import CurrentUser, SessionDep, SettingsDep
from service.directory import listing_edits
from service.directory.schemas import (
    DecisionIn,
    EditStatus,
    ListingEditOut,
    ListingEditPage,
    ListingEditResult,
    LocationEdit,
    PartnerListingPage,
    RejectionIn,
    ServiceEdit,
    StalePage,
    VerifyResult,
)
from service.search.api import BackendDep, GeocoderDep

router = APIRouter(prefix="/api/v1", tags=["listing updates"])

ServiceId = Annotated[str, Path(max_length=64)]
LocationId = Annotated[str, Path(max_length=64)]
EditId = Annotated[int, Path(ge=1, le=2**31 - 1)]
IfMatch = Annotated[str | None, Header(
    max_length=100, description='The ETag (or updated_at) you read: refused with 409 when the '
                                'listing changed since. "*" matches any version.')]
PENDING = {202: {"model": ListingEditResult,
                 "description": "Kept for an admin's approval (the listing is unchanged)."}}


def _if_match(value: str | None) -> datetime | None:
    """The version in an If-Match header (`"<updated_at>"`, weak or strong), or None."""
    if value is None or value.strip() == "*":
        return None
    text = value.strip().removeprefix("W/").strip('"')
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise listing_edits.Invalid("If-Match is not a version this API gave out (an ETag or "
                                    "an updated_at)", field="if-match") from None


def _answer(response: Response, result: dict) -> ListingEditResult:
    out = ListingEditResult(**result)
    if out.edit is not None and out.edit.status == "pending":
        response.status_code = 202
    response.headers["ETag"] = f'"{out.updated_at.isoformat()}"'
    return out


@router.patch("/services/{service_id}", response_model=ListingEditResult,
              summary="Edit a service listing", responses=PENDING)
def edit_service(service_id: ServiceId, body: ServiceEdit, user: CurrentUser,
                 session: SessionDep, settings: SettingsDep, search: BackendDep,
                 response: Response, if_match: IfMatch = None) -> ListingEditResult:
    """Change a service of your organization: details, status, eligibility, hours, and per site
    capacity and hours. Searches show it at once; with partner approval on, it waits (202)."""
    return _answer(response, listing_edits.edit_service(
        session, actor=user, service_id=service_id, data=body,
        expected=[("if-match", _if_match(if_match))],
        require_approval=settings.partner_edits_require_approval, search=search))


@router.patch("/locations/{location_id}", response_model=ListingEditResult,
              summary="Edit a location", responses=PENDING)
def edit_location(location_id: LocationId, body: LocationEdit, user: CurrentUser,
                  session: SessionDep, settings: SettingsDep, search: BackendDep,
                  geocoder: GeocoderDep, response: Response,
                  if_match: IfMatch = None) -> ListingEditResult:
    """Change a location of your organization: name, addresses (which move its point), phones,
    accessibility."""
    return _answer(response, listing_edits.edit_location(
        session, actor=user, location_id=location_id, data=body,
        expected=[("if-match", _if_match(if_match))],
        require_approval=settings.partner_edits_require_approval, search=search,
        geocoder=geocoder))


@router.post("/services/{service_id}/verify", response_model=VerifyResult,
             summary="Confirm a listing is still accurate")
def verify_service(service_id: ServiceId, user: CurrentUser, session: SessionDep,
                   search: BackendDep) -> VerifyResult:
    """"Still accurate": sets verified_at to now, by you."""
    return VerifyResult(**listing_edits.verify_service(session, actor=user,
                                                       service_id=service_id, search=search))


@router.get("/listing-edits", response_model=ListingEditPage, summary="List listing edits")
def list_edits(
    user: CurrentUser,
    session: SessionDep,
    status: Annotated[EditStatus | None, Query(description="Only edits in this status.")] = None,
    service_id: Annotated[str | None, Query(max_length=64)] = None,
    location_id: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> ListingEditPage:
    """Edits, newest first: all of them (admins) or your organizations' (partners)."""
    total, items = listing_edits.list_edits(session, actor=user, status=status,
                                            service_id=service_id, location_id=location_id,
                                            page=page, per_page=per_page)
    return ListingEditPage(total=total, page=page, per_page=per_page, items=items)


@router.post("/listing-edits/{edit_id}/approve", response_model=ListingEditOut,
             summary="Approve a pending edit")
def approve_edit(edit_id: EditId, user: CurrentUser, session: SessionDep, search: BackendDep,
                 body: DecisionIn | None = None) -> ListingEditOut:
    """Apply a pending edit (409 if the listing's fields changed since it was proposed)."""
    return ListingEditOut(**listing_edits.approve(session, actor=user, edit_id=edit_id,
                                                  reason=body.reason if body else None,
                                                  search=search))


@router.post("/listing-edits/{edit_id}/reject", response_model=ListingEditOut,
             summary="Reject a pending edit")
def reject_edit(edit_id: EditId, body: RejectionIn, user: CurrentUser,
                session: SessionDep) -> ListingEditOut:
    """Discard a pending edit, saying why."""
    return ListingEditOut(**listing_edits.reject(session, actor=user, edit_id=edit_id,
                                                 reason=body.reason))


@router.post("/listing-edits/{edit_id}/revert", response_model=ListingEditOut,
             summary="Revert an applied edit")
def revert_edit(edit_id: EditId, user: CurrentUser, session: SessionDep, search: BackendDep,
                body: DecisionIn | None = None) -> ListingEditOut:
    """Restore the values an applied edit replaced (409, naming the fields, if they changed
    again since)."""
    return ListingEditOut(**listing_edits.revert(session, actor=user, edit_id=edit_id,
                                                 reason=body.reason if body else None,
                                                 search=search))


@router.get("/listings/stale", response_model=StalePage, summary="Listings due a check")
def stale_listings(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> StalePage:
    """Services not verified within SIGNPOST_STALE_LISTING_DAYS (or never), least recently
    verified first: all (admins) or your organizations' (partners)."""
    total, items = listing_edits.stale_listings(session, actor=user,
                                                stale_days=settings.stale_listing_days,
                                                page=page, per_page=per_page)
    return StalePage(total=total, page=page, per_page=per_page,
                     stale_after_days=settings.stale_listing_days, items=items)


@router.get("/partner/listings", response_model=PartnerListingPage,
            summary="Your organizations' listings")
def partner_listings(
    user: CurrentUser,
    session: SessionDep,
    settings: SettingsDep,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> PartnerListingPage:
    """The services of your organizations: sites, status, capacity, last verified, edits
    awaiting approval."""
    total, items = listing_edits.partner_listings(session, actor=user,
                                                  stale_days=settings.stale_listing_days,
                                                  page=page, per_page=per_page)
    return PartnerListingPage(total=total, page=page, per_page=per_page, items=items)
