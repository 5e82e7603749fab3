"""The CLI as a user meets it: exit codes, one-line errors, reports written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from latency_ledger.cli import main

SHARED_TRACES = Path(__file__).resolve().parent / "data" / "traces"
KIALI = SHARED_TRACES / "otlp-json" / "kiali__responseTrace.json"
JAEGER = SHARED_TRACES / "jaeger-json" / "jaeger-analytics-java__ui-trace.json"
ZIPKIN_V1 = SHARED_TRACES / "zipkin-json" / "opentelemetry-collector__zipkin_v1_single_batch.json"


def _server_line(trace_id: str, span_id: str, start_ns: int, wall_ns: int) -> str:
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": trace_id,
                                "spanId": span_id,
                                "name": "GET /orders/{order_id}",
                                "kind": 2,
                                "startTimeUnixNano": str(start_ns),
                                "endTimeUnixNano": str(start_ns + wall_ns),
                                "attributes": [
                                    {"key": "http.request.method", "value": {"stringValue": "GET"}},
                                    {
                                        "key": "http.route",
                                        "value": {"stringValue": "/orders/{order_id}"},
                                    },
                                ],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    return json.dumps(doc)


@pytest.fixture
def good_file(tmp_path: Path) -> Path:
    path = tmp_path / "good.jsonl"
    lines = [
        _server_line(f"{i:032x}", f"{i:016x}", 1_700_000_000_000_000_000 + i * 10**9, 20_000_000)
        for i in range(1, 11)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_analyze_writes_json_report_with_contract_shape(good_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["analyze", str(good_file), "--json", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["schema"] == "latency-ledger/3"
    assert report["inputs"]["files"] == 1
    assert report["inputs"]["spans"] == 10
    assert report["inputs"]["requests"] == 10
    (endpoint,) = report["endpoints"]
    assert endpoint["service"] == "shop"
    assert endpoint["endpoint"] == "GET /orders/{order_id}"
    assert endpoint["count"] == 10
    assert endpoint["cpu_measured"] is False
    assert endpoint["latency_ms"]["p50"] == pytest.approx(20.0)
    # No children and no CPU measurement: all 20 ms is own time, an upper bound ("app").
    assert endpoint["ledger_ms"]["p50"] == {"database": 0.0, "network": 0.0, "app": 20.0}


def test_bad_file_is_one_line_and_the_rest_is_still_analyzed(
    good_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": [\n')
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["analyze", str(good_file), str(bad), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(bad))}:\d+: .*invalid JSON", result.output)
    report = json.loads(out.read_text())
    assert report["inputs"]["requests"] == 10
    assert sum(report["inputs"]["skipped"].values()) >= 1


def test_with_jobs_a_bad_file_is_still_one_line_and_the_report_the_same(
    good_file: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": [\n')
    outputs = []
    for jobs in ("1", "2"):
        out = tmp_path / f"report-{jobs}.json"
        result = CliRunner().invoke(
            main, ["analyze", str(good_file), str(bad), "--jobs", jobs, "--json", str(out)]
        )
        assert result.exit_code == 0, result.output
        assert "Traceback" not in result.output
        assert len(re.findall(rf"{re.escape(str(bad))}:\d+: .*invalid JSON", result.output)) == 1
        outputs.append(json.loads(out.read_text()))
    assert outputs[0] == outputs[1]
    assert outputs[1]["inputs"]["requests"] == 10


def test_nothing_readable_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("these are not traces\n")
    result = CliRunner().invoke(main, ["analyze", str(bad)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert str(bad) in result.output


def test_bad_target_is_a_usage_error(good_file: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", str(good_file), "--target", "node=fast"])
    assert result.exit_code == 2
    assert "--target" in result.output


def test_real_subprocess_on_third_party_files(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    html = tmp_path / "r.html"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "latency_ledger",
            "analyze",
            str(KIALI),
            str(JAEGER),
            str(ZIPKIN_V1),
            "--json",
            str(out),
            "-o",
            str(html),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "unsupported format" in proc.stderr
    assert str(ZIPKIN_V1) in proc.stderr
    assert str(JAEGER) not in proc.stderr  # read: 2 spans beside Kiali's 8
    report = json.loads(out.read_text())
    assert report["inputs"]["spans"] == 10
    assert report["inputs"]["skipped"]["unsupported_format"] == 1
    assert html.read_text().lower().startswith("<!doctype html>")


def test_only_unsupported_input_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "latency_ledger", "analyze", str(ZIPKIN_V1)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "unsupported format" in proc.stderr


def test_rules_file_classifies_what_the_built_in_rules_cannot(tmp_path: Path) -> None:
    # JDBC statements recorded as INTERNAL spans with a bare "sql" attribute (as in
    # Jaeger UI's test trace): own time without rules; a rule in a file makes the 30 ms
    # of the 100 ms request database time.
    start = 1_700_000_000_000_000_000
    doc = json.loads(_server_line("1" * 32, "a" * 16, start, 100_000_000))
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append(
        {
            "traceId": "1" * 32,
            "spanId": "b" * 16,
            "parentSpanId": "a" * 16,
            "name": "HikariProxyPreparedStatement.executeQuery",
            "kind": 1,
            "startTimeUnixNano": str(start + 10_000_000),
            "endTimeUnixNano": str(start + 40_000_000),
            "attributes": [{"key": "sql", "value": {"stringValue": "select * from test"}}],
        }
    )
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps(doc))
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\ncategory = "database"\nsystem = "hsqldb"\nstatement = "sql"\n'
        'span_kind = "internal"\n[rule.attributes]\nsql = "*"\n'
    )

    def database_ms(*extra: str) -> float:
        out = tmp_path / "r.json"
        result = CliRunner().invoke(main, ["analyze", str(trace), "--json", str(out), *extra])
        assert result.exit_code == 0, result.output
        [endpoint] = json.loads(out.read_text())["endpoints"]
        return float(endpoint["ledger_ms"]["p50"]["database"])

    assert database_ms() == 0.0
    assert database_ms("--rules", str(rules)) == 30.0


def test_bad_rules_file_is_a_usage_error_naming_file_and_rule(
    good_file: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rule]]\ncategory = "dtabase"\nname = "x"\n')
    result = CliRunner().invoke(main, ["analyze", str(good_file), "--rules", str(rules)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert f"{rules}: rule 1: category must be one of" in result.output


def test_more_problems_counts_problems_not_skipped_units(tmp_path: Path) -> None:
    # One good line whose trace holds 7 orphan spans (skipped units, but no problem line),
    # then 105 bad lines (105 problems). Shown: the first 100 problems, then "5 more"
    # (not 5 + 7, what counting skipped units said).
    path = tmp_path / "mixed.jsonl"
    orphan = json.loads(_server_line("a" * 32, "b" * 16, 1_700_000_000_000_000_000, 10**6))
    spans = orphan["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for n in range(7):
        spans.append(dict(spans[0], spanId=f"{n + 1:016x}", parentSpanId="f" * 16, kind=3))
    path.write_text(json.dumps(orphan) + "\n" + "not json\n" * 105)
    result = CliRunner().invoke(main, ["analyze", str(path), "-q"])
    assert result.exit_code == 0, result.output
    shown = [line for line in result.output.splitlines() if "mixed.jsonl:" in line]
    assert len(shown) == 100
    assert "... and 5 more problems not shown" in result.output
