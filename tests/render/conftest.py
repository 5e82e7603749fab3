"""Hand-built reports for the renderer tests.

``make_report()`` is a small shop: a DB-bound endpoint with an N+1 finding
(dont_migrate), a CPU-bound one (migration_could_pay), one whose CPU was not measured
(app, upper bound) and one with a profile summary. The numbers are self-consistent
(ledgers sum to their latency; projections follow Amdahl's law at the typical factor).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import pytest

from latency_ledger.model import (
    EndpointStats,
    Finding,
    InputSummary,
    ProfileSummary,
    Projection,
    Report,
    TargetRuntime,
    Verdict,
)

MS = 1_000_000

NODE = TargetRuntime(
    name="node",
    factor_low=2.0,
    factor_typical=3.0,
    factor_high=5.0,
    source="Benchmarks Game (CPython 3.11 vs Node.js 20, median of CPU-bound programs)",
)
GO = TargetRuntime(
    name="go",
    factor_low=5.0,
    factor_typical=10.0,
    factor_high=30.0,
    source="Benchmarks Game (CPython 3.11 vs Go 1.21, median of CPU-bound programs)",
)


def ms(value: float) -> int:
    return round(value * MS)


def ledger(**parts_ms: float) -> dict[str, int]:
    return {k: ms(v) for k, v in parts_ms.items()}


def project(
    target: TargetRuntime,
    *,
    p50: Mapping[str, int],
    p99: Mapping[str, int],
    cpu_key: str,
    requests_per_core: float | None,
) -> Projection:
    """Amdahl at the typical factor: only ``cpu_key`` time shrinks."""

    def saving(parts: Mapping[str, int], k: float) -> int:
        return round(parts[cpu_key] * (1 - 1 / k))

    p50_total, p99_total = sum(p50.values()), sum(p99.values())
    p50_saving = saving(p50, target.factor_typical)
    p99_saving = saving(p99, target.factor_typical)
    return Projection(
        target=target,
        p50_ns=p50_total - p50_saving,
        p99_ns=p99_total - p99_saving,
        p50_saving_ns=p50_saving,
        p99_saving_ns=p99_saving,
        p50_saving_fraction=p50_saving / p50_total,
        p99_saving_fraction=p99_saving / p99_total,
        p50_saving_range_ns=(saving(p50, target.factor_low), saving(p50, target.factor_high)),
        requests_per_core=requests_per_core,
        mean_saving_ns=p50_saving,  # these fixtures' mean ledger is their p50 one
    )


def endpoint(
    *,
    service: str = "shop",
    name: str,
    count: int,
    errors: int = 0,
    cpu_measured: bool = True,
    p50: dict[str, int],
    p99: dict[str, int],
    findings: tuple[Finding, ...] = (),
    verdict: Verdict | None = None,
    profile: ProfileSummary | None = None,
    queueing: bool = False,
) -> EndpointStats:
    p95 = {k: (p50[k] + 3 * p99[k]) // 4 for k in p50}
    mean = {k: (2 * p50[k] + p99[k]) // 3 for k in p50}
    parts = {"p50": p50, "p95": p95, "p99": p99, "mean": mean}
    return EndpointStats(
        service=service,
        endpoint=name,
        count=count,
        errors=errors,
        cpu_measured=cpu_measured,
        latency_ns={k: sum(v.values()) for k, v in parts.items()},
        ledger_ns=parts,
        queueing_ns={k: v["waiting"] // 2 for k, v in parts.items()} if queueing else {},
        findings=findings,
        verdict=verdict,
        profile=profile,
    )


N_PLUS_ONE = Finding(
    kind="n_plus_one",
    detail="SELECT on order_items ran 21 times per request, one per order line",
    target="SELECT order_items.id, order_items.sku, order_items.qty FROM order_items "
    "WHERE order_items.order_id = ?",
    count_per_request=21.0,
    ns_per_request=ms(18.0),
    requests_fraction=0.95,
    total_ns=ms(18.0) * 1140,
    count=21 * 1140,
    p50_ns=ms(0.8),
    p99_ns=ms(2.1),
)
SLOW = Finding(
    kind="slow_statement",
    detail="the slowest statement by total time on this endpoint",
    target="SELECT orders.id, orders.total FROM orders WHERE orders.customer_id = ? "
    "ORDER BY orders.created_at DESC",
    count_per_request=1.0,
    ns_per_request=ms(4.2),
    requests_fraction=1.0,
    total_ns=ms(4.2) * 1200,
    count=1200,
    p50_ns=ms(3.9),
    p99_ns=ms(11.0),
)
CHATTY = Finding(
    kind="chatty_calls",
    detail="GET inventory/stock/{sku} called 6 times per request, concurrently",
    target="GET inventory:8080/stock/{sku}",
    count_per_request=6.0,
    ns_per_request=ms(7.5),
    requests_fraction=0.6,
    total_ns=ms(7.5) * 180,
    count=6 * 180,
    p50_ns=ms(1.2),
    p99_ns=ms(5.5),
    concurrent=True,
)


def make_orders() -> EndpointStats:
    p50 = ledger(database=24.1, network=2.0, interpreter=3.1, waiting=2.0)
    p99 = ledger(database=118.0, network=6.5, interpreter=9.5, waiting=6.0)
    projections = tuple(
        project(t, p50=p50, p99=p99, cpu_key="interpreter", requests_per_core=None)
        for t in (NODE, GO)
    )
    node = projections[0]
    verdict = Verdict(
        label="dont_migrate",
        confidence="high",
        summary=(
            "Don't migrate: 77% of p50 latency is database wait; Node.js would save about "
            f"{node.p50_saving_ns / MS:.1f} ms ({node.p50_saving_fraction:.0%}) at p50, "
            "fixing the N+1 query saves 18.0 ms."
        ),
        upper_bound=False,
        projections=projections,
        fixes=(N_PLUS_ONE, SLOW),
        cpu_per_request_ns=ms(3.4),
        requests_per_core=294.1,
        reasons=("1,200 requests: percentiles are stable", "CPU measured per request"),
    )
    return endpoint(
        name="GET /orders/{order_id}",
        count=1200,
        errors=3,
        p50=p50,
        p99=p99,
        findings=(N_PLUS_ONE, SLOW),
        verdict=verdict,
        queueing=True,
    )


def make_quote() -> EndpointStats:
    p50 = ledger(database=4.0, network=3.0, interpreter=40.0, waiting=3.0)
    p99 = ledger(database=9.0, network=8.0, interpreter=96.0, waiting=17.0)
    projections = tuple(
        project(t, p50=p50, p99=p99, cpu_key="interpreter", requests_per_core=rpc)
        for t, rpc in ((NODE, 71.4), (GO, 227.3))
    )
    node = projections[0]
    verdict = Verdict(
        label="migration_could_pay",
        confidence="medium",
        summary=(
            "Migration could pay: 80% of p50 latency is interpreter time; Node.js would "
            f"save about {node.p50_saving_ns / MS:.1f} ms ({node.p50_saving_fraction:.0%}) "
            "at p50."
        ),
        upper_bound=False,
        projections=projections,
        fixes=(),
        cpu_per_request_ns=ms(42.0),
        requests_per_core=23.8,
        reasons=("300 requests: p99 rests on 3 requests",),
    )
    return endpoint(
        name="POST /checkout/quote",
        count=300,
        p50=p50,
        p99=p99,
        verdict=verdict,
    )


def make_invoice() -> EndpointStats:
    p50 = ledger(database=5.0, network=10.0, app=25.0)
    p99 = ledger(database=14.0, network=31.0, app=75.0)
    projections = tuple(
        project(t, p50=p50, p99=p99, cpu_key="app", requests_per_core=None) for t in (NODE, GO)
    )
    verdict = Verdict(
        label="marginal",
        confidence="low",
        summary=(
            "Marginal, an upper bound: CPU was not measured, so at most 62% of p50 latency "
            "is interpreter time; measure CPU before deciding."
        ),
        upper_bound=True,
        projections=projections,
        fixes=(CHATTY,),
        cpu_per_request_ns=None,
        requests_per_core=None,
        reasons=("CPU not measured: app time is an upper bound on interpreter time",),
    )
    return endpoint(
        service="billing",
        name="GET /invoices/{invoice_id}.pdf",
        count=180,
        errors=12,
        cpu_measured=False,
        p50=p50,
        p99=p99,
        findings=(CHATTY,),
        verdict=verdict,
    )


def make_search() -> EndpointStats:
    p50 = ledger(database=6.0, network=0.5, interpreter=9.0, waiting=1.5)
    p99 = ledger(database=21.0, network=1.5, interpreter=26.0, waiting=9.5)
    projections = tuple(
        project(t, p50=p50, p99=p99, cpu_key="interpreter", requests_per_core=rpc)
        for t, rpc in ((NODE, 300.0), (GO, 900.0))
    )
    verdict = Verdict(
        label="marginal",
        confidence="medium",
        summary="Marginal: 53% of p50 latency is interpreter time, a third of it validation.",
        upper_bound=False,
        projections=projections,
        fixes=(),
        cpu_per_request_ns=ms(10.0),
        requests_per_core=100.0,
    )
    profile = ProfileSummary(
        samples=412,
        bucket_fraction={
            "validation_serialization": 0.34,
            "framework": 0.22,
            "orm": 0.18,
            "application": 0.26,
        },
        top_functions=(
            ("pydantic.main:BaseModel.model_dump_json", 0.21),
            ("sqlalchemy.orm.loading:instances", 0.12),
            ("shop.search:rank_results", 0.09),
        ),
    )
    return endpoint(
        name="GET /search",
        count=320,
        p50=p50,
        p99=p99,
        verdict=verdict,
        profile=profile,
    )


def make_overall(endpoints: tuple[EndpointStats, ...]) -> EndpointStats:
    p50 = ledger(database=18.2, network=2.4, interpreter=7.1, waiting=2.3)
    p99 = ledger(database=96.0, network=14.0, interpreter=60.0, waiting=12.0)
    projections = tuple(
        project(t, p50=p50, p99=p99, cpu_key="interpreter", requests_per_core=None)
        for t in (NODE, GO)
    )
    node = projections[0]
    verdict = Verdict(
        label="dont_migrate",
        confidence="high",
        summary=(
            "Don't migrate: 61% of p50 latency is database wait; a Node.js port would save "
            f"about {node.p50_saving_ns / MS:.1f} ms ({node.p50_saving_fraction:.0%}) at "
            "p50, and fixing one N+1 query saves 18.0 ms on GET /orders/{order_id}."
        ),
        upper_bound=False,
        projections=projections,
        fixes=(N_PLUS_ONE, CHATTY, SLOW),
        cpu_per_request_ns=ms(9.8),
        requests_per_core=102.0,
    )
    return endpoint(
        service="",
        name="all endpoints",
        count=sum(e.count for e in endpoints),
        errors=sum(e.errors for e in endpoints),
        p50=p50,
        p99=p99,
        verdict=verdict,
    )


def make_report() -> Report:
    endpoints = (make_orders(), make_quote(), make_invoice(), make_search())
    return Report(
        inputs=InputSummary(
            files=3,
            spans=41_332,
            traces=2_000,
            requests=2_000,
            skipped={"not_trace_data": 1, "span_without_end_time": 4},
            problems=(
                "traces/notes.txt:1: not trace data (no resourceSpans)",
                "traces/shop-2.jsonl:17: span 9f2c01aa44b0e3d1 has no end time",
            ),
            collector={"dropped_spans": 12},
        ),
        overall=make_overall(endpoints),
        endpoints=endpoints,
    )


def make_big_report(n: int = 200) -> Report:
    """``n`` endpoints cycling through the four kinds above, each with its own name."""
    base = (make_orders(), make_quote(), make_invoice(), make_search())
    endpoints = []
    for i in range(n):
        proto = base[i % len(base)]
        fixes = tuple(
            dataclasses.replace(f, target=f"{f.target} /* endpoint {i} */")
            for f in (N_PLUS_ONE, SLOW, CHATTY)
        )
        verdict = proto.verdict
        assert verdict is not None
        endpoints.append(
            dataclasses.replace(
                proto,
                service=f"svc-{i % 7}",
                endpoint=f"{proto.endpoint.split(' ')[0]} /resource-{i}/{{item_id}}/detail",
                count=50 + (i * 37) % 5000,
                findings=fixes,
                verdict=dataclasses.replace(verdict, fixes=fixes),
            )
        )
    report = make_report()
    return dataclasses.replace(report, endpoints=tuple(endpoints))


HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "' onmouseover='alert(3)",
    "{{ 7*7 }}{% if 1 %}",
    "</style></code></pre><b>bold</b>",
    "javascript:alert(4)",
)


def hostile(i: int, prefix: str = "") -> str:
    return f"{prefix}{HOSTILE[i % len(HOSTILE)]}"


def make_hostile_report() -> Report:
    """Every string that can come from a trace carries markup or template syntax."""
    report = make_report()
    endpoints = []
    for i, stats in enumerate(report.endpoints):
        findings = tuple(
            dataclasses.replace(
                f,
                kind=hostile(i + j, "kind"),
                detail=hostile(i + j + 1, "detail"),
                target=f"SELECT '{hostile(i + j + 2)}' FROM t WHERE a = \"{hostile(i + j + 3)}\"",
            )
            for j, f in enumerate((N_PLUS_ONE, SLOW, CHATTY))
        )
        verdict = stats.verdict
        assert verdict is not None
        projections = tuple(
            dataclasses.replace(
                p,
                target=dataclasses.replace(
                    p.target, name=hostile(i + k, "rt"), source=hostile(i + k + 1, "src")
                ),
            )
            for k, p in enumerate(verdict.projections)
        )
        verdict = dataclasses.replace(
            verdict,
            label=hostile(i, "label") if i == 3 else verdict.label,
            confidence=hostile(i + 1, "conf"),
            summary=hostile(i + 2, "summary"),
            projections=projections,
            fixes=findings,
            reasons=(hostile(i + 3, "reason"),),
        )
        profile = ProfileSummary(
            samples=3,
            bucket_fraction={hostile(i, "bucket"): 0.5, "orm": 0.5},
            top_functions=((hostile(i + 1, "fn"), 0.5),),
        )
        endpoints.append(
            dataclasses.replace(
                stats,
                service=hostile(i + 4, "svc"),
                endpoint=f"GET /{hostile(i + 5)}",
                findings=findings,
                verdict=verdict,
                profile=profile,
            )
        )
    inputs = dataclasses.replace(
        report.inputs,
        skipped={hostile(0, "reason"): 1},
        problems=tuple(hostile(i, "problem") for i in range(len(HOSTILE))),
        collector={hostile(1, "collector"): 2},
    )
    overall = dataclasses.replace(
        report.overall,
        service=hostile(2),
        endpoint=hostile(3),
        verdict=dataclasses.replace(report.overall.verdict, summary=hostile(0, "overall"))
        if report.overall.verdict
        else None,
    )
    return Report(inputs=inputs, overall=overall, endpoints=tuple(endpoints))


def make_empty_report() -> Report:
    empty = EndpointStats(
        service="",
        endpoint="all endpoints",
        count=0,
        errors=0,
        cpu_measured=False,
        latency_ns={},
        ledger_ns={},
    )
    inputs = InputSummary(files=1, spans=0, traces=0, requests=0, skipped={})
    return Report(inputs=inputs, overall=empty, endpoints=())


@pytest.fixture
def report() -> Report:
    return make_report()


@pytest.fixture
def empty_report() -> Report:
    return make_empty_report()


@pytest.fixture
def hostile_report() -> Report:
    return make_hostile_report()


@pytest.fixture
def big_report() -> Report:
    return make_big_report(200)
