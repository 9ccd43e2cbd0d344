"""Place tokens: geohash cells and the cover of a search circle."""

from __future__ import annotations

import math
import random

import pytest

from service.search import geo

BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def geohash_number(text: str) -> int:
    value = 0
    for ch in text:
        value = (value << 5) | BASE32.index(ch)
    return value


@pytest.mark.parametrize(("lat", "lon", "geohash"), [
    (57.64911, 10.40744, "u4pruydqqvj"),  # the geohash article's example
    (38.8977, -77.0365, "dqcjqcp84c6"),  # Washington DC
    (-33.8688, 151.2093, "r3gx2f9tt5s"),  # Sydney
])
def test_cells_are_geohash_prefixes(lat: float, lon: float, geohash: str) -> None:
    for precision in geo.PRECISIONS:
        assert geo.cell(lat, lon, precision) == geohash_number(geohash[:precision])


def test_the_cover_holds_every_point_within_the_radius() -> None:
    rng = random.Random(7)
    for _ in range(200):
        lat, lon = rng.uniform(-60, 60), rng.uniform(-170, 170)
        radius = rng.choice([1, 5, 10, 25, 50])
        cover = set(geo.cover(lat, lon, radius))
        for _ in range(20):
            # a random point inside the circle
            dlat = rng.uniform(-1, 1) * radius / 69.0
            dlon = rng.uniform(-1, 1) * radius / (69.0 * math.cos(math.radians(lat)))
            plat, plon = lat + dlat, lon + dlon
            if geo.distance_mi(lat, lon, plat, plon) <= radius:
                assert cover & set(geo.point_tokens(plat, plon)), (lat, lon, radius)
