"""Web sessions: a signed cookie, CSRF tokens for every form, and flash messages.

A web session is an API token (`api_token`, named "web session") whose raw value travels in an
HttpOnly, SameSite=Lax cookie signed with the app's secret (HMAC-SHA256), Secure unless
`cookie_secure` is off. So signing out, an admin deactivating a user, and expiry work exactly
as for bearer tokens; on top, a session ends after `session_idle_minutes` without a request and
`session_max_hours` after sign-in.

CSRF: every unsafe request that does not carry a bearer token (a browser's form post, or a
script using the cookie) must carry a token, in the `csrf_token` form field or the
`X-CSRF-Token` header, equal to HMAC(secret, binding): the binding is the session token's hash
when signed in, else a random visitor nonce kept in its own cookie (so the sign-in form is
protected too). An attacker's page can neither read the cookie nor compute the token.

Flash messages ride in a short-lived signed cookie from a redirect to the next page shown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from fastapi import Request, Response
from sqlalchemy import select, update
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.accounts import security
from service.accounts.service import Principal, principal_for_token
from service.accounts.tables import api_token
from service.config import Settings
from service.db import Database
from service.errors import Forbidden

SESSION_COOKIE = "signpost_session"
VISITOR_COOKIE = "signpost_visitor"
FLASH_COOKIE = "signpost_flash"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SESSION_TOKEN_NAME = "web session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
TOUCH_EVERY = timedelta(minutes=1)  # how often a session's last use is written down
CSRF_REFUSED = ("This form has expired or came from another site. Reload the page and try "
                "again.")


def _secret(settings: Settings) -> bytes:
    return settings.secret_key.encode()


def _mac(settings: Settings, purpose: str, value: str) -> str:
    digest = hmac.new(_secret(settings), f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(settings: Settings, purpose: str, value: str) -> str:
    """`value` with its signature, for a cookie."""
    return f"{value}.{_mac(settings, purpose, value)}"


def unsign(settings: Settings, purpose: str, signed: str | None) -> str | None:
    """The value of a signed cookie, or None when absent or tampered with."""
    if not signed or "." not in signed:
        return None
    value, _, mac = signed.rpartition(".")
    return value if hmac.compare_digest(mac, _mac(settings, purpose, value)) else None


# --- sessions -----------------------------------------------------------------------------

def session_token(request: Request) -> str | None:
    """The raw session token from the signed cookie, or None."""
    settings: Settings = request.app.state.settings
    return unsign(settings, "session", request.cookies.get(SESSION_COOKIE))


def principal_from_cookie(request: Request, *, client_ip: str | None) -> Principal | None:
    """Who the session cookie speaks for: None when there is none, or it is tampered with,
    expired, idle too long, revoked or the user deactivated."""
    token = session_token(request)
    if token is None:
        return None
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    now = datetime.now(UTC)
    with db.session() as session:
        last = session.execute(
            select(api_token.c.last_used_at, api_token.c.created_at)
            .where(api_token.c.token_hash == security.token_hash(token))
            .where(api_token.c.name == SESSION_TOKEN_NAME)).first()
        if last is None:
            return None
        if (last.last_used_at or last.created_at) < now - timedelta(
                minutes=settings.session_idle_minutes):
            return None
        found = principal_for_token(session, token=token, client_ip=client_ip, now=now)
    if found is None:
        return None
    principal, _ = found
    if last.last_used_at is None or last.last_used_at < now - TOUCH_EVERY:
        with db.session(write=True) as session:
            session.execute(update(api_token).where(api_token.c.id == principal.token_id)
                            .values(last_used_at=now))
    return principal


def start_session(response: Response, request: Request, *, token: str) -> None:
    """Set the session cookie for a fresh sign-in, and shorten the token to a web session's
    lifetime."""
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    now = datetime.now(UTC)
    with db.session(write=True) as session:
        session.execute(update(api_token)
                        .where(api_token.c.token_hash == security.token_hash(token))
                        .values(expires_at=now + timedelta(hours=settings.session_max_hours),
                                last_used_at=now))
    response.set_cookie(SESSION_COOKIE, sign(settings, "session", token),
                        max_age=settings.session_max_hours * 3600, httponly=True,
                        secure=settings.cookie_secure, samesite="lax", path="/")


def end_session(response: Response, request: Request) -> None:
    """Forget the session cookie (the token itself is revoked by the caller)."""
    settings: Settings = request.app.state.settings
    response.delete_cookie(SESSION_COOKIE, path="/", secure=settings.cookie_secure,
                           httponly=True, samesite="lax")


# --- CSRF ---------------------------------------------------------------------------------

def _binding(request: Request) -> str | None:
    token = session_token(request)
    if token is not None:
        return "s:" + security.token_hash(token)
    visitor = getattr(request.state, "visitor", None) or unsign(
        request.app.state.settings, "visitor", request.cookies.get(VISITOR_COOKIE))
    return "v:" + visitor if visitor else None


def csrf_token(request: Request) -> str:
    """The token this browser's forms must send back."""
    binding = _binding(request)
    return _mac(request.app.state.settings, "csrf", binding) if binding else ""


def needs_csrf(request: Request) -> bool:
    """Unsafe requests that a browser could be tricked into sending: a page's form post, or
    any request riding on the session cookie rather than a bearer token."""
    if request.method in SAFE_METHODS:
        return False
    scheme, _, _ = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return False
    if SESSION_COOKIE in request.cookies:
        return True
    return not request.url.path.startswith(("/api/", "/hsds/"))


async def check_csrf(request: Request) -> None:
    """Refuse (403, naming `csrf_token`) an unsafe browser request without the right token."""
    if not needs_csrf(request):
        return
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = csrf_token(request)
    if not sent or not expected or not hmac.compare_digest(sent, expected):
        raise Forbidden(CSRF_REFUSED, field=CSRF_FIELD)


# --- flash messages -----------------------------------------------------------------------

def flash(response: Response, request: Request, message: str, kind: str = "info") -> None:
    """Show `message` on the next page this browser gets (after a redirect)."""
    settings: Settings = request.app.state.settings
    queued = [*getattr(request.state, "flash_out", []), {"kind": kind, "text": message}]
    request.state.flash_out = queued
    payload = base64.urlsafe_b64encode(json.dumps(queued).encode()).decode()
    response.set_cookie(FLASH_COOKIE, sign(settings, "flash", payload), max_age=120,
                        httponly=True, secure=settings.cookie_secure, samesite="lax", path="/")


def read_flashes(settings: Settings, cookie: str | None) -> list[dict[str, str]]:
    payload = unsign(settings, "flash", cookie)
    if payload is None:
        return []
    try:
        items = json.loads(base64.urlsafe_b64decode(payload.encode()))
    except ValueError:
        return []
    return [{"kind": str(i.get("kind", "info")), "text": str(i.get("text", ""))}
            for i in items if isinstance(i, dict)][:5]


def safe_next(target: str | None, default: str) -> str:
    """A local path to go to after signing in: never another site (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    if any(ch in target for ch in ("\\", "\r", "\n", "\t")) or ":" in target.split("?")[0]:
        return default
    return target


# --- the middleware -----------------------------------------------------------------------

def _cookies(scope: Scope) -> dict[str, str]:
    raw = b"; ".join(v for k, v in scope.get("headers", ()) if k == b"cookie")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw.decode("latin-1"))
    except Exception:  # noqa: BLE001 - a malformed cookie header is just no cookies
        return {}
    return {k: m.value for k, m in jar.items()}


def _set_cookie(name: str, value: str, *, max_age: int, secure: bool) -> bytes:
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly", "SameSite=Lax"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")


class WebSession:
    """Gives each browser a visitor nonce (for CSRF before sign-in), and hands flash messages
    from the cookie to the page that shows them, then clears the cookie."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(("/static/", "/api/", "/hsds/")):
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        state = scope.setdefault("state", {})
        new_visitor = None
        if unsign(self.settings, "visitor", cookies.get(VISITOR_COOKIE)) is None:
            new_visitor = secrets.token_urlsafe(24)
            state["visitor"] = new_visitor
        state["flashes"] = read_flashes(self.settings, cookies.get(FLASH_COOKIE))
        had_flash = FLASH_COOKIE in cookies

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                extra: Iterable[bytes] = ()
                if new_visitor is not None:
                    extra = [_set_cookie(VISITOR_COOKIE,
                                         sign(self.settings, "visitor", new_visitor),
                                         max_age=30 * 24 * 3600,
                                         secure=self.settings.cookie_secure)]
                sets_flash = any(k == b"set-cookie" and v.startswith(FLASH_COOKIE.encode())
                                 for k, v in headers)
                if had_flash and not sets_flash and message["status"] < 300:
                    extra = [*extra, _set_cookie(FLASH_COOKIE, "", max_age=0,
                                                 secure=self.settings.cookie_secure)]
                headers += [(b"set-cookie", v) for v in extra]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookies)


def template_context(request: Request) -> dict[str, Any]:
    """What every page's template may use: the signed-in user, the CSRF token, flashes."""
    settings: Settings = request.app.state.settings
    return {
        "user": getattr(request.state, "principal", None),
        "csrf_token": csrf_token(request),
        "flashes": getattr(request.state, "flashes", []),
        "demo_notice": settings.demo_notice,
    }
