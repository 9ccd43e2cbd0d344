"""Jinja2 templates for the pages, and the HTML error pages."""

from __future__ import annotations

from fastapi import Request
from fastapi.templating import Jinja2Templates

from service.config import PROJECT_ROOT

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))


def render_error(request: Request, status: int, message: str):  # noqa: ANN201
    """The friendly error page for `status`."""
    name = f"errors/{status}.html" if status in (403, 404, 500) else "errors/error.html"
    return templates.TemplateResponse(request, name, {"status": status, "message": message},
                                      status_code=status)
