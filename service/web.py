"""Jinja2 templates for the pages, and the HTML error pages."""

from __future__ import annotations

from fastapi import Request
from fastapi.templating import Jinja2Templates

from service.config import PROJECT_ROOT


def _context(request: Request) -> dict:
    """Every page's shared values (signed-in user, CSRF token, flash messages)."""
    from service.pages.session import template_context
    return template_context(request)


templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"),
                            context_processors=[_context])


def render_error(request: Request, status: int, message: str):  # noqa: ANN201
    """The friendly error page for `status`."""
    name = f"errors/{status}.html" if status in (403, 404, 500) else "errors/error.html"
    return templates.TemplateResponse(request, name, {"status": status, "message": message},
                                      status_code=status)
