"""The verdict on hand-built endpoint statistics: expected numbers first, then the verdict."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from latency_ledger.errors import ConfigError
from latency_ledger.findings import N_PLUS_ONE, SLOW_STATEMENT
from latency_ledger.model import EndpointStats, Finding, Projection, TargetRuntime, Verdict
from latency_ledger.verdict import (
    DEFAULT_TARGETS,
    DONT_MIGRATE,
    MARGINAL,
    MIGRATION_COULD_PAY,
    decide_verdict,
    format_ms,
    format_percent,
    parse_target,
)

MS = 1_000_000
NODE = TargetRuntime(name="node", factor_low=2, factor_typical=5, factor_high=10, source="test")
GO = TargetRuntime(name="go", factor_low=3, factor_typical=10, factor_high=30, source="test")


def stats(
    parts_ms: Mapping[str, float],
    *,
    count: int = 500,
    p99_scale: float = 3.0,
    queueing_ms: float = 0.0,
    runtime: str = "cpython",
) -> EndpointStats:
    """An endpoint whose p50 and mean split is ``parts_ms`` and whose p99 is scaled."""
    cpu_measured = "app" not in parts_ms
    p50 = {k: round(v * MS) for k, v in parts_ms.items()}
    p99 = {k: round(v * MS * p99_scale) for k, v in parts_ms.items()}
    queueing = round(queueing_ms * MS)
    return EndpointStats(
        service="shop",
        endpoint="GET /orders/{id}",
        count=count,
        errors=0,
        cpu_measured=cpu_measured,
        latency_ns={"p50": sum(p50.values()), "p99": sum(p99.values()), "mean": sum(p50.values())},
        ledger_ns={"p50": p50, "p99": p99, "mean": p50},
        queueing_ns={"p50": queueing, "p99": round(queueing * p99_scale), "mean": queueing}
        if cpu_measured
        else {},
        runtime=runtime,
    )


def projection(verdict: Verdict, name: str) -> Projection:
    return next(p for p in verdict.projections if p.target.name == name)


def n_plus_one(ns_per_request: int, fraction: float = 1.0) -> Finding:
    return Finding(
        kind=N_PLUS_ONE,
        detail="SELECT * FROM items WHERE order_id = ? run 21x per request",
        target="SELECT * FROM items WHERE order_id = ?",
        count_per_request=21,
        ns_per_request=ns_per_request,
        requests_fraction=fraction,
    )


def test_92_percent_database_wait_is_dont_migrate_with_node_under_8_percent() -> None:
    # p50 = 100 ms: 92 ms database, 8 ms interpreter (the worst case: all own time CPU).
    # Node.js at 5x saves 8 x (1 - 1/5) = 6.4 ms = 6.4%; Go at 10x saves 7.2 ms = 7.2%.
    verdict = decide_verdict(
        stats({"database": 92, "network": 0, "interpreter": 8, "waiting": 0}), ()
    )
    node = projection(verdict, "node")
    go = projection(verdict, "go")
    assert node.p50_saving_ns == 6_400_000
    assert node.p50_saving_fraction < 0.08
    assert node.p50_ns == 93_600_000
    assert go.p50_saving_fraction == pytest.approx(0.072)
    assert verdict.label == DONT_MIGRATE
    assert verdict.confidence == "high"
    assert verdict.upper_bound is False
    assert verdict.summary.startswith("Don't migrate: 92% of p50 is database wait;")
    assert "even a Go port saves about 7.2 ms (7.2%) of p50" in verdict.summary


def test_dont_migrate_names_the_cheaper_fix_with_its_time() -> None:
    fix = n_plus_one(29 * MS)
    verdict = decide_verdict(
        stats({"database": 92, "network": 0, "interpreter": 6, "waiting": 2}), (fix,)
    )
    assert verdict.label == DONT_MIGRATE
    assert verdict.fixes == (fix,)
    # Go saves 6 x 0.9 = 5.4 ms on the mean ledger (= p50 here): both means side by side.
    assert verdict.summary.endswith(
        "fix the N+1 on SELECT * FROM items WHERE order_id = ? first "
        "(saves up to 29 ms per request on average; the port: 5.4 ms on average)."
    )


def test_80_percent_measured_interpreter_time_could_pay() -> None:
    # p50 = 100 ms: 80 interpreter, 15 database, 5 waiting. Node.js: 80 x 0.8 = 64 ms
    # (64%); Go: 80 x 0.9 = 72 ms (72%). CPU per request 80 ms -> 12.5 requests per
    # core now, 62.5 on Node.js, 125 on Go.
    verdict = decide_verdict(
        stats({"database": 15, "network": 0, "interpreter": 80, "waiting": 5}), ()
    )
    node = projection(verdict, "node")
    go = projection(verdict, "go")
    assert node.p50_saving_ns == 64 * MS
    assert go.p50_saving_fraction == pytest.approx(0.72)
    assert go.p99_saving_ns == 216 * MS
    assert node.p50_saving_range_ns == (40 * MS, 72 * MS)
    assert verdict.label == MIGRATION_COULD_PAY
    assert verdict.confidence == "high"
    assert verdict.cpu_per_request_ns == 80 * MS
    assert verdict.requests_per_core == pytest.approx(12.5)
    assert node.requests_per_core == pytest.approx(62.5)
    assert go.requests_per_core == pytest.approx(125.0)
    assert verdict.summary.startswith("Migration could pay: 80% of p50 is interpreter (CPU) time;")


def test_a_large_share_of_a_tiny_latency_is_not_worth_a_port() -> None:
    # p50 = 0.7 ms, 80% interpreter: Go saves 0.56 x 0.9 = 0.5 ms (72%), under the 2 ms
    # floor, so the label is dont_migrate although the fraction alone would say "could pay".
    verdict = decide_verdict(
        stats({"database": 0.1, "network": 0, "interpreter": 0.56, "waiting": 0.04}), ()
    )
    assert projection(verdict, "go").p50_saving_fraction == pytest.approx(0.72, abs=0.01)
    assert verdict.label == DONT_MIGRATE
    assert any("under the 2" in reason for reason in verdict.reasons)


def test_cpu_not_measured_is_labelled_an_upper_bound() -> None:
    # 50 ms own time with CPU not measured out of 100: Go's bound is 45 ms (45%).
    verdict = decide_verdict(stats({"database": 40, "network": 10, "app": 50}), ())
    go = projection(verdict, "go")
    assert go.p50_saving_ns == 45 * MS
    assert verdict.upper_bound is True
    assert verdict.confidence == "medium"  # a bound is never high confidence
    assert verdict.cpu_per_request_ns is None
    assert verdict.requests_per_core is None
    assert go.requests_per_core is None
    assert "saves at most 45 ms (45%) of p50 (an upper bound: CPU was not measured)" in (
        verdict.summary
    )
    assert any("upper bound" in r for r in verdict.reasons)


def test_bound_small_enough_is_still_a_confident_dont_migrate_label() -> None:
    verdict = decide_verdict(stats({"database": 95, "network": 0, "app": 5}), ())
    assert verdict.label == DONT_MIGRATE
    assert verdict.upper_bound is True


def test_queueing_does_not_shrink_only_interpreter_time_does() -> None:
    # 20 ms interpreter and 30 ms waiting, 20 ms of it queued behind other requests' CPU:
    # Node.js saves 20 x 0.8 = 16 ms of 100 (marginal). The queue is left where it is
    # (module docstring: it depends on load and deployment, not on this request's code).
    verdict = decide_verdict(
        stats({"database": 50, "network": 0, "interpreter": 20, "waiting": 30}, queueing_ms=20),
        (),
        targets=(NODE,),
    )
    (node,) = verdict.projections
    assert node.p50_saving_ns == 16 * MS
    assert node.mean_saving_ns == 16 * MS
    assert verdict.label == MARGINAL


@pytest.mark.parametrize("factor", [2, 5, 10, 30, 1000])
def test_no_saving_exceeds_the_shrinkable_parts(factor: float) -> None:
    # Whatever the factor, a saving is at most interpreter x (1 - 1/k) <= interpreter,
    # and a part the rule does not list (native code here) never shrinks.
    parts = {"database": 30, "network": 10, "interpreter": 25, "waiting": 15, "native": 20}
    target = TargetRuntime(
        name="x", factor_low=factor, factor_typical=factor, factor_high=factor, source="t"
    )
    (x,) = decide_verdict(stats(parts), (), targets=(target,)).projections
    bound = 25 * MS * (1 - 1 / factor)
    assert x.p50_saving_ns == pytest.approx(bound, abs=1)
    assert x.p50_saving_ns <= 25 * MS
    assert x.p50_ns + x.p50_saving_ns == 100 * MS


def test_native_cpu_does_not_shrink_in_a_port() -> None:
    # p50 = 100 ms: 90 ms native (bcrypt), 5 ms interpreter, 5 ms database. Go at 10x
    # saves only 5 x 0.9 = 4.5 ms (4.5%): don't migrate, though 95% of p50 is CPU. Per
    # core: 95 ms of CPU now (10.5 req/s); projected 90 + 0.5 = 90.5 ms (11.05 req/s),
    # not 95 / 10.
    verdict = decide_verdict(
        stats({"database": 5, "network": 0, "interpreter": 5, "native": 90, "waiting": 0}), ()
    )
    go = projection(verdict, "go")
    assert go.p50_saving_ns == 4_500_000
    assert verdict.label == DONT_MIGRATE
    assert verdict.cpu_per_request_ns == 95 * MS
    assert go.requests_per_core == pytest.approx(1e9 / (90.5 * MS))
    assert "native code" in verdict.summary


def test_the_same_cpu_in_bytecode_could_pay() -> None:
    # The reference for the test above: the same 95 ms of CPU all bytecode saves
    # 95 x 0.9 = 85.5 ms with Go.
    verdict = decide_verdict(
        stats({"database": 5, "network": 0, "interpreter": 95, "native": 0, "waiting": 0}), ()
    )
    assert projection(verdict, "go").p50_saving_ns == 85_500_000
    assert verdict.label == MIGRATION_COULD_PAY


def test_marginal_band() -> None:
    # 20 ms interpreter of 100: Node.js 16 ms (16%) -> marginal.
    verdict = decide_verdict(
        stats({"database": 80, "network": 0, "interpreter": 20, "waiting": 0}), (), targets=(NODE,)
    )
    assert verdict.label == MARGINAL
    assert verdict.summary.startswith("Marginal: 80% of p50 is database wait;")


def test_cheaper_fix_that_saves_more_than_the_port_downgrades_to_marginal() -> None:
    # Go saves 35 x 0.9 = 31.5 ms (31.5%); an N+1 costs 50 ms in every request.
    parts = {"database": 65, "network": 0, "interpreter": 35, "waiting": 0}
    assert decide_verdict(stats(parts), ()).label == MIGRATION_COULD_PAY
    verdict = decide_verdict(stats(parts), (n_plus_one(50 * MS),))
    assert verdict.label == MARGINAL
    assert "first (saves up to 50 ms per request on average; the port: 31.5 ms on average)" in (
        verdict.summary
    )
    assert any("fix first" in r for r in verdict.reasons)


def test_fix_worth_half_the_port_is_done_first_but_a_small_one_is_not() -> None:
    # Go saves 31.5 ms (mean = p50 here). A fix worth 16 ms (>= half of 31.5) comes first;
    # one worth 15 ms (< 15.75) leaves the label alone.
    parts = {"database": 65, "network": 0, "interpreter": 35, "waiting": 0}
    assert decide_verdict(stats(parts), (n_plus_one(16 * MS),)).label == MARGINAL
    assert decide_verdict(stats(parts), (n_plus_one(15 * MS),)).label == MIGRATION_COULD_PAY


@pytest.mark.parametrize(
    ("count", "confidence"),
    [(10, "low"), (29, "low"), (30, "medium"), (99, "medium"), (100, "high")],
)
def test_confidence_follows_sample_size(count: int, confidence: str) -> None:
    parts = {"database": 15, "network": 0, "interpreter": 80, "waiting": 5}
    assert decide_verdict(stats(parts, count=count), ()).confidence == confidence


def test_label_that_depends_on_the_factor_is_medium_confidence() -> None:
    # 14 ms interpreter of 100: Node.js at 2x saves 7% (dont_migrate), at 10x 12.6%.
    verdict = decide_verdict(
        stats({"database": 86, "network": 0, "interpreter": 14, "waiting": 0}), (), targets=(NODE,)
    )
    assert verdict.label == MARGINAL
    assert verdict.confidence == "medium"


def test_fixes_ranked_by_saving_without_duplicating_an_n_plus_one() -> None:
    big = n_plus_one(30 * MS, fraction=0.5)  # saves 15 ms per request
    same_statement = Finding(
        kind=SLOW_STATEMENT,
        detail="",
        target=big.target,
        count_per_request=21,
        ns_per_request=30 * MS,
        requests_fraction=0.5,
    )
    other = Finding(
        kind=SLOW_STATEMENT,
        detail="",
        target="SELECT slow FROM t",
        count_per_request=1,
        ns_per_request=20 * MS,
        requests_fraction=1.0,
    )
    verdict = decide_verdict(
        stats({"database": 92, "network": 0, "interpreter": 8, "waiting": 0}),
        (big, same_statement, other),
    )
    assert verdict.fixes == (other, big)


def test_default_targets_carry_sources_and_ordered_ranges() -> None:
    assert [t.name for t in DEFAULT_TARGETS] == ["node", "go"]
    for t in DEFAULT_TARGETS:
        assert 1 < t.factor_low <= t.factor_typical <= t.factor_high
        assert "Benchmarks Game" in t.source
        assert "TechEmpower" in t.source


@pytest.mark.parametrize(
    ("text", "low", "typical", "high"),
    [
        ("node=5", 5, 5, 5),
        ("go=3:10", 3, math.sqrt(30), 10),
        (" rust = 2:4:8 ", 2, 4, 8),
        ("Bun=1.5", 1.5, 1.5, 1.5),
        ("pypy=.8", 0.8, 0.8, 0.8),
    ],
)
def test_parse_target_good(text: str, low: float, typical: float, high: float) -> None:
    target = parse_target(text)
    assert target.name == text.split("=")[0].strip().lower()
    assert (target.factor_low, target.factor_typical, target.factor_high) == pytest.approx(
        (low, typical, high)
    )
    assert "--target" in target.source


@pytest.mark.parametrize(
    "text",
    ["node", "node=", "=5", "node=abc", "node=0", "node=-2", "node=10:3", "go=1:2:3:4",
     "node=nan", "node=inf", "node=1e3", "no de=5", "node=5:", "1node=5", "node=2:9:4"],
)  # fmt: skip
def test_parse_target_bad(text: str) -> None:
    with pytest.raises(ConfigError, match="--target"):
        parse_target(text)


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (29 * MS, "29 ms"),
        (2_500_000, "2.5 ms"),
        (3 * MS, "3 ms"),
        (350_000, "0.35 ms"),
        (0, "0 ms"),
    ],
)
def test_format_ms(ns: int, text: str) -> None:
    assert format_ms(ns) == text


def test_format_percent() -> None:
    # The tables' precision: one decimal under 10%, "<0.1%" for a sliver.
    shares = (0.08, 0.0, 0.001, 0.0004, 0.0642, 0.725)
    assert [format_percent(f) for f in shares] == ["8%", "0%", "0.1%", "<0.1%", "6.4%", "72%"]
