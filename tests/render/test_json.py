from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest

from latency_ledger.errors import LedgerError
from latency_ledger.model import Report
from latency_ledger.render.json import SCHEMA, report_to_json, write_json

ENDPOINT_KEYS = {
    "service",
    "endpoint",
    "count",
    "errors",
    "cpu_measured",
    "from_totals",
    "runtime",
    "latency_ms",
    "ledger_ms",
    "findings",
    "verdict",
    "profile",
    "native",
    "native_threads",
}
FINDING_KEYS = {
    "kind",
    "detail",
    "target",
    "count_per_request",
    "ms_per_request",
    "requests_fraction",
    "fixable_ms_per_request",
    "saving_ms_per_request",
    "total_ms",
    "count",
    "p50_ms",
    "p99_ms",
    "concurrent",
    "margin_fraction",
    "sampled_requests",
    "counted",
    "p50_calls",
}
VERDICT_KEYS = {
    "label",
    "confidence",
    "summary",
    "upper_bound",
    "targets",
    "fixes",
    "cpu_per_request_ms",
    "requests_per_core",
    "reasons",
    "runtime",
    "runtime_assumed",
    "not_offered",
}
TARGET_KEYS = {
    "factor",
    "factor_range",
    "source",
    "p50_ms",
    "p99_ms",
    "p50_saving_ms",
    "p50_saving_fraction",
    "p50_saving_range_ms",
    "p99_saving_ms",
    "p99_saving_fraction",
    "requests_per_core",
    "mean_saving_ms",
}


def by_endpoint(doc: dict[str, Any], name: str) -> dict[str, Any]:
    (match,) = [e for e in doc["endpoints"] if e["endpoint"] == name]
    return match


def test_top_level_and_inputs_shape(report: Report) -> None:
    doc = report_to_json(report)
    assert set(doc) == {"schema", "inputs", "services", "overall", "endpoints", "streams"}
    assert doc["streams"] == []
    assert doc["schema"] == SCHEMA == "latency-ledger/3"
    assert doc["inputs"] == {
        "files": 3,
        "spans": 41_332,
        "traces": 2_000,
        "requests": 2_000,
        "skipped": {"not_trace_data": 1, "span_without_end_time": 4},
        "problems": [
            "traces/notes.txt:1: not trace data (no resourceSpans)",
            "traces/shop-2.jsonl:17: span 9f2c01aa44b0e3d1 has no end time",
        ],
        "collector": {"dropped_spans": 12},
        "collector_overhead_us": None,  # no collector recorded its cost here
        "cpu": None,  # nor the process's CPU
        "plugin_overhead_us": {},
    }


def test_unbooked_cpu_share(report: Report) -> None:
    from dataclasses import replace

    inputs = replace(report.inputs, process_cpu_ns=4_000_000_000, booked_cpu_ns=3_000_000_000)
    doc = report_to_json(replace(report, inputs=inputs))
    assert doc["inputs"]["cpu"] == {
        "process_ms": 4000.0,
        "booked_ms": 3000.0,
        "unbooked_fraction": 0.25,
    }
    # more booked than the process burned (windows cut between a request's clocks): 0
    over = replace(report.inputs, process_cpu_ns=1_000, booked_cpu_ns=2_000)
    assert over.unbooked_cpu_fraction == 0.0


def test_collector_overhead_in_microseconds(report: Report) -> None:
    from dataclasses import replace

    doc = report_to_json(
        replace(report, inputs=replace(report.inputs, collector_overhead_ns=116_749))
    )
    assert doc["inputs"]["collector_overhead_us"] == 116.7


def test_plugin_overhead_in_microseconds(report: Report) -> None:
    from dataclasses import replace

    inputs = replace(
        report.inputs,
        collector_overhead_ns=116_749,
        plugin_overhead_ns={"psycopg": 2_040, "sqlalchemy": 31_260},
    )
    doc = report_to_json(replace(report, inputs=inputs))
    assert doc["inputs"]["plugin_overhead_us"] == {"psycopg": 2.0, "sqlalchemy": 31.3}


def test_every_endpoint_has_the_contract_keys(report: Report) -> None:
    doc = report_to_json(report)
    for endpoint in [doc["overall"], *doc["endpoints"]]:
        assert set(endpoint) - {"queueing_ms", "wait_bounds_ms"} == ENDPOINT_KEYS
        assert set(endpoint["latency_ms"]) == {"p50", "p95", "p99", "mean"}
        assert set(endpoint["ledger_ms"]) == {"p50", "p95", "p99", "mean"}
        for finding in endpoint["findings"]:
            assert set(finding) == FINDING_KEYS
        assert set(endpoint["verdict"]) == VERDICT_KEYS
        assert set(endpoint["verdict"]["targets"]) == {"node", "go"}
        for target in endpoint["verdict"]["targets"].values():
            assert set(target) == TARGET_KEYS
        for fix in endpoint["verdict"]["fixes"]:
            assert set(fix) == FINDING_KEYS


def test_db_bound_endpoint_in_milliseconds(report: Report) -> None:
    orders = by_endpoint(report_to_json(report), "GET /orders/{order_id}")
    assert orders["service"] == "shop"
    assert orders["count"] == 1200
    assert orders["errors"] == 3
    assert orders["cpu_measured"] is True
    assert orders["latency_ms"]["p50"] == 31.2
    assert orders["latency_ms"]["p99"] == 140.0
    assert orders["ledger_ms"]["p50"] == {
        "database": 24.1,
        "network": 2.0,
        "interpreter": 3.1,
        "waiting": 2.0,
    }
    assert orders["queueing_ms"]["p50"] == 1.0  # half of the 2.0 ms waiting, as built
    assert orders["findings"][0] == {
        "kind": "n_plus_one",
        "detail": "SELECT on order_items ran 21 times per request, one per order line",
        "target": "SELECT order_items.id, order_items.sku, order_items.qty FROM order_items "
        "WHERE order_items.order_id = ?",
        "count_per_request": 21,
        "ms_per_request": 18.0,
        "requests_fraction": 0.95,
        "fixable_ms_per_request": 18.0,
        "saving_ms_per_request": 17.1,
        "total_ms": 20520.0,
        "count": 23940,
        "p50_ms": 0.8,
        "p99_ms": 2.1,
        "concurrent": False,
        "margin_fraction": 0.0,
        "sampled_requests": 0,
        "counted": False,
        "p50_calls": 0,
    }
    verdict = orders["verdict"]
    assert verdict["label"] == "dont_migrate"
    assert verdict["confidence"] == "high"
    assert verdict["upper_bound"] is False
    assert verdict["cpu_per_request_ms"] == 3.4
    # node 3x on 3.1 ms of interpreter time saves 3.1 * (1 - 1/3) = 2.07 ms of 31.2 ms.
    node = verdict["targets"]["node"]
    assert node["factor"] == 3
    assert isinstance(node["factor"], int)
    assert node["factor_range"] == [2, 5]
    assert node["p50_saving_ms"] == 2.07
    assert node["p50_saving_fraction"] == 0.0662
    assert node["p50_ms"] == 29.13
    assert node["p50_saving_range_ms"] == [1.55, 2.48]
    assert node["requests_per_core"] is None
    assert [f["kind"] for f in verdict["fixes"]] == ["n_plus_one", "slow_statement"]


def test_bound_endpoint_uses_app_key(report: Report) -> None:
    invoice = by_endpoint(report_to_json(report), "GET /invoices/{invoice_id}.pdf")
    assert invoice["cpu_measured"] is False
    assert invoice["ledger_ms"]["p50"] == {"database": 5.0, "network": 10.0, "app": 25.0}
    assert invoice["verdict"]["upper_bound"] is True
    assert invoice["verdict"]["cpu_per_request_ms"] is None
    assert "queueing_ms" not in invoice


def test_profile_summary(report: Report) -> None:
    search = by_endpoint(report_to_json(report), "GET /search")
    assert search["profile"] == {
        "samples": 412,
        "bucket_fraction": {
            "validation_serialization": 0.34,
            "framework": 0.22,
            "orm": 0.18,
            "application": 0.26,
        },
        "top_functions": [
            {"function": "pydantic.main:BaseModel.model_dump_json", "fraction": 0.21},
            {"function": "sqlalchemy.orm.loading:instances", "fraction": 0.12},
            {"function": "shop.search:rank_results", "fraction": 0.09},
        ],
        "native_functions": [],
    }


def test_ledger_parts_sum_to_the_latency_after_rounding(report: Report) -> None:
    doc = report_to_json(report)
    for endpoint in [doc["overall"], *doc["endpoints"]]:
        for quantile, parts in endpoint["ledger_ms"].items():
            assert round(sum(parts.values()) * 100) == round(
                endpoint["latency_ms"][quantile] * 100
            ), (endpoint["endpoint"], quantile)


def test_largest_remainder_keeps_thirds_summing(report: Report) -> None:
    # 10 ms in three near-equal parts: rounding each alone gives 3.33 * 3 = 9.99 ms;
    # the leftover hundredth goes to the part with the largest remainder (c).
    expected = {"database": 3.33, "network": 3.33, "app": 3.34}
    parts = {"database": 3_333_333, "network": 3_333_333, "app": 3_333_334}
    odd = dataclasses.replace(
        report.overall,
        cpu_measured=False,
        latency_ns={"p50": 10_000_000},
        ledger_ns={"p50": parts},
    )
    doc = report_to_json(dataclasses.replace(report, overall=odd))
    assert doc["overall"]["ledger_ms"]["p50"] == expected
    assert doc["overall"]["latency_ms"]["p50"] == 10.0


def test_null_verdict_and_empty_findings(empty_report: Report) -> None:
    doc = report_to_json(empty_report)
    assert doc["endpoints"] == []
    overall = doc["overall"]
    assert overall["verdict"] is None
    assert overall["findings"] == []
    assert overall["profile"] is None
    assert overall["latency_ms"] == {}


def test_round_trips_through_json_without_nan(report: Report) -> None:
    verdict = report.overall.verdict
    assert verdict is not None
    broken = dataclasses.replace(
        report.overall,
        verdict=dataclasses.replace(verdict, requests_per_core=math.inf),
    )
    doc = report_to_json(dataclasses.replace(report, overall=broken))
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    assert doc["overall"]["verdict"]["requests_per_core"] is None


def test_write_json(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    write_json(report, path)
    assert json.loads(path.read_text(encoding="utf-8")) == report_to_json(report)


def test_write_json_to_a_missing_directory_names_the_path(report: Report, tmp_path: Path) -> None:
    path = tmp_path / "missing" / "report.json"
    with pytest.raises(LedgerError, match=r"report\.json: cannot write the JSON report"):
        write_json(report, path)


def test_streams_listed_apart(report: Report) -> None:
    from dataclasses import replace

    from latency_ledger.model import StreamStats

    stream = StreamStats(
        service="flagd",
        endpoint="schema.v1.Service/EventStream",
        kind="grpc stream",
        count=2,
        errors=1,
        median_ns=37_454_864_535,
        max_ns=48_510_395_614,
    )
    doc = report_to_json(replace(report, streams=(stream,)))
    assert doc["streams"] == [
        {
            "service": "flagd",
            "endpoint": "schema.v1.Service/EventStream",
            "kind": "grpc stream",
            "count": 2,
            "errors": 1,
            "median_ms": 37454.86,
            "max_ms": 48510.4,
        }
    ]
