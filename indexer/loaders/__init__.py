"""Loaders: one module per input format, each with `detect(path)` and `read(path, problems)`.

`find_loader` picks the format when `signpost index load` is not told it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.records import Problems, SourceRow

# Tried in this order when detecting; the more specific formats come first.
FORMATS = ("hsds3", "hsds1", "ohana", "airs", "flat")


@dataclass(frozen=True)
class Loader:
    """A format's name, its reader, and the source name it suggests for a path."""

    format: str
    read: Callable[[Path, Problems], Iterator[SourceRow]]
    default_source: str
    # A format of one file per table can list them (`files(path, problems)`, None when the
    # input is not such a package), so that a large package is read by several processes,
    # each file with the module's `read_csv_table`. `module` names that module.
    files: Callable[[Path, Problems], list[tuple[str, Path]] | None] | None = None
    module: str = ""


class UnknownFormat(ValueError):
    """No loader recognises the input."""


def find_loader(path: Path, format: str | None = None) -> Loader:
    """The loader for `path`, by name when given, else by detection."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    names = [format] if format else list(FORMATS)
    for name in names:
        module_name = name.split(":")[0]
        try:
            module = importlib.import_module(f"indexer.loaders.{module_name}")
        except ModuleNotFoundError as exc:
            if format:
                raise UnknownFormat(f"unknown format {format!r}") from exc
            continue
        if module_name == "flat":
            mapping = _flat_mapping(module, path, name)
            if mapping is None:
                if format:
                    raise UnknownFormat(f"{path}: no flat-list mapping matches this file")
                continue
            return Loader(
                "flat:" + mapping.source,
                lambda p, problems, m=mapping, read=module.read: read(p, problems, mapping=m),
                mapping.source,
            )
        if not module.detect(path) and not format:
            continue
        return Loader(module.FORMAT, module.read, _source_name(path),
                      getattr(module, "files", None), module.__name__)
    raise UnknownFormat(f"{path}: format not recognised; name one with --format "
                        f"({', '.join(FORMATS)})")


def _flat_mapping(module: Any, path: Path, name: str) -> Any:
    """The mapping named in `flat:SOURCE`, or the one whose columns match the file."""
    if ":" in name:
        try:
            return module.get_mapping(name.split(":", 1)[1])
        except (KeyError, ValueError) as exc:
            raise UnknownFormat(f"no flat-list mapping named {name.split(':', 1)[1]!r}") from exc
    return module.detect(path)


def _source_name(path: Path) -> str:
    base = path.parent if path.name == "datapackage.json" else path
    stem = base.name if base.is_dir() else base.stem
    return "".join(c if c.isalnum() else "_" for c in stem.lower()).strip("_") or "import"
