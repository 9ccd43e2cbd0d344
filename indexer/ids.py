"""Directory ids: a stable UUID per (source, table, the source's own id).

Re-importing a source finds the same rows again by id, and an export carries the source and
source id, so importing it elsewhere gives the very same ids.
"""

from __future__ import annotations

import uuid
from functools import cache
from hashlib import sha1

NAMESPACE = uuid.UUID("6f1c3a52-4b7e-5d0a-9c1e-2d8b7f3e9a10")
_NS = NAMESPACE.bytes


# The hex digit that begins a UUID's variant field, from the hash's digit there (RFC 4122: 10xx).
_VARIANT = {f"{d:x}": f"{(d & 0x3) | 0x8:x}" for d in range(16)}


def directory_id(source: str, table: str, source_id: str) -> str:
    """uuid5(NAMESPACE, "source/table/source_id"), computed without building UUID objects
    (an import makes two for every row it reads)."""
    h = sha1(_prefix(source, table) + source_id.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}"


@cache
def _prefix(source: str, table: str) -> bytes:
    """What every id of a source's table is hashed after."""
    return _NS + f"{source}/{table}/".encode()
