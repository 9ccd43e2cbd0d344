"""Security headers on every HTML page (a pure ASGI middleware: no per-request task overhead).

Pages load scripts and styles from /static only, so the policy allows no inline script and no
third-party origin. The interactive API docs (/docs, /redoc) load FastAPI's CDN assets with
inline script; they keep their own behaviour but may still never be framed.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; "
               "form-action 'self'; frame-ancestors 'none'")
DOCS_POLICY = "frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")

_COMMON = [(b"x-content-type-options", b"nosniff")]
_HTML = [(b"x-frame-options", b"DENY"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Adds nosniff to every response; CSP, frame and referrer rules to every HTML one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_POLICY if scope["path"].startswith(DOCS_PATHS) else PAGE_POLICY

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
