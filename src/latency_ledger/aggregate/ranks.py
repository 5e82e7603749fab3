"""Percentile ranks and exact integer scaling, shared by exact and sketched groups.

Contract: nearest-rank percentiles (:func:`nearest_rank`), the band of ranks within
+-2.5 percentile points around one (:func:`band`, integral edges), and parts scaled to
add up to a target exactly (:func:`scale_parts`: the remainder to the largest part).
Pure integer arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence

PERCENTILES: tuple[tuple[str, int], ...] = (("p50", 50), ("p95", 95), ("p99", 99))
KEYS: tuple[str, ...] = ("p50", "p95", "p99", "mean")
# Band half-width in tenths of a percentile point (2.5 points), kept integral so band
# edges do not depend on float rounding.
BAND_HALF_WIDTH_TENTHS = 25


def nearest_rank(percentile: int, count: int) -> int:
    """1-based nearest rank: the smallest rank with at least ``percentile``% at or below."""
    return max(1, -(-percentile * count // 100))


def band(percentile: int, count: int) -> tuple[int, int]:
    """1-based inclusive ranks within +-2.5 points of ``percentile``, around its rank."""
    rank = nearest_rank(percentile, count)
    low = -(-(percentile * 10 - BAND_HALF_WIDTH_TENTHS) * count // 1000)
    high = (percentile * 10 + BAND_HALF_WIDTH_TENTHS) * count // 1000
    return max(1, min(low, rank)), min(count, max(high, rank))


def scale_parts(sums: Sequence[int], target: int) -> list[int]:
    """``sums`` scaled to add up to ``target`` exactly; the remainder to the largest part."""
    total = sum(sums)
    if total <= 0:
        # Only for requests whose parts are all zero: then so is the target (the last
        # part, own time, absorbs anything else).
        return [0] * (len(sums) - 1) + [target]
    scaled = [part * target // total for part in sums]
    largest = max(range(len(sums)), key=lambda i: (sums[i], -i))
    scaled[largest] += target - sum(scaled)
    return scaled
