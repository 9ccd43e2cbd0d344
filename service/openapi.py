"""The OpenAPI document, completed with the errors every operation can answer.

FastAPI documents only the success response and its own validation error (whose shape we do
not use: `service.errors` answers every error as `{"error": {status, code, message, field}}`).
This adds that one `Error` schema and, to every operation under /api and /hsds, the error
statuses it can give: 400/422 for bad input, 401/403 where a rule asks for a signed-in user,
404 for a missing (or not visible) record, 409 for conflicts, 429 for rate limits, and 503
when the database or search engine is unavailable. The fuzz tests check every response against
this document (tests/test_fuzz.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error answer under /api and /hsds.",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["status", "code", "message"],
        "properties": {
            "status": {"type": "integer", "description": "The HTTP status, repeated."},
            "code": {"type": "string", "description": "A stable machine-readable code, e.g. "
                                                      "`invalid`, `not_found`, `conflict`."},
            "message": {"type": "string", "description": "What went wrong, in words for a "
                                                         "person; names the field."},
            "field": {"type": "string", "description": "The request field at fault, when "
                                                       "one is (dotted path)."},
        },
    }},
}

ERRORS = {
    "400": "The request is not acceptable (the message names the field).",
    "401": "Sign in first: no valid bearer token (or web session).",
    "403": "Signed in, but this role may not do this (or the form's CSRF token is missing).",
    "404": "No such record, or not one this user may see.",
    "409": "A conflict: a stale version, a move out of order, or a duplicate.",
    "422": "A field is invalid (the message and `field` name it).",
    "429": "Too many requests from this address; wait and retry.",
    "503": "The database or the search engine is unavailable; retry shortly.",
}


def _ref() -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _offers_ndjson(operation: dict[str, Any]) -> bool:
    """An HSDS list whose `format` parameter offers newline-delimited JSON."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        choices = schema.get("enum") or [c.get("const") for c in schema.get("anyOf", [])]
        if parameter.get("name") == "format" and "ndjson" in (choices or []):
            return True
    return False


def build(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with the error answers filled in (built once)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, item in document.get("paths", {}).items():
        if not path.startswith(("/api/", "/hsds/")):
            continue
        for operation in item.values():
            responses = operation.setdefault("responses", {})
            if _offers_ndjson(operation) and "200" in responses:
                responses["200"].setdefault("content", {})["application/x-ndjson"] = {
                    "schema": {"type": "string", "description": "One JSON record per line "
                                                                "(format=ndjson)."}}
            for status, description in ERRORS.items():
                existing = responses.get(status)
                if existing is None:
                    responses[status] = {"description": description, **_ref()}
                else:  # keep a route's own words, but the body is always an Error
                    existing.update(_ref())
                    if existing.get("description") in (None, "Validation Error"):
                        existing["description"] = description
    app.openapi_schema = document
    return document


def install(app: FastAPI) -> None:
    """Serve the completed document at /openapi.json."""
    app.openapi = lambda: build(app)  # type: ignore[method-assign]
