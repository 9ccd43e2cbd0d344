"""HSDS 3.1 JSON Schemas (with the 3.1.1 patch files overlaid) as a validator for tests."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "hsds" / "v3.1" / "schema"
PATCH_DIR = SCHEMA_DIR.parent / "patch-3.1.1" / "schema"


@lru_cache
def _registry() -> Registry:
    schemas: dict[str, Any] = {}
    for folder in (SCHEMA_DIR, PATCH_DIR):
        for path in folder.glob("*.json"):
            if path.name != "openapi.json":
                schemas[path.name] = json.loads(path.read_text(encoding="utf-8"))
    return Registry().with_resources(
        (name, Resource.from_contents(schema, default_specification=_spec()))
        for name, schema in schemas.items())


def _spec():  # noqa: ANN202
    from referencing.jsonschema import DRAFT202012
    return DRAFT202012


def schema(name: str) -> dict[str, Any]:
    """The schema of one HSDS object, e.g. 'service'."""
    return _registry().contents(f"{name}.json")


def errors(name: str, instance: Any) -> list[str]:
    """Every validation error of `instance` against the HSDS object schema `name`."""
    validator = Draft202012Validator(schema(name), registry=_registry())
    return [f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
            for e in validator.iter_errors(instance)]
