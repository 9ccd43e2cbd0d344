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
    """503: a dependency (the database, the search cluster) cannot answer now; `retry_after`
    (seconds) becomes the Retry-After header."""

    status, code = 503, "unavailable"

    def __init__(self, message: str, *, field: str | None = None,
                 retry_after: int | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after


# SQLite primary result codes (extended code & 0xFF) that are conditions, not bugs.
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED: another writer kept the lock too long
_SQLITE_FULL = 13  # SQLITE_FULL: the disk (or max_page_count) is full
_SQLITE_IO = {10, 14}  # SQLITE_IOERR, SQLITE_CANTOPEN
# PostgreSQL SQLSTATEs (and classes) that mean "try again shortly".
_PG_BUSY = {"40001", "40P01", "55P03", "57014", "53300"}  # serialization, deadlock, lock or
# statement timeout, too many connections
_PG_DOWN_CLASSES = ("08", "57P")  # connection exceptions; admin/crash shutdown, starting up
DB_RETRY_AFTER = 5  # seconds


def database_unavailable(exc: BaseException) -> Unavailable | None:
    """The 503 for a database error that is a passing condition (locked, busy, unreachable,
    full), or None for anything else (a bug stays a 500). The message names no statement and
    no value."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.TimeoutError):  # every pooled connection busy for pool_timeout
        return Unavailable("the database is busy: every connection is in use. Nothing was "
                           "changed; try again in a few seconds.", retry_after=DB_RETRY_AFTER)
    if not isinstance(exc, sa.DBAPIError):
        return None
    orig = exc.orig
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(sqlite_code, int):
        primary = sqlite_code & 0xFF
        if primary in _SQLITE_BUSY:
            return Unavailable("the database is busy with another change (it stayed locked "
                               "longer than the wait allows). Nothing was changed; try again in "
                               "a few seconds.", retry_after=DB_RETRY_AFTER)
        if primary == _SQLITE_FULL:
            return Unavailable("the database's disk is full. Nothing was changed; an "
                               "administrator must free space.", retry_after=60)
        if primary in _SQLITE_IO:
            return Unavailable("the database file could not be read or written. Nothing was "
                               "changed; try again later.", retry_after=30)
        return None
    if exc.connection_invalidated:
        return _pg_down()
    if type(orig).__module__.split(".")[0] in ("psycopg", "psycopg2"):
        sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        if sqlstate in _PG_BUSY:
            return Unavailable("the database is busy. Nothing was changed; try again in a few "
                               "seconds.", retry_after=DB_RETRY_AFTER)
        # A client-side OperationalError has no SQLSTATE: the connection failed or was lost.
        if (sqlstate is None and isinstance(exc, sa.OperationalError)) or (
                sqlstate is not None and sqlstate.startswith(_PG_DOWN_CLASSES)):
            return _pg_down()
    return None


def _pg_down() -> Unavailable:
    return Unavailable("the database is not reachable. Nothing was changed; try again in a "
                       "minute.", retry_after=DB_RETRY_AFTER)


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
        response = _respond(request, exc.status, exc.code, exc.message, exc.field)
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            response.headers["Retry-After"] = str(retry_after)
        return response

    async def _database(request: Request, exc: Exception):  # noqa: ANN202
        unavailable = database_unavailable(exc)
        if unavailable is None:
            raise exc  # a bug: on to the 500 handler, which logs it
        import logging
        logging.getLogger("signpost").warning(  # the kind of failure only: no SQL, no values
            "database unavailable on %s %s: %s (%s)", request.method, request.url.path,
            type(exc).__name__, type(getattr(exc, "orig", None)).__name__)
        return await _app_error(request, unavailable)

    from sqlalchemy import exc as sa
    app.add_exception_handler(sa.DBAPIError, _database)
    app.add_exception_handler(sa.TimeoutError, _database)

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
    if status == 401:  # a page that needs a signed-in user: sign in, then come back
        from urllib.parse import quote

        from fastapi.responses import RedirectResponse
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here, safe='')}", status_code=303)
    from service.web import render_error
    return render_error(request, status, message)
