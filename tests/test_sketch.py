"""Groups too large to keep exactly (sketch.py): bounded memory, stated error, and the
same answer however the requests were split between workers.

Expected values are fixed by construction before anything is measured: requests of
1, 2, ..., N ms (in a shuffled order), so the exact nearest-rank percentile is known.
"""

from __future__ import annotations

import importlib.util
import math
import random
from array import array
from pathlib import Path

import pytest

from latency_ledger import aggregate
from latency_ledger.aggregate import Aggregator, _Columns, estimate_native
from latency_ledger.aggregate import aggregator as aggregator_module
from latency_ledger.aggregate import columns as columns_module
from latency_ledger.analyze import AnalyzeOptions, analyze
from latency_ledger.findings import accumulator
from latency_ledger.model import Ledger, Request
from latency_ledger.render.json import report_to_json
from latency_ledger.sketch import (
    EXACT_LIMIT,
    RELATIVE_ERROR,
    DurationSketch,
    LedgerSketch,
    bucket,
    representative,
)

MS = 1_000_000
ROOT = Path(__file__).resolve().parents[1]


def _request(wall: int, *, profiled: bool = False, cpu: int = 0) -> Request:
    database = wall // 4
    network = wall // 4
    own = wall - database - network
    ledger = Ledger(
        database_ns=database,
        network_ns=network,
        interpreter_ns=cpu // 2 if profiled else cpu,
        native_ns=cpu - cpu // 2 if profiled else 0,
        native_measured=profiled,
        native_max_ns=cpu if profiled else 0,
        waiting_ns=own - cpu,
        cpu_measured=True,
    )
    return Request(
        trace_id="t",
        span_id="s",
        service="shop",
        method="GET",
        endpoint="GET /orders/{id}",
        start_ns=0,
        wall_ns=wall,
        status_code=200,
        is_error=False,
        ledger=ledger,
    )


def _requests(count: int, seed: int = 1) -> list[Request]:
    walls = [k * MS for k in range(1, count + 1)]
    random.Random(seed).shuffle(walls)
    return [_request(w, profiled=i % 7 == 0, cpu=w // 5) for i, w in enumerate(walls)]


def test_buckets_hold_values_within_the_stated_error() -> None:
    for value in (1, 2, 3, 999, 1000, 1001, 123_456_789, 10**13):
        index = bucket(value)
        assert abs(representative(index, 0, 1 << 62) - value) <= RELATIVE_ERROR * value
    assert representative(bucket(5000), 5000, 5000) == 5000  # one value: exact


def test_a_large_group_is_sketched_with_percentiles_within_the_error() -> None:
    count = 3 * EXACT_LIMIT
    aggregator = Aggregator()
    for request in _requests(count):
        aggregator.add(request)
    (row,) = aggregator.endpoints()
    columns = next(iter(aggregator._groups.values()))
    assert len(columns.wall) == 0
    assert columns.sketch is not None
    # walls span 1 ms..30 s: log(30000) / log(gamma) buckets at most, twice (profiled)
    assert len(columns.sketch.buckets) <= 2 * (math.log(count) / math.log(1.01 / 0.99) + 2)
    assert row.count == count
    assert row.percentile_error_fraction == RELATIVE_ERROR
    for key, percentile in (("p50", 50), ("p95", 95), ("p99", 99)):
        exact = -(-percentile * count // 100) * MS
        assert abs(row.latency_ns[key] - exact) <= 0.01 * exact  # the error the report states
        assert sum(row.ledger_ns[key].values()) == row.latency_ns[key]
        # a quarter is database time in every request: so in every band
        assert row.ledger_ns[key]["database"] == pytest.approx(row.latency_ns[key] / 4, rel=0.01)
    assert row.latency_ns["mean"] == (count + 1) * MS // 2  # means stay exact
    assert row.native is not None
    assert row.native.profiled == len(range(0, count, 7))


def test_a_small_group_stays_exact() -> None:
    aggregator = Aggregator()
    for request in _requests(EXACT_LIMIT):
        aggregator.add(request)
    (row,) = aggregator.endpoints()
    assert row.percentile_error_fraction == 0.0
    assert row.latency_ns["p50"] == EXACT_LIMIT // 2 * MS


@pytest.mark.parametrize("sizes", [(6000, 6000, 6000), (15_000, 100, 4900), (1, 25_000, 1)])
def test_split_and_merged_groups_give_the_same_row(sizes: tuple[int, ...]) -> None:
    requests = _requests(sum(sizes), seed=2)
    whole = Aggregator()
    for request in requests:
        whole.add(request)
    parts = []
    at = 0
    for size in sizes:
        part = Aggregator()
        for request in reversed(requests[at : at + size]):
            part.add(request)
        parts.append(part)
        at += size
    merged = parts[1]
    for part in (parts[2], parts[0]):
        merged.merge(part, {})
    assert merged.endpoints() == whole.endpoints()
    assert merged.overall() == whole.overall()


def test_the_native_estimate_of_a_sketch_is_the_exact_ones() -> None:
    exact = _Columns()
    for request in _requests(5000, seed=3):
        add_to(exact, request)
    _out, bound = estimate_native(exact)
    folded = _Columns()
    folded.extend(exact)
    folded.fold()
    _sketched, sketch_bound = estimate_native(folded)
    assert bound is not None
    assert sketch_bound is not None
    assert (sketch_bound.profiled, sketch_bound.estimated, sketch_bound.cpu_ns) == (
        bound.profiled,
        bound.estimated,
        bound.cpu_ns,
    )
    # each unprofiled request's share is rounded down alone in the exact way
    assert abs(sketch_bound.native_ns - bound.native_ns) <= bound.estimated
    assert sketch_bound.low_ns == pytest.approx(bound.low_ns, rel=1e-9)
    assert sketch_bound.high_ns == pytest.approx(bound.high_ns, rel=1e-9)


def add_to(columns: _Columns, request: Request) -> None:
    aggregator = Aggregator()
    aggregator.add(request)
    columns.extend(next(iter(aggregator._groups.values())))


def test_duration_sketch_percentiles_and_total() -> None:
    values = list(range(1000, 1000 + 40_000))
    random.Random(4).shuffle(values)
    sketch = DurationSketch()
    sketch.add(values[:25_000], [1.0] * 25_000)
    other = DurationSketch()
    other.add(values[25_000:], [1.0] * 15_000)
    sketch.merge(other)
    p50, p99 = sketch.percentiles()
    ordered = sorted(values)
    assert abs(p50 - ordered[19_999]) <= RELATIVE_ERROR * ordered[19_999]
    assert abs(p99 - ordered[39_599]) <= RELATIVE_ERROR * ordered[39_599]
    assert sketch.weighted_total() == sum(values)
    assert sketch.count == 40_000


def test_ledger_sketch_band_sums_are_the_buckets_shares() -> None:
    sketch = LedgerSketch()
    zeros = [0] * 15
    for wall in (100, 100, 100, 100):  # one bucket of four equal requests
        sketch.add([wall, *zeros], 0)
    assert sketch.band_sums(2, 3, ("wall",)) == [200]
    assert sketch.value_at(3) == 100


_SPEC = importlib.util.spec_from_file_location("_gen", ROOT / "tests" / "read" / "gen.py")
assert _SPEC is not None
assert _SPEC.loader is not None
GEN = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(GEN)


def test_reports_with_sketched_groups_are_equal_with_any_number_of_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small limit so a test-sized input has sketched endpoints and statements.
    # (read where a request is added and where groups are merged)
    monkeypatch.setattr(aggregator_module, "EXACT_LIMIT", 50)
    monkeypatch.setattr(columns_module, "EXACT_LIMIT", 50)
    monkeypatch.setattr(accumulator, "EXACT_LIMIT", 50)
    path = tmp_path / "gen.jsonl"
    GEN.write_otlp_jsonl(path, requests=1500, spans_per_request=12, seed=11)
    reports = [
        report_to_json(analyze([path], options=AnalyzeOptions(jobs=jobs, idle_spans=idle)))
        for jobs, idle in ((1, 200_000), (2, 200_000), (3, 400), (2, 50))
    ]
    assert reports[0]["overall"]["percentile_error_fraction"] == RELATIVE_ERROR
    assert all(e["count"] > 50 for e in reports[0]["endpoints"])
    assert all("percentile_error_fraction" in e for e in reports[0]["endpoints"])
    for other in reports[1:]:
        assert other == reports[0]


def test_an_exact_group_copied_keeps_its_arrays() -> None:
    columns = _Columns()
    add_to(columns, _request(5 * MS))
    copy = _Columns()
    copy.extend(columns)
    assert copy.sketch is None
    assert copy.wall == array("q", [5 * MS])
    assert aggregate.summarize("s", "e", copy) == aggregate.summarize("s", "e", columns)
