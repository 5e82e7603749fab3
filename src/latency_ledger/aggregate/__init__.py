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

Modules, each importing only those before it: ``ranks`` (percentile ranks, exact
scaling) -> ``columns`` (one group's rows) -> ``native`` (the native CPU estimate) ->
``summary`` (a group -> EndpointStats) -> ``aggregator`` (Aggregator); ``cap``
(EndpointCap) and ``stream_table`` (StreamTable) stand apart. This module re-exports
their names, so ``from latency_ledger.aggregate import X`` is the way in.
"""

from __future__ import annotations

from latency_ledger.aggregate.aggregator import (
    ALL,
    Aggregator,
)
from latency_ledger.aggregate.cap import (
    OTHER_ENDPOINT,
    EndpointCap,
)
from latency_ledger.aggregate.columns import (
    _Columns as _Columns,
)
from latency_ledger.aggregate.native import (
    estimate_native,
)
from latency_ledger.aggregate.ranks import (
    BAND_HALF_WIDTH_TENTHS,
    KEYS,
    PERCENTILES,
    band,
    nearest_rank,
    scale_parts,
)
from latency_ledger.aggregate.stream_table import (
    StreamTable,
)
from latency_ledger.aggregate.summary import (
    _booked as _booked,
)
from latency_ledger.aggregate.summary import (
    _bounds as _bounds,
)
from latency_ledger.aggregate.summary import (
    summarize,
)

# The private names above (``as`` re-exports) are imported by sketch.py and tests.
__all__ = [
    "ALL",
    "BAND_HALF_WIDTH_TENTHS",
    "KEYS",
    "OTHER_ENDPOINT",
    "PERCENTILES",
    "Aggregator",
    "EndpointCap",
    "StreamTable",
    "band",
    "estimate_native",
    "nearest_rank",
    "scale_parts",
    "summarize",
]
