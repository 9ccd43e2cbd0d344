"""Security headers on every HTML page (a pure ASGI middleware: no per-request task overhead).

Pages load scripts and styles from /static only, so the policy allows no inline script and no
third-party origin. The interactive API docs (/docs, /redoc) load FastAPI's CDN assets with
inline script; they keep their own behaviour but may still never be framed.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
               "form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = "frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")

_COMMON = [(b"x-content-type-options", b"nosniff")]


@lru_cache(maxsize=8)
def page_policy(tile_url: str) -> str:
    """The page policy, allowing images from the map tiles' origin when a tile URL template is
    set (`map_tile_url`; a `{s}` subdomain becomes a wildcard): nothing else leaves 'self'."""
    parts = urlsplit(tile_url.strip().replace("{s}", "tiles-subdomain"))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return PAGE_POLICY
    host = parts.netloc.rpartition("@")[2].replace("tiles-subdomain", "*")
    if any(ch in host for ch in " ;,'\"{}"):
        return PAGE_POLICY
    return PAGE_POLICY.replace("img-src 'self' data:", f"img-src 'self' data: {parts.scheme}://{host}")
_HTML = [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Adds nosniff to every response; CSP, frame and referrer rules to every HTML one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(DOCS_PATHS):
            policy = DOCS_POLICY
        else:
            settings = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            policy = page_policy(getattr(settings, "map_tile_url", "") or "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                extra = list(_COMMON)
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    extra += _HTML + [(b"content-security-policy", policy.encode())]
                headers += [(n, v) for n, v in extra if n not in names]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
