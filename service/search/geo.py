"""Place tokens for the search index: geohash cells as numbers, and coverage areas.

Each document carries the cells of its point at several precisions, and area-wide services carry
the areas they cover, as plain tokens in the full-text index. A query then asks for its text
AND any of the cells covering the search circle (or any area containing the client), so one
FTS5 MATCH intersects need and place inside the index, before any row is read.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator

PRECISIONS = (2, 3, 4, 5, 6)
EARTH_MI = 3958.8


def _spread(x: int) -> int:
    """Put a zero bit between each of the 16 low bits of x (for Morton interleaving)."""
    x = (x | (x << 8)) & 0x00FF00FF
    x = (x | (x << 4)) & 0x0F0F0F0F
    x = (x | (x << 2)) & 0x33333333
    return (x | (x << 1)) & 0x55555555


def cell(lat: float, lon: float, precision: int) -> int:
    """The geohash cell of a point as an integer (5 bits per geohash character).

    A geohash interleaves longitude and latitude bits, longitude first; at 6 characters each
    gets 15 bits, and a shorter geohash is a prefix of the longer one's bits.
    """
    if precision <= 6:
        return (_lon_bits(lon) | _lat_bits(lat)) >> (5 * (6 - precision))
    return _cell_slow(lat, lon, precision)


def _lon_bits(lon: float) -> int:
    """A longitude's bits of its 6-character cell, in their interleaved places."""
    return _spread(min(32767, max(0, int((lon + 180.0) / 360.0 * 32768)))) << 1


def _lat_bits(lat: float) -> int:
    """A latitude's bits of its 6-character cell, in their interleaved places."""
    return _spread(min(32767, max(0, int((lat + 90.0) / 180.0 * 32768))))


def _cell_slow(lat: float, lon: float, precision: int) -> int:
    bits = 5 * precision
    lat_lo, lat_hi, lon_lo, lon_hi = -90.0, 90.0, -180.0, 180.0
    value = 0
    for i in range(bits):
        if i % 2 == 0:
            mid = (lon_lo + lon_hi) / 2
            bit = lon >= mid
            lon_lo, lon_hi = (mid, lon_hi) if bit else (lon_lo, mid)
        else:
            mid = (lat_lo + lat_hi) / 2
            bit = lat >= mid
            lat_lo, lat_hi = (mid, lat_hi) if bit else (lat_lo, mid)
        value = (value << 1) | int(bit)
    return value


def cell_token(precision: int, value: int) -> str:
    """The index token of a cell, digits only so no stemmer touches it."""
    return f"h{precision}x{value}"


def point_tokens(lat: float, lon: float) -> list[str]:
    """Tokens of a document's point at every indexed precision (a coarser cell's number is a
    prefix of the finer one's bits, so one computation serves all)."""
    return cell_tokens(cell(lat, lon, PRECISIONS[-1]))


def cell_tokens(finest: int) -> list[str]:
    """`point_tokens` of a point whose cell at the finest precision is `finest`."""
    last = PRECISIONS[-1]
    return [cell_token(p, finest >> (5 * (last - p))) for p in PRECISIONS]


def _cell_size(precision: int) -> tuple[float, float]:
    bits = 5 * precision
    lon_bits = (bits + 1) // 2
    lat_bits = bits // 2
    return 180.0 / 2 ** lat_bits, 360.0 / 2 ** lon_bits


def cover(lat: float, lon: float, radius_mi: float, *, max_cells: int = 24) -> list[str]:
    """Tokens of the finest cells (at most `max_cells`) covering the circle's bounding box."""
    dlat = radius_mi / 69.0
    dlon = radius_mi / max(1e-6, 69.0 * math.cos(math.radians(lat)))
    south, north = max(-90.0, lat - dlat), min(90.0, lat + dlat)
    west, east = lon - dlon, lon + dlon
    for precision in reversed(PRECISIONS):
        h, w = _cell_size(precision)
        rows = math.floor(north / h) - math.floor(south / h) + 1
        cols = math.floor(east / w) - math.floor(west / w) + 1
        if rows * cols <= max_cells or precision == PRECISIONS[0]:
            # The cells of a grid of points one cell apart, from the south-west corner to the
            # north-east one. A cell's number is its longitude's bits OR its latitude's, so
            # each row and column is worked out once (not once per point: every search
            # asks for a cover).
            shift = 5 * (6 - precision)
            lat_bits = {_lat_bits(min(y, 89.999999)) for y in _steps(south, north, h)}
            lon_bits = {_lon_bits(_wrap(x)) for x in _steps(west, east, w)}
            return sorted({cell_token(precision, (x | y) >> shift)
                           for x in lon_bits for y in lat_bits})
    return []


def _steps(start: float, end: float, step: float) -> Iterator[float]:
    """`start`, then `step` apart, then `end` (every cell from `start`'s to `end`'s)."""
    value = start
    yield value
    while value < end:
        value = min(end, value + step)
        yield value


def _wrap(lon: float) -> float:
    return ((lon + 180.0) % 360.0) - 180.0


def distance_mi(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in miles."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_MI * math.asin(min(1.0, math.sqrt(a)))


def area_token(kind: str, *parts: str) -> str:
    """A coverage token: nation, a state, a county or a ZIP, as digits after a kind letter."""
    if kind == "nation":
        return "anation"
    if kind == "zip":
        return f"az{parts[0]}"
    key = "/".join(p.strip().lower() for p in parts)
    return f"a{kind[0]}{zlib.crc32(key.encode())}"
