"""Named dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import Database


def get_db(request: Request) -> Database:
    """The app's database (built in the lifespan)."""
    return request.app.state.db


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """A session per request: committed when the handler returns, rolled back if it raises."""
    db: Database = request.app.state.db
    write = request.method not in ("GET", "HEAD", "OPTIONS")
    with db.session(write=write) as session:
        yield session


DbDep = Annotated[Database, Depends(get_db)]
SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
