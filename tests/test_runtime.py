"""Source runtimes: detected from resources, overridden, and turned into port targets."""

from __future__ import annotations

from pathlib import Path

import pytest

from latency_ledger.analyze import analyze
from latency_ledger.errors import ConfigError
from latency_ledger.model import EndpointStats, TargetRuntime
from latency_ledger.runtime import (
    PAIRS,
    RuntimeInfo,
    detect_runtime,
    parse_runtime_override,
    port_targets,
    target_runtime,
)
from latency_ledger.verdict import DEFAULT_TARGETS, DONT_MIGRATE, decide_verdict

MS = 1_000_000
SHARED_TRACES = Path(__file__).resolve().parent / "data" / "traces"
OTEL_DEMO = SHARED_TRACES / "otlp-json" / "otel-tui__test_data.json"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {"telemetry.sdk.language": "go", "process.runtime.name": "go",
             "process.runtime.version": "go1.22.2"},
            RuntimeInfo(name="go", version="1.22.2", detected_from="process.runtime.name"),
        ),
        (
            {"telemetry.sdk.language": "nodejs", "process.runtime.name": "nodejs",
             "process.runtime.version": "18.20.1"},
            RuntimeInfo(name="nodejs", version="18.20.1", detected_from="process.runtime.name"),
        ),
        (
            {"telemetry.sdk.language": "python"},
            RuntimeInfo(name="cpython", detected_from="telemetry.sdk.language"),
        ),
        (
            {"telemetry.sdk.language": "python", "process.runtime.name": "pypy",
             "process.runtime.version": "3.10.14"},
            RuntimeInfo(name="pypy", version="3.10.14", detected_from="process.runtime.name"),
        ),
        (
            {"process.runtime.name": "OpenJDK Runtime Environment",
             "telemetry.sdk.language": "java", "process.runtime.version": "21.0.2+13-LTS"},
            RuntimeInfo(name="java", version="21.0.2+13-LTS",
                        detected_from="process.runtime.name"),
        ),
        (
            {"process.runtime.description": "go version go1.22.2 linux/amd64"},
            RuntimeInfo(name="go", detected_from="process.runtime.description"),
        ),
        # Jaeger clients' process tag (Jaeger JSON carries process tags as the resource).
        ({"jaeger.version": "Go-2.15.1dev"},
         RuntimeInfo(name="go", detected_from="jaeger.version")),
        ({"jaeger.version": "Python-4.8.0"},
         RuntimeInfo(name="cpython", detected_from="jaeger.version")),
        ({"jaeger.version": "CSharp-1.0.0"},
         RuntimeInfo(name="dotnet", detected_from="jaeger.version")),
        ({"jaeger.version": "Cobol-1"}, RuntimeInfo(name="unknown")),
        ({"service.name": "my.service"}, RuntimeInfo(name="unknown")),
        ({"telemetry.sdk.language": "cobol", "process.runtime.name": 7},
         RuntimeInfo(name="unknown")),
    ],
)  # fmt: skip
def test_detect_runtime(resource: dict[str, object], expected: RuntimeInfo) -> None:
    assert detect_runtime(resource) == expected  # type: ignore[arg-type]


def test_runtime_override_parsing() -> None:
    assert parse_runtime_override("shop=python") == ("shop", "cpython")
    assert parse_runtime_override(" * = golang ") == ("*", "go")
    for bad in ("shop", "shop=", "=go", "shop=cobol"):
        with pytest.raises(ConfigError, match="--runtime"):
            parse_runtime_override(bad)


def test_a_service_is_never_offered_its_own_runtime() -> None:
    for runtime in ("cpython", "nodejs", "go", "pypy", "java", "rust", "ruby", "unknown"):
        offered, notes = port_targets(runtime, DEFAULT_TARGETS)
        assert all(target_runtime(t.name) != runtime for t in offered)
        assert all(t.factor_typical > 1 for t in offered)
        assert len(offered) + len(notes) == len(DEFAULT_TARGETS)  # each left out says why


def test_factors_are_source_to_target() -> None:
    cpython = {t.name: t for t in port_targets("cpython", DEFAULT_TARGETS)[0]}
    node = {t.name: t for t in port_targets("nodejs", DEFAULT_TARGETS)[0]}
    assert set(cpython) == {"node", "go"}
    assert set(node) == {"go"}  # never Node.js itself
    assert (node["go"].factor_low, node["go"].factor_high) == (1.0, 2.0)
    assert node["go"].factor_typical < cpython["go"].factor_typical
    assert node["go"].source.startswith("Node.js -> Go")
    go_offered, go_notes = port_targets("go", DEFAULT_TARGETS)
    assert go_offered == ()
    assert any("already runs on it" in n for n in go_notes)
    assert any("not faster" in n for n in go_notes)


def test_every_pair_cites_a_public_source_with_an_ordered_range() -> None:
    for (source, target), (low, typical, high, text) in PAIRS.items():
        assert source != target
        assert 1 <= low <= typical <= high
        assert any(s in text for s in ("Benchmarks Game", "TechEmpower", "speed.pypy.org"))


def test_a_given_factor_applies_from_any_runtime_but_its_own() -> None:
    mine = TargetRuntime(name="go", factor_low=2, factor_typical=2, factor_high=2, source="me")
    node_offered, _ = port_targets("nodejs", (mine,), frozenset({"go"}))
    assert node_offered == (mine,)
    go_offered, _ = port_targets("go", (mine,), frozenset({"go"}))
    assert go_offered == ()


def _stats(runtime: str) -> EndpointStats:
    parts = {"database": 10 * MS, "network": 0, "interpreter": 80 * MS, "waiting": 10 * MS}
    return EndpointStats(
        service="svc",
        endpoint="GET /x",
        count=500,
        errors=0,
        cpu_measured=True,
        latency_ns={"p50": 100 * MS, "p99": 100 * MS, "mean": 100 * MS},
        ledger_ns={"p50": parts, "p99": parts, "mean": parts},
        runtime=runtime,
    )


def test_a_go_service_is_told_no_port_is_faster() -> None:
    verdict = decide_verdict(_stats("go"), ())
    assert verdict.projections == ()
    assert verdict.label == DONT_MIGRATE
    assert "runs on Go, and no target runtime is faster" in verdict.summary
    assert verdict.not_offered


def test_a_node_service_gets_only_go_at_the_node_factor() -> None:
    verdict = decide_verdict(_stats("nodejs"), ())
    (go,) = verdict.projections
    # 80 ms interpreter x (1 - 1/1.5) = 26.7 ms: marginal, not the CPython 72 ms.
    assert go.p50_saving_ns == pytest.approx(80 * MS / 3, abs=1)
    assert verdict.label == "marginal"
    assert "Node.js" not in verdict.summary.split(";")[1]


def test_an_unknown_runtime_is_judged_as_cpython_and_says_so() -> None:
    verdict = decide_verdict(_stats("unknown"), ())
    assert verdict.runtime_assumed is True
    assert verdict.runtime == "cpython"
    assert verdict.confidence == "medium"
    assert any("--runtime" in r for r in verdict.reasons)


def test_polyglot_demo_gets_each_service_runtime() -> None:
    report = analyze([OTEL_DEMO])
    runtimes = {s.service: s.runtime for s in report.services}
    # Counted from the file's resources by hand (jq): Go, Node.js, Python and Java SDKs.
    assert runtimes.get("checkoutservice") == "go"
    assert runtimes.get("productcatalogservice") == "go"
    assert runtimes.get("frontend") == "nodejs"
    assert runtimes.get("recommendationservice") == "cpython"
    assert runtimes.get("adservice") == "java"
    assert report.overall.runtime == "mixed"
    assert report.overall.verdict is None  # a port is decided per service
    for endpoint in report.endpoints:
        verdict = endpoint.verdict
        assert verdict is not None
        if endpoint.service in ("checkoutservice", "productcatalogservice", "adservice"):
            assert verdict.projections == (), endpoint.endpoint
        if endpoint.service == "frontend":
            assert [p.target.name for p in verdict.projections] == ["go"]


def test_a_jaeger_download_names_its_runtime_from_the_process_tags() -> None:
    # jaeger-query's process: "jaeger.version": "Go-2.15.1dev", no OTel resource keys.
    report = analyze([SHARED_TRACES / "jaeger-json" / "jaeger-analytics-java__ui-trace.json"])
    assert {s.service: s.runtime for s in report.services} == {"jaeger-query": "go"}


NEXTJS = SHARED_TRACES / "otlp-json" / "highlight__nextjs.json"


def test_a_nextjs_app_is_never_told_to_port_to_node() -> None:
    # The file's resource says telemetry.sdk.language=nodejs (read by hand).
    report = analyze([NEXTJS])
    assert [(s.runtime, s.detected_from) for s in report.services] == [
        ("nodejs", "telemetry.sdk.language")
    ]
    verdict = report.overall.verdict
    assert verdict is not None
    (go,) = verdict.projections
    assert (go.target.name, go.target.factor_typical) == ("go", 1.5)
    assert verdict.not_offered == ("Node.js: not offered, the service already runs on it",)
    assert "Node.js port" not in verdict.summary
