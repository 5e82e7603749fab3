"""Bounded stand-ins for per-request values: log-bucket histograms with a stated error.

Contract: a group of requests (an endpoint) or of call durations (a statement) keeps
its exact values up to :data:`EXACT_LIMIT` of them; past that, ``aggregate`` and
``findings`` fold them into a sketch here, whose memory depends on the spread of the
values, not their number (a few hundred buckets for latencies from 1 us to 1 h). A
percentile read from a sketch is within :data:`RELATIVE_ERROR` of a value at that rank
(its bucket's representative, clamped to the smallest and largest value the bucket
saw); means and totals stay exact. Whether a group is sketched depends only on how many
values it holds, and a sketch of a set of values is the same however the set was split
and merged, so one process and ``--jobs N`` still give the same report.

Why not a quantile-sketch library (``ddsketch``): the ledger at a percentile is the
mean split of the requests in a band of ranks around it, so each bucket must carry the
sums of every ledger column of its requests, not only a count. The buckets are
DDSketch's (``gamma = (1 + a) / (1 - a)``, index ``ceil(log_gamma(v))``), small enough
to write out.

:class:`LedgerSketch` holds one endpoint's requests: per (bucket of wall time, whether
the request measured its native split) the count, the smallest and largest wall time
and the sum of every column; plus the few per-group figures the native estimate needs.
:class:`DurationSketch` holds one statement's weighted call durations.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from latency_ledger.model import (
    BOUND_PARTS,
    MEASURED_PARTS,
    EndpointStats,
    NativeShare,
    NativeThreads,
)

RELATIVE_ERROR = 0.01
EXACT_LIMIT = 10_000  # values a group keeps exactly before it is sketched
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
_NOT_POSITIVE = -(1 << 30)  # the bucket of values below 1

# Summed per bucket, in this order (aggregate._Columns' names).
COLUMNS = (
    "wall",
    "database",
    "network",
    "interpreter",
    "waiting",
    "app",
    "queueing",
    "measured",
    "native",
    "native_max",
    "database_wait_max",
    "network_wait_max",
    "unbounded",
    "threads",
    "threads_max",
    "threads_booked",
)
AT = {name: 3 + i for i, name in enumerate(COLUMNS)}  # index in a bucket's record
_COUNT, _MIN, _MAX = 0, 1, 2
# indexes in a request's values (COLUMNS order)
_THREADS, _NATIVE, _BOOKED = (AT[name] - 3 for name in ("threads", "native", "threads_booked"))


def bucket(value: int) -> int:
    """The index of the bucket holding ``value``."""
    return math.ceil(math.log(value) / _LOG_GAMMA) if value >= 1 else _NOT_POSITIVE


def representative(index: int, low: int, high: int) -> int:
    """The value standing for bucket ``index`` (within RELATIVE_ERROR of any in it),
    kept between the smallest and largest value it saw."""
    if index == _NOT_POSITIVE:
        return low
    value = round(2 * _GAMMA**index / (_GAMMA + 1))
    return min(max(value, low), high)


def _combine(into: list[int], record: list[int]) -> None:
    """Add one bucket's record to another's."""
    into[_COUNT] += record[_COUNT]
    into[_MIN] = min(into[_MIN], record[_MIN])
    into[_MAX] = max(into[_MAX], record[_MAX])
    for i in range(3, len(into)):
        into[i] += record[i]


class LedgerSketch:
    """One group's requests (module docstring)."""

    __slots__ = ("buckets", "charged", "seen_squares")

    def __init__(self) -> None:
        # (bucket, native seen) -> [count, min wall, max wall, sum of each of COLUMNS]
        self.buckets: dict[tuple[int, int], list[int]] = {}
        self.charged = 0  # requests charged native threads' CPU (threads > 0)
        self.seen_squares = 0  # sum of (native - threads_booked)^2 over native-seen ones

    def add(self, values: Sequence[int], seen: int) -> None:
        """One request: its value of each of COLUMNS, and whether it measured native."""
        wall = values[0]
        key = (math.ceil(math.log(wall) / _LOG_GAMMA) if wall >= 1 else _NOT_POSITIVE, seen)
        record = self.buckets.get(key)
        if record is None:
            self.buckets[key] = [1, wall, wall, *values]
        else:
            record[_COUNT] += 1
            if wall < record[_MIN]:
                record[_MIN] = wall
            elif wall > record[_MAX]:
                record[_MAX] = wall
            for i, value in enumerate(values, 3):
                record[i] += value
        if values[_THREADS] > 0:
            self.charged += 1
        if seen:
            native = values[_NATIVE] - values[_BOOKED]
            self.seen_squares += native * native

    def merge(self, other: LedgerSketch) -> None:
        for key, theirs in other.buckets.items():
            mine = self.buckets.get(key)
            if mine is None:
                self.buckets[key] = list(theirs)
            else:
                _combine(mine, theirs)
        self.charged += other.charged
        self.seen_squares += other.seen_squares

    def copy(self) -> LedgerSketch:
        out = LedgerSketch()
        out.merge(self)
        return out

    @property
    def count(self) -> int:
        return sum(record[_COUNT] for record in self.buckets.values())

    def total(self, column: str, seen: int | None = None) -> int:
        """The sum of ``column`` (over the requests that measured native or not)."""
        at = AT[column]
        return sum(r[at] for (_b, s), r in self.buckets.items() if seen is None or s == seen)

    def counted(self, seen: int) -> int:
        return sum(r[_COUNT] for (_b, s), r in self.buckets.items() if s == seen)

    def _ordered(self) -> list[tuple[int, list[int]]]:
        """(bucket, record) by wall time, the two native halves of a bucket as one."""
        merged: dict[int, list[int]] = {}
        for (index, _seen), record in self.buckets.items():
            into = merged.get(index)
            if into is None:
                merged[index] = list(record)
            else:
                _combine(into, record)
        return sorted(merged.items())

    def value_at(self, rank: int) -> int:
        """The wall time at 1-based ``rank`` (module docstring)."""
        reached = 0
        ordered = self._ordered()
        for index, record in ordered:
            reached += record[_COUNT]
            if reached >= rank:
                return representative(index, record[_MIN], record[_MAX])
        index, record = ordered[-1]
        return representative(index, record[_MIN], record[_MAX])

    def band_sums(self, low: int, high: int, columns: Iterable[str]) -> list[int]:
        """The sums of ``columns`` over ranks ``low..high`` (1-based, inclusive); a
        bucket partly in the band gives that share of its sums."""
        ats = [AT[c] for c in columns]
        sums = [0] * len(ats)
        first = 1
        for _index, record in self._ordered():
            count = record[_COUNT]
            last = first + count - 1
            inside = min(last, high) - max(first, low) + 1
            if inside > 0:
                for j, at in enumerate(ats):
                    sums[j] += record[at] * inside // count
            first = last + 1
            if first > high:
                break
        return sums

    def estimate_native(self) -> tuple[LedgerSketch, tuple[int, ...]] | None:
        """``aggregate.estimate_native`` on the sketch: the unmeasured requests' CPU split
        by the measured ones' native share, bucket by bucket; with the group's figures
        (profiled, estimated, native, low, high, CPU; ns). None: none measured it."""
        seen_n = self.counted(1)
        if not seen_n:
            return None
        unseen_n = self.counted(0)

        def cpu(seen: int) -> int:
            return (
                self.total("interpreter", seen)
                + self.total("native", seen)
                - self.total("threads_booked", seen)
            )

        seen_cpu, unseen_cpu = cpu(1), cpu(0)
        mean_cpu = unseen_cpu / unseen_n if unseen_n else seen_cpu / seen_n
        seen_native = self.total("native", 1) - self.total("threads_booked", 1)
        seen_max = self.total("native_max", 1)
        mean_native, mean_max = seen_native / seen_n, seen_max / seen_n
        spread = 0.0
        if seen_n > 1:
            # sum((x - mean)^2) from exact integer sums: order does not matter
            squares = self.seen_squares * seen_n - seen_native * seen_native
            spread = 2 * math.sqrt(squares / (seen_n * (seen_n - 1)) / seen_n)
        fraction = min(1.0, mean_native / mean_cpu) if mean_cpu > 0 else 0.0
        low = max(0.0, (mean_native - spread) / mean_cpu) if mean_cpu > 0 else 0.0
        high = min(1.0, (mean_max + spread) / mean_cpu) if mean_cpu > 0 else 0.0
        out = self.copy()
        interpreter, native, booked = AT["interpreter"], AT["native"], AT["threads_booked"]
        for (_index, seen), record in out.buckets.items():
            if not seen:
                total = record[interpreter] + record[native] - record[booked]
                share = int(total * fraction)
                record[native] = share + record[booked]
                record[interpreter] = total - share
        return out, (
            seen_n,
            unseen_n,
            out.total("native") - out.total("threads_booked"),
            seen_native + int(unseen_cpu * low),
            seen_max + int(unseen_cpu * high),
            seen_cpu + unseen_cpu,
        )


def summarize_sketch(
    service: str,
    endpoint: str,
    sketch: LedgerSketch,
    errors: int,
    from_totals: int,
    native: NativeShare | None,
) -> EndpointStats:
    """``aggregate.summarize`` of a sketched group: percentiles and the bands' sums from
    the buckets (module docstring), means exact."""
    from latency_ledger.aggregate import PERCENTILES, _booked, _bounds, band, nearest_rank

    count = sketch.count
    measured = sketch.total("measured") == count
    names = MEASURED_PARTS if measured else BOUND_PARTS

    def parts(low: int, high: int) -> list[int]:
        if measured:
            return sketch.band_sums(low, high, MEASURED_PARTS)
        database, network, *own = sketch.band_sums(
            low, high, ("database", "network", "app", "interpreter", "native", "waiting")
        )
        return [database, network, sum(own)]

    latency: dict[str, int] = {}
    ledger: dict[str, dict[str, int]] = {}
    queueing: dict[str, int] = {}
    bounds: dict[str, dict[str, int]] = {}
    wall = sketch.total("wall")
    ranges = [
        (key, *band(p, count), sketch.value_at(nearest_rank(p, count))) for key, p in PERCENTILES
    ]
    ranges.append(("mean", 1, count, (2 * wall + count) // (2 * count)))
    for key, low, high, target in ranges:
        sums = parts(low, high)
        queued = sketch.band_sums(low, high, ("queueing",))[0] if measured else 0
        latency[key], ledger[key], queueing[key] = _booked(names, sums, queued, target)
        if measured:
            bound_sums = sketch.band_sums(low, high, _BOUND_COLUMNS)
            bounds[key] = _bounds(bound_sums, sum(sums), target, ledger[key])
    charged = sketch.charged
    return EndpointStats(
        service=service,
        endpoint=endpoint,
        count=count,
        errors=errors,
        cpu_measured=measured,
        latency_ns=latency,
        ledger_ns=ledger,
        queueing_ns=queueing,
        from_totals=from_totals,
        native=native if measured else None,
        wait_bounds_ns=bounds,
        native_threads=NativeThreads(
            requests=charged,
            cpu_ns_per_request=sketch.total("threads") // count,
            max_ns_per_request=sketch.total("threads_max") // count,
        )
        if charged and measured
        else None,
        percentile_error_fraction=RELATIVE_ERROR,
    )


_BOUND_COLUMNS = ("database_wait_max", "network_wait_max", "unbounded")


class DurationSketch:
    """One statement's weighted call durations: per bucket the weight, the number of
    calls, the smallest and largest duration and the weighted sum of durations."""

    __slots__ = ("buckets",)

    def __init__(self) -> None:
        self.buckets: dict[int, list[float]] = {}

    def add(self, values: Iterable[int], weights: Iterable[float], scale: float = 1.0) -> None:
        # bucket() and _add() inlined: this runs once per statement call
        buckets = self.buckets
        log, ceil = math.log, math.ceil
        for value, weight in zip(values, weights, strict=True):
            index = ceil(log(value) / _LOG_GAMMA) if value >= 1 else _NOT_POSITIVE
            weight *= scale
            record = buckets.get(index)
            if record is None:
                buckets[index] = [weight, 1, value, value, value * weight]
                continue
            record[0] += weight
            record[1] += 1
            if value < record[2]:
                record[2] = value
            elif value > record[3]:
                record[3] = value
            record[4] += value * weight

    def _add(self, index: int, weight: float, n: float, low: float, high: float, s: float) -> None:
        record = self.buckets.get(index)
        if record is None:
            self.buckets[index] = [weight, n, low, high, s]
            return
        record[0] += weight
        record[1] += n
        record[2] = min(record[2], low)
        record[3] = max(record[3], high)
        record[4] += s

    def merge(self, other: DurationSketch, scale: float = 1.0) -> None:
        for index, (weight, n, low, high, s) in other.buckets.items():
            self._add(index, weight * scale, n, low, high, s * scale)

    @property
    def count(self) -> int:
        return int(sum(record[1] for record in self.buckets.values()))

    def weighted_total(self) -> float:
        return sum(record[4] for record in self.buckets.values())

    def percentiles(self) -> tuple[int, int]:
        """Weighted nearest-rank p50 and p99, as ``findings.estimate.percentiles``."""
        ordered = sorted(self.buckets.items())
        if not ordered:
            return 0, 0
        total = sum(record[0] for _index, record in ordered)
        out = []
        for q in (0.50, 0.99):
            reach = q * total - 1e-9 * total
            cumulative = 0.0
            found = ordered[-1]
            for item in ordered:
                cumulative += item[1][0]
                if cumulative >= reach:
                    found = item
                    break
            index, record = found
            out.append(representative(index, int(record[2]), int(record[3])))
        return out[0], out[1]


__all__ = [
    "COLUMNS",
    "EXACT_LIMIT",
    "RELATIVE_ERROR",
    "DurationSketch",
    "LedgerSketch",
    "bucket",
    "representative",
    "summarize_sketch",
]
