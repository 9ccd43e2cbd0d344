"""The HSDS 3.1 API under /hsds/: read-only, paged as the Open Referral spec says, so any
Open Referral tool can read the directory (see docs/hsds-profile.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from service.deps import DbDep, SessionDep
from service.hsds_api import service as hsds
from service.hsds_api.guard import HsdsRoute
from service.hsds_api.schemas import ApiInfo, Page

router = APIRouter(prefix="/hsds", tags=["hsds"], route_class=HsdsRoute)

SearchQ = Annotated[str | None, Query(max_length=200, description="Words that must all appear "
                                      "(name, alternate name or description).")]
PageQ = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page number.")]
PerPageQ = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
FormatQ = Annotated[Literal["json", "ndjson"], Query(
    description="`ndjson`: every matching item, one per line, without paging.")]
TermQ = Annotated[str | None, Query(max_length=64, description="Only records with this "
                                    "taxonomy term (an attribute).")]
TaxonomyQ = Annotated[str | None, Query(max_length=64, description="Only records with a term "
                                        "of this taxonomy.")]
OrganizationQ = Annotated[str | None, Query(max_length=64, description="Only services of this "
                                            "organization.")]
ModifiedQ = Annotated[datetime | None, Query(description="Only records changed on or after "
                                             "this time (ISO 8601; UTC if no offset).")]
FullQ = Annotated[bool, Query(description="Fully nested objects instead of list items.")]
FullServiceQ = Annotated[bool, Query(description="Nest the organization's services in full.")]
IdPath = Annotated[str, Path(max_length=64)]


def get_geocoder(request: Request):  # noqa: ANN201
    """The app's geocoder (places a postcode for `proximity`)."""
    return request.app.state.geocoder


GeocoderDep = Annotated[object, Depends(get_geocoder)]


def _answer(session: SessionDep, db: DbDep, listing: hsds.Listing, format_: str, page: int,
            per_page: int) -> Response:
    if format_ == "ndjson":
        return StreamingResponse(hsds.stream(db, listing), media_type="application/x-ndjson")
    return _json(hsds.page(session, listing, page, per_page))


def _json(doc: object) -> Response:
    return Response(content=hsds.dumps(doc), media_type="application/json")


@router.get("/", response_model=ApiInfo, summary="About this HSDS API")
def about(request: Request) -> Response:
    """The HSDS version, Signpost's profile and the OpenAPI document."""
    return _json(hsds.about(str(request.base_url), str(request.url_for("hsds_profile")),
                            request.app.openapi_url or "/openapi.json"))


@router.get("/profile", name="hsds_profile", response_class=PlainTextResponse,
            summary="Signpost's HSDS profile",
            responses={200: {"content": {"text/markdown": {"schema": {"type": "string"}}}}})
def profile() -> Response:
    """What Signpost adds to HSDS 3.1 and how this API behaves (Markdown)."""
    return PlainTextResponse(hsds.profile_text(), media_type="text/markdown; charset=utf-8")


@router.get("/services", response_model=Page, summary="List services")
def list_services(
    session: SessionDep, db: DbDep, search: SearchQ = None, taxonomy_term_id: TermQ = None,
    taxonomy_id: TaxonomyQ = None, organization_id: OrganizationQ = None,
    modified_after: ModifiedQ = None,
    minimal: Annotated[bool, Query(description="Only id, name, status and modified_date.")]
    = False,
    full: FullQ = False, page: PageQ = 1, per_page: PerPageQ = 50,
    format: FormatQ = "json",
) -> Response:
    """Listed services with their one-to-one fields (or fully nested with `full`)."""
    filters = hsds.Filters(search=search, taxonomy_term_id=taxonomy_term_id,
                           taxonomy_id=taxonomy_id, organization_id=organization_id,
                           modified_after=modified_after)
    listing = hsds.services_listing(filters, minimal=minimal, full=full)
    return _answer(session, db, listing, format, page, per_page)


@router.get("/services/{id}", summary="Read a service, fully nested")
def get_service(session: SessionDep, id: IdPath) -> Response:
    """A listed service with everything nested (organization, sites, phones, hours...)."""
    return _json(hsds.get_service(session, id))


@router.get("/service_at_locations", response_model=Page, summary="List services at locations")
def list_service_at_locations(
    session: SessionDep, db: DbDep, geocoder: GeocoderDep, search: SearchQ = None,
    taxonomy_term_id: TermQ = None, taxonomy_id: TaxonomyQ = None,
    organization_id: OrganizationQ = None, modified_after: ModifiedQ = None,
    postcode: Annotated[str | None, Query(max_length=32, description="At an address in this "
                                          "postcode or in a service area covering it.")] = None,
    proximity: Annotated[str | None, Query(max_length=32, description="Within this many "
                                           "meters of the postcode's centroid.")] = None,
    full: FullQ = False, page: PageQ = 1, per_page: PerPageQ = 50,
    format: FormatQ = "json",
) -> Response:
    """Listed services at their locations: one-to-one fields, location and service."""
    filters = hsds.Filters(search=search, taxonomy_term_id=taxonomy_term_id,
                           taxonomy_id=taxonomy_id, organization_id=organization_id,
                           modified_after=modified_after, postcode=postcode,
                           proximity=proximity)
    listing = hsds.service_at_locations_listing(session, filters, geocoder, full=full)
    return _answer(session, db, listing, format, page, per_page)


@router.get("/service_at_locations/{id}", summary="Read a service at a location, fully nested")
def get_service_at_location(session: SessionDep, id: IdPath) -> Response:
    """A listed service_at_location with its location and its full service."""
    return _json(hsds.get_service_at_location(session, id))


@router.get("/organizations", response_model=Page, summary="List organizations")
def list_organizations(
    session: SessionDep, db: DbDep, search: SearchQ = None, taxonomy_term_id: TermQ = None,
    taxonomy_id: TaxonomyQ = None, modified_after: ModifiedQ = None, full: FullQ = False,
    full_service: FullServiceQ = False, page: PageQ = 1, per_page: PerPageQ = 50,
    format: FormatQ = "json",
) -> Response:
    """Active organizations with their one-to-one fields (or fully nested with `full`)."""
    filters = hsds.Filters(search=search, taxonomy_term_id=taxonomy_term_id,
                           taxonomy_id=taxonomy_id, modified_after=modified_after)
    listing = hsds.organizations_listing(filters, full=full, full_service=full_service)
    return _answer(session, db, listing, format, page, per_page)


@router.get("/organizations/{id}", summary="Read an organization, fully nested")
def get_organization(session: SessionDep, id: IdPath,
                     full_service: FullServiceQ = False) -> Response:
    """An active organization with its locations and its listed services."""
    return _json(hsds.get_organization(session, id, full_service=full_service))


@router.get("/taxonomies", response_model=Page, summary="List taxonomies")
def list_taxonomies(session: SessionDep, db: DbDep, search: SearchQ = None, page: PageQ = 1,
                    per_page: PerPageQ = 50,
                    format: FormatQ = "json") -> Response:
    """Every taxonomy the directory's sources use."""
    listing = hsds.taxonomies_listing(hsds.Filters(search=search))
    return _answer(session, db, listing, format, page, per_page)


@router.get("/taxonomies/{id}", summary="Read a taxonomy")
def get_taxonomy(session: SessionDep, id: IdPath) -> Response:
    """One taxonomy."""
    return _json(hsds.get_taxonomy(session, id))


@router.get("/taxonomy_terms", response_model=Page, summary="List taxonomy terms")
def list_taxonomy_terms(
    session: SessionDep, db: DbDep, search: SearchQ = None, taxonomy_id: TaxonomyQ = None,
    parent_id: Annotated[str | None, Query(max_length=64,
                                           description="Only children of this term.")] = None,
    top_only: Annotated[bool, Query(description="Only terms without a parent.")] = False,
    page: PageQ = 1, per_page: PerPageQ = 50, format: FormatQ = "json",
) -> Response:
    """Every taxonomy term, optionally of one taxonomy or under one parent."""
    filters = hsds.Filters(search=search, taxonomy_id=taxonomy_id, parent_id=parent_id,
                           top_only=top_only)
    return _answer(session, db, hsds.taxonomy_terms_listing(filters), format, page, per_page)


@router.get("/taxonomy_terms/{id}", summary="Read a taxonomy term")
def get_taxonomy_term(session: SessionDep, id: IdPath) -> Response:
    """One taxonomy term, with its taxonomy."""
    return _json(hsds.get_taxonomy_term(session, id))
