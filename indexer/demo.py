"""The bundled demo directory: `data/demo/manifest.toml` names each file and its mapping."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexer.pipeline import RunReport, load
from service.config import DATA_DIR
from service.db import Database

DEMO_DIR = DATA_DIR / "demo"


def manifest(folder: Path = DEMO_DIR) -> dict[str, Any]:
    """The demo manifest: a notice and the files in load order."""
    return tomllib.loads((folder / "manifest.toml").read_text(encoding="utf-8"))


def load_demo(db: Database, *, folder: Path = DEMO_DIR, progress: Any = None,
              geocoder: Any = None) -> Iterator[RunReport]:
    """Load every demo file under its own source name; yields each run's report."""
    for entry in manifest(folder)["files"]:
        yield load(db, folder / entry["path"], format=f"{entry['loader']}:{entry['source']}",
                   source=entry["source"], progress=progress, geocoder=geocoder, force=True)


DEMO_AGENCY = "Demo Community Health Agency"
DEMO_PASSWORD = "try-signpost-demo"  # demo only: the app refuses demo accounts in production


def ensure_demo_accounts(db: Database, *, environment: str) -> list[tuple[str, str]]:
    """One account of each role for trying the app; returns (role, username) pairs.

    The partner manages the first DC shelter provider in the demo directory. Never in
    production: demo accounts share a published password.
    """
    from sqlalchemy import select

    from service.accounts import service as accounts
    from service.accounts.tables import app_user
    from service.audit.service import CLI
    from service.directory.tables import organization

    if environment == "production":
        raise RuntimeError("demo accounts are never created in production")
    wanted = [("admin", "demo-admin"), ("supervisor", "demo-supervisor"),
              ("case_manager", "demo-case-manager"), ("partner", "demo-partner")]
    with db.session(write=True) as session:
        existing = set(session.execute(select(app_user.c.username)).scalars())
        org = session.execute(select(organization.c.id)
                              .where(organization.c.record_source == "dc_dhs_homeless_shelters")
                              .order_by(organization.c.name).limit(1)).scalar()
        for role, username in wanted:
            if username in existing or (role == "partner" and org is None):
                continue
            accounts.create_user(
                session, actor=CLI, username=username, password=DEMO_PASSWORD, role=role,
                agency_name=DEMO_AGENCY if role in ("supervisor", "case_manager") else None,
                organization_ids=[org] if role == "partner" else ())
    return wanted
