"""A group of requests -> its EndpointStats (latency percentiles and their ledgers).

Contract: :func:`summarize` is pure and does not change the columns. The ledger at a
percentile is the mean split of the requests in its band (``ranks.band``), scaled so its
parts sum EXACTLY to that percentile's latency; the mean ledger likewise to the mean
latency. Requests of equal latency are ranked by the rest of their row, so the answer
does not depend on the order they arrived in. A sketched group is summarized by
``sketch.summarize_sketch``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from latency_ledger.aggregate.columns import _Columns
from latency_ledger.aggregate.native import _NativeBound
from latency_ledger.aggregate.ranks import KEYS, PERCENTILES, band, nearest_rank, scale_parts
from latency_ledger.model import BOUND_PARTS, MEASURED_PARTS, EndpointStats, NativeThreads
from latency_ledger.sketch import summarize_sketch


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
