"""Clients of the caller's agency, their consents and caseloads (who may call what:
`service.access`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from service.clients import service as clients
from service.clients.schemas import (
    Caseload,
    Caseloads,
    ClientCreate,
    ClientCreated,
    ClientDetail,
    ClientPage,
    ClientPublic,
    ClientReassign,
    ClientWarning,
    ConsentCreate,
    ConsentPublic,
)
from service.deps import CurrentUser, SessionDep, WriteSessionDep

router = APIRouter(prefix="/api/v1/clients", tags=["clients"])
caseloads_router = APIRouter(prefix="/api/v1/caseloads", tags=["clients"])

ClientId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", response_model=ClientCreated, status_code=201, summary="Add a client")
def create_client(body: ClientCreate, user: CurrentUser, session: SessionDep) -> ClientCreated:
    """A new client of your agency; warns (without refusing) when the same name and date of
    birth are already on file."""
    row, duplicates = clients.create_client(session, actor=user, data=body)
    warnings = [ClientWarning(
        code="possible_duplicate", client_ids=duplicates,
        message="a client with the same name and date of birth is already on file in your "
                "agency; check it is not the same person")] if duplicates else []
    return ClientCreated(client=ClientPublic(**row), warnings=warnings)


@router.get("", response_model=ClientPage, summary="List your agency's clients")
def list_clients(
    user: CurrentUser,
    session: WriteSessionDep,
    agency_id: Annotated[int | None, Query(ge=1, le=2**31 - 1,
                                            description="Admins: the agency to read.")]
    = None,
    mine: Annotated[bool, Query(description="Only the clients on your own caseload.")] = False,
    page: Annotated[int, Query(ge=1, le=100000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=100)] = 25,
) -> ClientPage:
    """Your agency's clients (with `mine=true`, your own caseload), oldest first (the read is
    audited)."""
    total, rows = clients.list_clients(session, actor=user, agency_id=agency_id, mine=mine,
                                       page=page, per_page=per_page)
    return ClientPage(total=total, page=page, per_page=per_page,
                      items=[ClientPublic(**r) for r in rows])


@router.get("/{client_id}", response_model=ClientDetail, summary="Read a client")
def get_client(client_id: ClientId, user: CurrentUser,
               session: WriteSessionDep) -> ClientDetail:
    """One client of your agency with their consents (the read is audited)."""
    return ClientDetail(**clients.get_client(session, actor=user, client_id=client_id))


@router.post("/{client_id}/consents", response_model=ConsentPublic, status_code=201,
             summary="Record a consent")
def add_consent(client_id: ClientId, body: ConsentCreate, user: CurrentUser,
                session: SessionDep) -> ConsentPublic:
    """What the client agreed may be shared, with whom, why and until when. Part 2
    consents carry the re-disclosure notice."""
    return ConsentPublic(**clients.add_consent(session, actor=user, client_id=client_id,
                                               data=body))


@router.post("/{client_id}/consents/{consent_id}/revoke", response_model=ConsentPublic,
             summary="Revoke a consent")
def revoke_consent(client_id: ClientId, consent_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
                   user: CurrentUser, session: SessionDep) -> ConsentPublic:
    """The client withdrew this consent; it covers nothing from now on."""
    return ConsentPublic(**clients.revoke_consent(session, actor=user, client_id=client_id,
                                                  consent_id=consent_id))


@router.post("/{client_id}/reassign", response_model=ClientPublic,
             summary="Move a client to another caseload",
             responses={422: {"description": "case_manager_id is not an active case manager or "
                                             "supervisor of your agency"}})
def reassign_client(client_id: ClientId, body: ClientReassign, user: CurrentUser,
                    session: SessionDep) -> ClientPublic:
    """Supervisors: put a client of your agency on one of its staff's caseload (audited)."""
    return ClientPublic(**clients.reassign_client(session, actor=user, client_id=client_id,
                                                  case_manager_id=body.case_manager_id))


@caseloads_router.get("", response_model=Caseloads, summary="Your agency's caseloads")
def list_caseloads(user: CurrentUser, session: WriteSessionDep) -> Caseloads:
    """Supervisors: per case manager, their clients, open cases, open referrals and overdue
    follow-ups; the unassigned clients last (the read is audited)."""
    now = datetime.now(UTC)
    rows = clients.caseloads(session, actor=user, now=now)
    return Caseloads(agency_id=user.agency_id, as_of=now, items=[Caseload(**r) for r in rows])
