"""Aggregation: booked requests -> per-endpoint statistics (DESIGN.md, "Aggregation").

Contract: :class:`Aggregator` is streaming. ``add`` keeps each request as one row of
compact ``array('q')`` columns per (service, endpoint), never the Request object, so
memory is a few dozen bytes per request, up to ``sketch.EXACT_LIMIT`` requests a group;
past that the group is folded into a ``sketch.LedgerSketch`` (log buckets of wall time
with every column's sum), whose size does not grow with the requests: its percentiles
are within ``sketch.RELATIVE_ERROR`` (``EndpointStats.percentile_error_fraction``), its
bands' sums are the buckets' shares, means stay exact. ``endpoints()`` and ``overall()``
are computed on demand and do not change the state. They do not depend on the order
requests were added in (nor does whether a group is sketched: only its size), so
accumulators filled by several processes ``merge`` into the same answer.

Latency percentiles are nearest-rank on the sorted wall times. The ledger at a
percentile is the mean split of the requests in a band of ranks within +-2.5 percentile
points of it (at least the percentile's own request), scaled so its parts sum EXACTLY to
that percentile's latency; the integer rounding remainder goes to the largest part. The
mean ledger is the mean split, scaled the same way to the mean latency.

:class:`EndpointCap` keeps the number of rows bounded: past ``limit`` distinct endpoints a
new one's requests go to its service's ``(other endpoints)`` row, and the fold is counted.

:class:`StreamTable` collects the requests that are long-lived streams (never given to
the Aggregator): per (service, endpoint, kind), how many and how long they stayed open.

Native CPU. Only profiled requests measure their split of CPU into ``interpreter`` and
``native`` (``Ledger.native_measured``). Each other request of the endpoint gets the
share ``f`` of its CPU as native, where ``f`` is the profiled requests' mean native CPU
over the unprofiled requests' mean CPU: native code runs at full speed under the
profiler while bytecode runs ~1.85x slower (measured here), so the absolute native time
of a profiled request is unbiased but its share of CPU is not. The endpoint's
:class:`~latency_ledger.model.NativeShare` states how many requests measured it and the
bound (the profile's upper native figure, and two standard errors of the profiled
requests' mean). The ``*`` row takes each request's split from its own endpoint.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace

from latency_ledger.model import (
    BOUND_PARTS,
    MEASURED_PARTS,
    EndpointStats,
    NativeShare,
    NativeThreads,
    Request,
    StreamStats,
)
from latency_ledger.sketch import COLUMNS, EXACT_LIMIT, LedgerSketch, summarize_sketch

PERCENTILES: tuple[tuple[str, int], ...] = (("p50", 50), ("p95", 95), ("p99", 99))
KEYS: tuple[str, ...] = ("p50", "p95", "p99", "mean")
# Band half-width in tenths of a percentile point (2.5 points), kept integral so band
# edges do not depend on float rounding.
BAND_HALF_WIDTH_TENTHS = 25
ALL = "*"


class _Columns:
    """One group's requests, one array per number."""

    __slots__ = (
        "app",
        "database",
        "database_wait_max",
        "errors",
        "from_totals",
        "interpreter",
        "measured",
        "native",
        "native_max",
        "native_seen",
        "network",
        "network_wait_max",
        "queueing",
        "sketch",
        "threads",
        "threads_booked",
        "threads_max",
        "unbounded",
        "waiting",
        "wall",
    )

    _EXTENDED = (*COLUMNS, "native_seen")

    def __init__(self) -> None:
        self.wall = array("q")
        self.database = array("q")
        self.network = array("q")
        self.interpreter = array("q")
        self.waiting = array("q")
        self.app = array("q")
        self.queueing = array("q")
        self.measured = array("b")
        self.native = array("q")
        self.native_max = array("q")  # the profile's upper native figure, when measured
        self.native_seen = array("b")  # 1: native measured by the request's own profile
        # bounds, not parts (model.Ledger): the tails' and native libraries' threads'
        self.database_wait_max = array("q")
        self.network_wait_max = array("q")
        self.unbounded = array("q")
        self.threads = array("q")
        self.threads_max = array("q")
        self.threads_booked = array("q")  # the part of ``native`` waited for those threads
        self.errors = 0
        self.from_totals = 0
        self.sketch: LedgerSketch | None = None  # past EXACT_LIMIT requests (sketch.py)

    def count(self) -> int:
        return len(self.wall) if self.sketch is None else self.sketch.count

    def total_wall(self) -> int:
        return sum(self.wall) if self.sketch is None else self.sketch.total("wall")

    def fold(self) -> LedgerSketch:
        """Move the exact rows into the sketch (made if need be); return it."""
        sketch = self.sketch
        if sketch is None:
            sketch = self.sketch = LedgerSketch()
        rows = zip(*(getattr(self, name) for name in COLUMNS), strict=True)
        for values, seen in zip(rows, self.native_seen, strict=True):
            sketch.add(values, seen)
        for name in self._EXTENDED:
            setattr(self, name, array(getattr(self, name).typecode))
        return sketch

    def extend(self, other: _Columns) -> None:
        exact = self.sketch is None and other.sketch is None
        if exact and len(self.wall) + len(other.wall) <= EXACT_LIMIT:
            for name in self._EXTENDED:
                getattr(self, name).extend(getattr(other, name))
            self.errors += other.errors
            self.from_totals += other.from_totals
            return
        sketch = self.fold()
        if other.sketch is not None:
            sketch.merge(other.sketch)
        rows = zip(*(getattr(other, name) for name in COLUMNS), strict=True)
        for values, seen in zip(rows, other.native_seen, strict=True):
            sketch.add(values, seen)
        self.errors += other.errors
        self.from_totals += other.from_totals


OTHER_ENDPOINT = "(other endpoints)"
_FOLDED_NAMES = 1_000_000  # distinct folded names counted exactly up to this many


class EndpointCap:
    """At most ``limit`` distinct (service, endpoint) rows: a request of a further new one
    is folded into its service's :data:`OTHER_ENDPOINT` row (hostile or unrouted traffic
    must not grow the analysis and the report without bound). Counts what it folds."""

    __slots__ = ("_folded", "_seen", "limit", "requests_folded")

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self._seen: set[tuple[str, str]] = set()
        self._folded: set[tuple[str, str]] = set()
        self.requests_folded = 0

    def fold(self, request: Request) -> Request:
        endpoint = self.fold_name(request.service, request.endpoint)
        return request if endpoint is request.endpoint else replace(request, endpoint=endpoint)

    def fold_name(self, service: str, endpoint: str, requests: int = 1) -> str:
        """The row ``requests`` requests of (service, endpoint) go to."""
        key = (service, endpoint)
        if key in self._seen:
            return endpoint
        if len(self._seen) < self.limit:
            self._seen.add(key)
            return endpoint
        if endpoint != OTHER_ENDPOINT:  # already folded (merging): counted where it was
            self.requests_folded += requests
            if len(self._folded) < _FOLDED_NAMES:
                self._folded.add(key)
        return OTHER_ENDPOINT

    def merge_counts(self, other: EndpointCap) -> None:
        """Add what ``other`` folded (its requests went through its own cap)."""
        self.requests_folded += other.requests_folded
        for key in other._folded:
            if len(self._folded) >= _FOLDED_NAMES:
                break
            self._folded.add(key)

    def problem(self) -> str | None:
        """The one line saying what was folded, or None."""
        if not self.requests_folded:
            return None
        names = len(self._folded)
        more = "+" if names >= _FOLDED_NAMES else ""
        return (
            f"more than {self.limit:,} endpoints: {names:,}{more} further endpoints "
            f"({self.requests_folded:,} requests) are one row {OTHER_ENDPOINT!r} "
            "(raise the limit with --max-endpoints)"
        )


class Aggregator:
    """Streaming per-endpoint accumulator; see the module docstring."""

    __slots__ = ("_groups",)

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], _Columns] = {}

    def add(self, request: Request) -> None:
        key = (request.service, request.endpoint)
        columns = self._groups.get(key)
        if columns is None:
            columns = self._groups[key] = _Columns()
        ledger = request.ledger
        if columns.sketch is not None:
            columns.sketch.add(
                (
                    request.wall_ns,
                    ledger.database_ns,
                    ledger.network_ns,
                    ledger.interpreter_ns,
                    ledger.waiting_ns,
                    ledger.app_ns,
                    ledger.queueing_ns,
                    1 if ledger.cpu_measured else 0,
                    ledger.native_ns,
                    ledger.native_max_ns if ledger.native_measured else 0,
                    ledger.database_wait_max_ns,
                    ledger.network_wait_max_ns,
                    ledger.unbounded_io_ns,
                    ledger.native_threads_ns,
                    ledger.native_threads_max_ns,
                    ledger.native_threads_booked_ns,
                ),
                1 if ledger.native_measured else 0,
            )
            columns.errors += request.is_error
            columns.from_totals += request.from_totals
            return
        columns.wall.append(request.wall_ns)
        columns.database.append(ledger.database_ns)
        columns.network.append(ledger.network_ns)
        columns.interpreter.append(ledger.interpreter_ns)
        columns.waiting.append(ledger.waiting_ns)
        columns.app.append(ledger.app_ns)
        columns.queueing.append(ledger.queueing_ns)
        columns.measured.append(1 if ledger.cpu_measured else 0)
        columns.native.append(ledger.native_ns)
        columns.native_max.append(ledger.native_max_ns if ledger.native_measured else 0)
        columns.native_seen.append(1 if ledger.native_measured else 0)
        columns.database_wait_max.append(ledger.database_wait_max_ns)
        columns.network_wait_max.append(ledger.network_wait_max_ns)
        columns.unbounded.append(ledger.unbounded_io_ns)
        columns.threads.append(ledger.native_threads_ns)
        columns.threads_max.append(ledger.native_threads_max_ns)
        columns.threads_booked.append(ledger.native_threads_booked_ns)
        columns.errors += request.is_error
        columns.from_totals += request.from_totals
        if len(columns.wall) > EXACT_LIMIT:
            columns.fold()

    def groups(self) -> list[tuple[tuple[str, str], int]]:
        """Every (service, endpoint) and its number of requests."""
        return [(key, columns.count()) for key, columns in self._groups.items()]

    def merge(self, other: Aggregator, rename: dict[tuple[str, str], str]) -> None:
        """Add ``other``'s requests; ``rename`` gives the endpoint each of its groups
        goes to here (row caps applied)."""
        for (service, endpoint), columns in other._groups.items():
            key = (service, rename.get((service, endpoint), endpoint))
            into = self._groups.get(key)
            if into is None:
                into = self._groups[key] = _Columns()
            into.extend(columns)

    def endpoints(self) -> tuple[EndpointStats, ...]:
        """One row per (service, endpoint), by total time (count * mean) descending."""
        rows = [
            (columns.total_wall(), service, endpoint, columns)
            for (service, endpoint), columns in self._groups.items()
        ]
        rows.sort(key=lambda row: (-row[0], row[1], row[2]))
        return tuple(
            summarize(service, endpoint, *estimate_native(columns))
            for _, service, endpoint, columns in rows
        )

    def overall(self) -> EndpointStats:
        """Every request together, as service ``"*"`` and endpoint ``"*"``; each request's
        native split estimated within its own endpoint."""
        merged = _Columns()
        bounds: list[_NativeBound] = []
        for columns in self._groups.values():
            estimated, bound = estimate_native(columns)
            merged.extend(estimated)
            if bound is not None:
                bounds.append(bound)
        return summarize(ALL, ALL, merged, _merge_bounds(bounds) if bounds else None)


@dataclass(frozen=True, slots=True, kw_only=True)
class _NativeBound:
    """A group's native CPU as booked, its bounds in ns, and its CPU."""

    profiled: int
    estimated: int
    native_ns: int
    low_ns: int
    high_ns: int
    cpu_ns: int

    def share(self) -> NativeShare:
        cpu = self.cpu_ns
        fraction = self.native_ns / cpu if cpu > 0 else 0.0
        return NativeShare(
            profiled=self.profiled,
            estimated=self.estimated,
            cpu_fraction=fraction,
            cpu_fraction_low=min(fraction, self.low_ns / cpu) if cpu > 0 else 0.0,
            cpu_fraction_high=max(fraction, self.high_ns / cpu) if cpu > 0 else 0.0,
        )


def _merge_bounds(bounds: Sequence[_NativeBound]) -> _NativeBound:
    return _NativeBound(
        profiled=sum(b.profiled for b in bounds),
        estimated=sum(b.estimated for b in bounds),
        native_ns=sum(b.native_ns for b in bounds),
        low_ns=sum(b.low_ns for b in bounds),
        high_ns=sum(b.high_ns for b in bounds),
        cpu_ns=sum(b.cpu_ns for b in bounds),
    )


def estimate_native(columns: _Columns) -> tuple[_Columns, _NativeBound | None]:
    """``columns`` with every unprofiled request's CPU split by the endpoint's native
    share (module docstring), and the group's bound; unchanged, None, when no request
    of the group measured its split."""
    if columns.sketch is not None:
        found = columns.sketch.estimate_native()
        if found is None:
            return columns, None
        out = _Columns()
        out.sketch, figures = found
        out.errors, out.from_totals = columns.errors, columns.from_totals
        return out, _NativeBound(
            profiled=figures[0],
            estimated=figures[1],
            native_ns=figures[2],
            low_ns=figures[3],
            high_ns=figures[4],
            cpu_ns=figures[5],
        )
    if 1 not in columns.native_seen:  # a scan at C speed: most groups were never profiled
        return columns, None
    seen = [i for i, flag in enumerate(columns.native_seen) if flag]
    interpreter, booked = columns.interpreter, columns.threads_booked
    # the wait for native libraries' threads is native whatever the profile says: the
    # split by profile is of the request's own CPU only
    native = [n - b for n, b in zip(columns.native, booked, strict=True)]
    cpu = [interpreter[i] + native[i] for i in range(len(native))]
    unseen = [i for i, flag in enumerate(columns.native_seen) if not flag]
    basis = unseen or seen
    mean_cpu = sum(cpu[i] for i in basis) / len(basis)
    profiled = [native[i] for i in seen]
    mean_native = sum(profiled) / len(seen)
    mean_max = sum(columns.native_max[i] for i in seen) / len(seen)
    spread = 0.0
    if len(seen) > 1:
        # fsum: exact, so the result does not depend on the order of the requests
        variance = math.fsum((n - mean_native) ** 2 for n in profiled) / (len(seen) - 1)
        spread = 2 * math.sqrt(variance / len(seen))
    fraction = min(1.0, mean_native / mean_cpu) if mean_cpu > 0 else 0.0
    low = max(0.0, (mean_native - spread) / mean_cpu) if mean_cpu > 0 else 0.0
    high = min(1.0, (mean_max + spread) / mean_cpu) if mean_cpu > 0 else 0.0
    out = _Columns()
    out.extend(columns)
    for i in unseen:
        share = int(cpu[i] * fraction)
        out.native[i] = share + booked[i]
        out.interpreter[i] = cpu[i] - share
    total_cpu = sum(cpu)
    unseen_cpu = sum(cpu[i] for i in unseen)
    seen_native = sum(profiled)
    seen_max = sum(columns.native_max[i] for i in seen)
    return out, _NativeBound(
        profiled=len(seen),
        estimated=len(unseen),
        native_ns=sum(out.native) - sum(booked),
        # the profiled requests' own figures, and the bounded share of the others' CPU
        low_ns=seen_native + int(unseen_cpu * low),
        high_ns=seen_max + int(unseen_cpu * high),
        cpu_ns=total_cpu,
    )


class StreamTable:
    """Streams per (service, endpoint, kind): counts, errors and open durations."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str, str], tuple[array[int], list[int]]] = {}

    def add(self, request: Request) -> None:
        key = (request.service, request.endpoint, request.stream)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = (array("q"), [0])
        group[0].append(request.wall_ns)
        group[1][0] += request.is_error

    def merge(self, other: StreamTable, rename: dict[tuple[str, str], str]) -> None:
        """Add ``other``'s streams; ``rename`` as in :meth:`Aggregator.merge`."""
        for (service, endpoint, kind), (walls, errors) in other._groups.items():
            key = (service, rename.get((service, endpoint), endpoint), kind)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = (array("q"), [0])
            group[0].extend(walls)
            group[1][0] += errors[0]

    def groups(self) -> list[tuple[tuple[str, str], int]]:
        """Every (service, endpoint) holding streams, and how many."""
        counts: dict[tuple[str, str], int] = {}
        for (service, endpoint, _kind), (walls, _errors) in self._groups.items():
            counts[(service, endpoint)] = counts.get((service, endpoint), 0) + len(walls)
        return list(counts.items())

    def streams(self) -> tuple[StreamStats, ...]:
        out = []
        for (service, endpoint, kind), (walls, errors) in sorted(self._groups.items()):
            ordered = sorted(walls)
            out.append(
                StreamStats(
                    service=service,
                    endpoint=endpoint,
                    kind=kind,
                    count=len(ordered),
                    errors=errors[0],
                    median_ns=ordered[nearest_rank(50, len(ordered)) - 1],
                    max_ns=ordered[-1],
                )
            )
        return tuple(out)


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


def summarize(
    service: str, endpoint: str, columns: _Columns, native: _NativeBound | None = None
) -> EndpointStats:
    """The statistics of one group of requests (native split already estimated)."""
    if columns.sketch is not None:
        share = native.share() if native is not None else None
        return summarize_sketch(
            service, endpoint, columns.sketch, columns.errors, columns.from_totals, share
        )
    count = len(columns.wall)
    measured = count > 0 and 0 not in columns.measured
    names = MEASURED_PARTS if measured else BOUND_PARTS
    if count == 0:
        zeros = dict.fromkeys(KEYS, 0)
        return EndpointStats(
            service=service,
            endpoint=endpoint,
            count=0,
            errors=0,
            cpu_measured=False,
            latency_ns=zeros,
            ledger_ns={key: dict.fromkeys(names, 0) for key in KEYS},
            queueing_ns=dict(zeros),
        )
    part_columns = _part_columns(columns, measured)
    wall = columns.wall
    order = _ranked(columns)
    latency: dict[str, int] = {}
    ledger: dict[str, dict[str, int]] = {}
    queueing: dict[str, int] = {}
    bounds: dict[str, dict[str, int]] = {}
    bound_columns = (columns.database_wait_max, columns.network_wait_max, columns.unbounded)
    for key, percentile in PERCENTILES:
        target = wall[order[nearest_rank(percentile, count) - 1]]
        low, high = band(percentile, count)
        members = order[low - 1 : high]
        sums = [sum(column[i] for i in members) for column in part_columns]
        queued = sum(columns.queueing[i] for i in members) if measured else 0
        latency[key], ledger[key], queueing[key] = _booked(names, sums, queued, target)
        if measured:
            bound_sums = [sum(column[i] for i in members) for column in bound_columns]
            bounds[key] = _bounds(bound_sums, sum(sums), target, ledger[key])
    total_wall = sum(wall)
    mean = (2 * total_wall + count) // (2 * count)  # rounded to the nearest ns
    sums = [sum(column) for column in part_columns]
    queued = sum(columns.queueing) if measured else 0
    latency["mean"], ledger["mean"], queueing["mean"] = _booked(names, sums, queued, mean)
    if measured:
        bound_sums = [sum(column) for column in bound_columns]
        bounds["mean"] = _bounds(bound_sums, sum(sums), mean, ledger["mean"])
    charged = sum(1 for value in columns.threads if value > 0)
    return EndpointStats(
        service=service,
        endpoint=endpoint,
        count=count,
        errors=columns.errors,
        cpu_measured=measured,
        latency_ns=latency,
        ledger_ns=ledger,
        queueing_ns=queueing,
        from_totals=columns.from_totals,
        native=native.share() if native is not None and measured else None,
        wait_bounds_ns=bounds,
        native_threads=NativeThreads(
            requests=charged,
            cpu_ns_per_request=sum(columns.threads) // count,
            max_ns_per_request=sum(columns.threads_max) // count,
        )
        if charged and measured
        else None,
    )


def _ranked(columns: _Columns) -> list[int]:
    """Row indexes by latency. Equal latencies are ordered by the rest of the row, so
    which of them fall in a percentile's band does not depend on the order requests
    arrived in (the full-row sort is only paid when latencies repeat)."""
    wall = columns.wall
    if len(set(wall)) == len(wall):
        return sorted(range(len(wall)), key=wall.__getitem__)
    rows = list(
        zip(
            wall,
            columns.database,
            columns.network,
            columns.interpreter,
            columns.native,
            columns.waiting,
            columns.app,
            columns.queueing,
            columns.database_wait_max,
            columns.network_wait_max,
            columns.unbounded,
            columns.threads,
            columns.threads_max,
            columns.threads_booked,
            strict=True,
        )
    )
    return sorted(range(len(wall)), key=rows.__getitem__)


def _bounds(sums: Sequence[int], total: int, target: int, parts: dict[str, int]) -> dict[str, int]:
    """The bounds' sums over a band scaled as its parts were (to ``target`` from ``total``),
    each at most the part it bounds (model.EndpointStats.wait_bounds_ns)."""
    database, network = parts["database"], parts["network"]
    scaled = [value * target // total if total > 0 else 0 for value in sums]
    return {
        "database": min(scaled[0], database),
        "network": min(scaled[1], network),
        "unbounded": min(scaled[2], database + network),
    }


def _part_columns(columns: _Columns, measured: bool) -> list[array[int]]:
    if measured:
        return [
            columns.database,
            columns.network,
            columns.interpreter,
            columns.native,
            columns.waiting,
        ]
    # A mix of measured and unmeasured requests: the endpoint is reported without CPU,
    # so measured requests' interpreter + waiting are booked as app (own time), keeping
    # one set of keys per endpoint.
    own = array(
        "q",
        (
            a + i + n + w
            for a, i, n, w in zip(
                columns.app, columns.interpreter, columns.native, columns.waiting, strict=True
            )
        ),
    )
    return [columns.database, columns.network, own]


def _booked(
    names: Sequence[str], sums: list[int], queued: int, target: int
) -> tuple[int, dict[str, int], int]:
    parts = scale_parts(sums, target)
    total = sum(sums)
    queueing = 0
    if queued and total > 0:
        # Queueing is part of waiting: scaled the same way, never more than it.
        queueing = min(queued * target // total, parts[names.index("waiting")])
    return target, dict(zip(names, parts, strict=True)), queueing
