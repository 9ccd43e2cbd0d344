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
