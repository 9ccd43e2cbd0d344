"""Errors that carry their HTTP status, and the one handler that answers them.

Under /api (and /hsds) the answer is JSON `{"error": {"status", "code", "message", "field"}}`;
elsewhere an HTML error page.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class AppError(Exception):
    """Base class: subclasses set `status` and `code`."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class BadRequest(AppError):
    status, code = 400, "bad_request"


class NotFound(AppError):
    status, code = 404, "not_found"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Conflict(AppError):
    status, code = 409, "conflict"


class InvalidTransition(AppError):
    status, code = 409, "invalid_transition"


class Unavailable(AppError):
    status, code = 503, "unavailable"


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON error shape every API error uses."""
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if field:
        body["field"] = field
    return {"error": body}


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api", "/hsds", "/health")) or "text/html" not in request.headers.get(
        "accept", "")


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError):  # noqa: ANN202
        return _respond(request, exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError):  # noqa: ANN202
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc) or None
        message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get(
            "msg", "invalid request")
        return _respond(request, 422, "invalid", message, field)

    @app.exception_handler(ValidationError)
    async def _model_validation(request: Request, exc: ValidationError):  # noqa: ANN202
        # A model built inside a route from query parameters (e.g. a client profile).
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())) or None
        message = first.get("msg", "invalid")
        return _respond(request, 422, "invalid", f"{field}: {message}" if field else message,
                        field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):  # noqa: ANN202
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized",
                403: "forbidden"}.get(exc.status_code, "error")
        return _respond(request, exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception):  # noqa: ANN202
        import logging
        logging.getLogger("signpost").exception("unhandled error on %s %s", request.method,
                                                request.url.path)
        return _respond(request, 500, "internal", "Something went wrong on our side. It has "
                        "been logged; please try again.")


def _respond(request: Request, status: int, code: str, message: str,
             field: str | None = None):  # noqa: ANN202
    if _wants_json(request):
        return JSONResponse(error_body(status, code, message, field), status_code=status)
    from service.web import render_error
    return render_error(request, status, message)
