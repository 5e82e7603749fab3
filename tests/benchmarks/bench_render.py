"""Render a 200-endpoint report (every endpoint with findings and a verdict).

Run: ``uv run --no-sync python tests/benchmarks/bench_render.py``

Prints the HTML size and the median wall time of 5 renders (the first render also
compiles the templates, so it is printed separately), plus the JSON and terminal
renderers. Targets (issue 3): HTML under 2 MB, rendering well under 1 s.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from latency_ledger.model import Report
from latency_ledger.render.html import render_html
from latency_ledger.render.json import report_to_json
from latency_ledger.render.text import render_text

RUNS = 5


def load_report(endpoints: int) -> Report:
    """The renderer tests' hand-built report, grown to ``endpoints`` endpoints."""
    path = Path(__file__).resolve().parents[1] / "render" / "conftest.py"
    spec = importlib.util.spec_from_file_location("render_conftest", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    report: Report = module.make_big_report(endpoints)
    inputs = dataclasses.replace(report.inputs, spans=1_000_000, requests=250_000)
    return dataclasses.replace(report, inputs=inputs)


def timed(fn: Callable[[], object]) -> tuple[float, list[float]]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main() -> None:
    report = load_report(200)
    findings = sum(len(e.findings) for e in report.endpoints)
    print(f"report: {len(report.endpoints)} endpoints, {findings} findings, all with verdicts")
    html_median, html_times = timed(lambda: render_html(report))
    size = len(render_html(report).encode())
    print(f"html:  {size / 1e6:.2f} MB ({size:,} bytes), target < 2 MB")
    print(
        f"html:  median {html_median * 1000:.0f} ms of {RUNS} renders "
        f"(first, with template compile: {html_times[0] * 1000:.0f} ms), target well under 1 s"
    )
    json_median, _ = timed(lambda: json.dumps(report_to_json(report)))
    print(f"json:  median {json_median * 1000:.0f} ms (report_to_json + json.dumps)")
    text_median, _ = timed(lambda: render_text(report))
    print(f"text:  median {text_median * 1000:.0f} ms")


if __name__ == "__main__":
    main()
