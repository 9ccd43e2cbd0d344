"""Directory ids: a stable UUID per (source, table, the source's own id).

Re-importing a source finds the same rows again by id, and an export carries the source and
source id, so importing it elsewhere gives the very same ids.
"""

from __future__ import annotations

import hashlib
import uuid

NAMESPACE = uuid.UUID("6f1c3a52-4b7e-5d0a-9c1e-2d8b7f3e9a10")
_NS = NAMESPACE.bytes


def directory_id(source: str, table: str, source_id: str) -> str:
    """uuid5(NAMESPACE, "source/table/source_id"), computed without building UUID objects."""
    digest = hashlib.sha1(_NS + f"{source}/{table}/{source_id}".encode()).digest()
    b = bytearray(digest[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
