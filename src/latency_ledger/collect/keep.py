"""Whether a request's child spans are kept, and the chance it had of being kept.

Contract: :meth:`KeepRule.keep` answers for each request as it ends, ``(reason,
probability)`` or None, from the collector's settings (``keep_spans``, ``sample_rate``,
``slow_per_endpoint``, ``slow_interval_s``): the slow rule keeps the slowest request so
far in each endpoint's interval, the random draw ``sample_rate`` of the rest; a failed
request is always kept. Not thread-safe beyond the interpreter's own (a lost update
under a thread switch keeps one request more or less).
"""

from __future__ import annotations

import random
from time import time_ns

from latency_ledger.collect.config import CollectConfig

# why a request's child spans were kept, and the chance it had of being kept
KEEP_ALL = ("all", 1.0)
KEEP_FAILED = ("failed", 1.0)
KEEP_SLOW = ("slow", 1.0)
KEEP_RANDOM = "random"


class KeepRule:
    """The collector's keep decision (module docstring), with its state: each endpoint's
    slowest request in the current interval, and the random draw."""

    __slots__ = ("config", "interval_ns", "rng", "slowest")

    def __init__(self, config: CollectConfig) -> None:
        self.config = config
        self.rng = random.Random()
        self.slowest: dict[str, tuple[int, int]] = {}
        self.interval_ns = int(config.slow_interval_s * 1e9)

    def keep(self, endpoint: str, wall_ns: int, failed: bool) -> tuple[str, float] | None:
        """Whether the request's child spans are kept: ``(reason, probability)`` or None.

        The probability is the chance this request had of being kept, given the requests
        before it: 1 for a failed request, for the slowest so far in its window and in
        ``"all"`` mode; ``sample_rate`` for one kept by the random draw alone. The slow
        rule is applied to every request, drawn or not, so which requests it keeps never
        depends on the draw: then the probability is exact and the analyzer weights a kept
        tree by its inverse (``findings.py``), so per-request figures hold for every request,
        not for the slow ones that were kept."""
        mode = self.config.keep_spans
        if mode == "all":
            return KEEP_ALL
        if mode == "none":
            return None
        slow = self.config.slow_per_endpoint and self._slowest_so_far(endpoint, wall_ns)
        if failed:
            return KEEP_FAILED
        if slow:
            return KEEP_SLOW
        rate = self.config.sample_rate
        if rate > 0 and self.rng.random() < rate:
            return (KEEP_RANDOM, rate)
        return None

    def _slowest_so_far(self, endpoint: str, wall_ns: int) -> bool:
        """The slowest request so far in this interval: keeps the interval's slowest and a
        few more (about ln n of n requests with independent latencies)."""
        window = time_ns() // self.interval_ns
        seen = self.slowest.get(endpoint)
        if seen is None or seen[0] != window or wall_ns > seen[1]:
            if len(self.slowest) < 10_000 or endpoint in self.slowest:
                self.slowest[endpoint] = (window, wall_ns)
            return True
        return False
