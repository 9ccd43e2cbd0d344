"""What every /hsds/ request passes through: a per-IP rate limit, the optional bearer token, and
conditional requests (ETag and Last-Modified derived from the directory's data, 304s).

It is a route class, so the checks run before the route parses its parameters and the app's
shared middleware and error handlers stay untouched.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from service.errors import error_body
from service.hsds_api.service import data_version
from service.search.service import DEMO_NOTICE

_lock = threading.Lock()


class RateLimiter:
    """A token bucket per client: `per_minute` requests a minute, in bursts up to that many."""

    def __init__(self, per_minute: int, *, max_clients: int = 100_000) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait(self, client: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and counts it), else seconds until it may."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.per_minute), now))
            tokens = min(float(self.per_minute), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                if len(self._buckets) > self.max_clients:
                    self._forget_idle(now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_idle(self, now: float) -> None:
        full = [k for k, (tokens, last) in self._buckets.items()
                if tokens + (now - last) * self.rate >= self.per_minute]
        for key in full:
            del self._buckets[key]


def _limiter(request: Request, per_minute: int) -> RateLimiter:
    """The app's limiter (one per app, rebuilt if the setting changed)."""
    state = request.app.state
    with _lock:
        limiter = getattr(state, "hsds_rate_limiter", None)
        if limiter is None or limiter.per_minute != per_minute:
            limiter = state.hsds_rate_limiter = RateLimiter(per_minute)
    return limiter


def refuse(request: Request, settings: Any) -> Response | None:
    """A 429 or 401 answer, or None when the request may go ahead."""
    per_minute = settings.hsds_rate_limit_per_minute
    if per_minute:
        client = request.client.host if request.client else "unknown"
        wait = _limiter(request, per_minute).wait(client)
        if wait:
            return JSONResponse(
                error_body(429, "rate_limited", f"More than {per_minute} requests a minute "
                           "from this address: try again later."),
                status_code=429, headers={"Retry-After": str(max(1, math.ceil(wait)))})
    token = settings.hsds_api_token
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return _unauthorized("This HSDS API needs 'Authorization: Bearer <token>'.",
                                 'Bearer realm="hsds"')
        if not hmac.compare_digest(given.strip().encode(), token.encode()):
            return _unauthorized("The bearer token is not valid.",
                                 'Bearer realm="hsds", error="invalid_token"')
    return None


def _unauthorized(message: str, challenge: str) -> Response:
    return JSONResponse(error_body(401, "unauthorized", message), status_code=401,
                        headers={"WWW-Authenticate": challenge})


def etag(version: str, request: Request) -> str:
    """A strong ETag: the data's version, the path and the query (order-insensitive)."""
    query = "&".join(f"{k}={v}" for k, v in sorted(request.query_params.multi_items()))
    digest = hashlib.sha256(f"{version}\n{request.url.path}\n{query}".encode()).hexdigest()
    return f'"{digest[:32]}"'


def not_modified(request: Request, tag: str, modified: datetime | None) -> bool:
    """True when the client's copy is current (If-None-Match wins over If-Modified-Since)."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or any(t.removeprefix("W/") == tag for t in tags)
    since = request.headers.get("if-modified-since")
    if since and modified is not None:
        try:
            client_time = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        if client_time.tzinfo is None:
            return False
        return modified.replace(microsecond=0) <= client_time
    return False


class HsdsRoute(APIRoute):
    """An API route guarded by the rate limit and token, answering conditional requests."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        """The route's handler wrapped in the checks."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            settings = request.app.state.settings
            refused = refuse(request, settings)
            if refused is not None:
                return refused
            version, modified = await run_in_threadpool(_version, request)
            headers = {"ETag": etag(version, request),
                       "Cache-Control": "private, no-cache" if settings.hsds_api_token
                       else "public, no-cache"}
            if modified is not None:
                headers["Last-Modified"] = format_datetime(modified, usegmt=True)
            if settings.demo_notice:
                headers["X-Signpost-Notice"] = DEMO_NOTICE
            if not_modified(request, headers["ETag"], modified):
                return Response(status_code=304, headers=headers)
            response = await handler(request)
            if response.status_code == 200:
                for name, value in headers.items():
                    response.headers[name] = value
            return response

        return guarded


def _version(request: Request) -> tuple[str, datetime | None]:
    with request.app.state.db.engine.connect() as conn:
        return data_version(conn)
