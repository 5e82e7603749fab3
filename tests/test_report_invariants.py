"""The report's stated invariants, checked on every sample report in reports/.

The rules are those the report states in its method section (verdict.py's docstring):
only interpreter time (or ``app``, as a bound) shrinks, by ``1 - 1/k``; every part adds
up; the headline's figures are the tables' figures; fix-first compares two means over
all requests; a fix saves at most what it can remove; the words are plain.

Also a tool for any report directory (the demo's output, for one)::

    uv run python tests/test_report_invariants.py ledger-out/report.json
"""

from __future__ import annotations

import json
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = sorted((ROOT / "reports").glob("*.json"))
EPS_MS = 0.02  # two rounding steps of the JSON's 0.01 ms
SHRINKS = ("interpreter", "app")  # the stated rule, written out again independently
INTERNAL = re.compile(
    r"\b(n_plus_one|slow_statement|chatty_calls|pool_wait|native_cpu|dont_migrate"
    r"|migration_could_pay"
    r"|saving fraction|thresholds?)\b"
)
_MS = re.compile(r"([\d.,]+) (ms|s)\b")


def _ms(text: str) -> float:
    value, unit = _MS.fullmatch(text.strip()).groups()  # type: ignore[union-attr]
    number = float(value.replace(",", ""))
    return number * 1000 if unit == "s" else number


def _close(a: float, b: float, shown: str) -> bool:
    """``a`` (exact) and ``b`` printed as ``shown``: equal within its printed precision."""
    decimals = len(shown.split(".")[1].split()[0]) if "." in shown.split()[0] else 0
    return abs(a - b) <= 0.5 * 10**-decimals + EPS_MS


class _Visible(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self._skip = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip = tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip = False

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.text.append(data)


def endpoint_problems(e: dict[str, Any]) -> list[str]:
    """Every broken invariant of one endpoint (or ``overall``) of a JSON report."""
    name = f"{e['service']} {e['endpoint']}"
    out: list[str] = []
    for key, parts in e["ledger_ms"].items():
        if abs(sum(parts.values()) - e["latency_ms"][key]) > EPS_MS:
            out.append(f"{name}: {key} ledger parts do not add up to its latency")
    # an estimate's bound lies inside the part it bounds
    for key, bounds in e.get("wait_bounds_ms", {}).items():
        parts = e["ledger_ms"][key]
        for part in ("database", "network"):
            if not 0 <= bounds[part] <= parts.get(part, 0.0) + EPS_MS:
                out.append(f"{name}: {key} {part} wait bound outside the {part} part")
        io = parts.get("database", 0.0) + parts.get("network", 0.0)
        if not 0 <= bounds["unbounded"] <= io + EPS_MS:
            out.append(f"{name}: {key} unbounded I/O outside database + network")
    threads = e.get("native_threads")
    if threads is not None and not (
        0 <= threads["cpu_ms_per_request"] <= threads["max_ms_per_request"] + EPS_MS
        and 0 < threads["requests"] <= e["count"]
    ):
        out.append(f"{name}: native threads' CPU outside its bound")
    verdict = e["verdict"]
    if verdict is None:
        return out
    best: tuple[str, dict[str, Any]] | None = None
    for target, p in verdict["targets"].items():
        k = p["factor"]
        for key, saving in (("p50", p["p50_saving_ms"]), ("p99", p["p99_saving_ms"])):
            shrinkable = sum(e["ledger_ms"][key].get(part, 0.0) for part in SHRINKS)
            if saving > shrinkable * (1 - 1 / k) + EPS_MS:
                out.append(f"{name}: {target} {key} saving {saving} above the stated bound")
            if abs(p[f"{key}_ms"] + saving - e["latency_ms"][key]) > EPS_MS:
                out.append(f"{name}: {target} {key} after + saving is not the latency")
        mean_bound = sum(e["ledger_ms"]["mean"].get(part, 0.0) for part in SHRINKS)
        if p["mean_saving_ms"] > mean_bound * (1 - 1 / k) + EPS_MS:
            out.append(f"{name}: {target} mean saving above the stated bound")
        low, high = p["p50_saving_range_ms"]
        if not low - EPS_MS <= p["p50_saving_ms"] <= high + EPS_MS:
            out.append(f"{name}: {target} p50 saving outside its own range")
        if best is None or p["p50_saving_fraction"] > best[1]["p50_saving_fraction"]:
            best = (target, p)
    summary = verdict["summary"]
    if INTERNAL.search(summary) or any(INTERNAL.search(r) for r in verdict["reasons"]):
        out.append(f"{name}: internal identifiers or raw thresholds in the verdict text")
    # The headline's largest share is the p50 table's.
    share = re.search(r": (\d+)% of p50 is ", summary)
    parts = e["ledger_ms"]["p50"]
    if share and e["latency_ms"]["p50"] > 0:
        top = max(parts.values()) / e["latency_ms"]["p50"] * 100
        # the JSON's 0.01 ms rounding moves a share of a tiny latency by more than a point
        slack = 1 + 100 * EPS_MS / e["latency_ms"]["p50"]
        if abs(top - int(share.group(1))) > slack:
            out.append(f"{name}: headline share {share.group(1)}% is not the table's {top:.1f}%")
    # The headline's port figure is the best projection's.
    port = re.search(
        r"port saves (?:about|at most) ([\d.]+ m?s) \(([\d.]+|<0\.1)%\) of p50", summary
    )
    if best is not None:
        if port is None:
            out.append(f"{name}: headline names no port saving")
        elif not _close(best[1]["p50_saving_ms"], _ms(port.group(1)), port.group(1)):
            out.append(f"{name}: headline saving {port.group(1)} is not the table's")
        elif port.group(2) != "<0.1" and not _close(
            best[1]["p50_saving_fraction"] * 100, float(port.group(2)), port.group(2) + " %"
        ):
            out.append(f"{name}: headline share {port.group(2)}% is not the table's")
    elif port is not None:
        out.append(f"{name}: headline names a port no table offers")
    # Fix-first compares the same quantity, and both sides are printed.
    fix = re.search(
        r"saves up to ([\d.]+ m?s) per request on average(?:; the port: ([\d.]+ m?s) on average)?",
        summary,
    )
    fixes = verdict["fixes"]
    if fixes and fix is None:
        out.append(f"{name}: headline does not name the cheaper fix's saving")
    if fix is not None:
        fix_ms = fixes[0]["saving_ms_per_request"]
        if not _close(fix_ms, _ms(fix.group(1)), fix.group(1)):
            out.append(f"{name}: headline fix saving {fix.group(1)} is not the fix's {fix_ms}")
        if best is not None:
            port_mean = best[1]["mean_saving_ms"]
            if fix.group(2) is None or not _close(port_mean, _ms(fix.group(2)), fix.group(2)):
                out.append(f"{name}: headline does not print the port's mean saving")
            if verdict["label"] == "migration_could_pay" and fix_ms >= 0.5 * port_mean:
                out.append(f"{name}: a fix worth half the port's mean saving did not come first")
    for f in [*e["findings"], *fixes]:
        if f["fixable_ms_per_request"] > f["ms_per_request"] + EPS_MS:
            out.append(f"{name}: finding removes more than it costs")
        bound = f["fixable_ms_per_request"] * f["requests_fraction"]
        if f["saving_ms_per_request"] > bound + EPS_MS:
            out.append(f"{name}: finding saves more than it can remove")
    if verdict["cpu_per_request_ms"] is not None:
        mean = e["ledger_ms"]["mean"]
        mean_cpu = mean.get("interpreter", 0.0) + mean.get("native", 0.0)
        if abs(verdict["cpu_per_request_ms"] - mean_cpu) > EPS_MS:
            out.append(f"{name}: CPU per request is not the mean ledger's CPU time")
    return out


def report_problems(json_path: Path) -> list[str]:
    """Every broken invariant of a JSON report and its .txt / .html siblings."""
    doc = json.loads(json_path.read_text())
    out = []
    for e in [doc["overall"], *doc["endpoints"]]:
        out.extend(endpoint_problems(e))
    cpu = doc["inputs"].get("cpu")
    if cpu is not None:
        share = cpu["unbooked_fraction"]
        expected = max(0.0, 1 - cpu["booked_ms"] / cpu["process_ms"]) if cpu["process_ms"] else 0
        if not 0 <= share <= 1 or abs(share - min(1.0, expected)) > 0.001:
            out.append(f"{json_path.name}: unbooked CPU share is not 1 - booked / process")
    verdict = doc["overall"]["verdict"]
    text_path = json_path.with_suffix(".txt")
    html_path = json_path.with_suffix(".html")
    if text_path.exists():
        text = text_path.read_text()
        if INTERNAL.search(text):
            out.append(f"{text_path.name}: internal identifiers in the terminal text")
        if verdict is not None:
            joined = " ".join(text.split())
            if " ".join(verdict["summary"].split()) not in joined:
                out.append(f"{text_path.name}: the headline differs from the JSON's")
            for target, p in verdict["targets"].items():
                line = re.search(
                    rf"ported to \S+ \(interpreter {p['factor']}× faster\): "
                    rf"(?:at most )?p50 -([\d.]+ m?s)",
                    joined,
                )
                if line is None or not _close(p["p50_saving_ms"], _ms(line[1]), line[1]):
                    out.append(f"{text_path.name}: {target} line differs from the JSON")
    if html_path.exists():
        visible = " ".join(" ".join(_Visible(html_path.read_text()).text).split())
        if INTERNAL.search(visible):
            out.append(f"{html_path.name}: internal identifiers in the page text")
        if verdict is not None and " ".join(verdict["summary"].split()) not in visible:
            out.append(f"{html_path.name}: the headline differs from the JSON's")
        if "CPU / request (mean)" not in visible and verdict and verdict["cpu_per_request_ms"]:
            out.append(f"{html_path.name}: CPU per request is not labelled a mean")
    return out


def test_there_are_sample_reports() -> None:
    assert SAMPLES


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_sample_report_keeps_its_stated_invariants(path: Path) -> None:
    assert report_problems(path) == []


THIRD_PARTY = sorted(
    p
    for p in (ROOT / "tests" / "data" / "traces").glob("*/*")
    if p.suffix in (".json", ".binpb", ".protobuf-bin")
)


@pytest.mark.parametrize("trace", THIRD_PARTY, ids=[p.name for p in THIRD_PARTY])
def test_reports_on_third_party_traces_keep_the_invariants(trace: Path, tmp_path: Path) -> None:
    from latency_ledger.analyze import analyze
    from latency_ledger.render.html import write_html
    from latency_ledger.render.json import write_json
    from latency_ledger.render.text import render_text

    report = analyze([trace])
    # a file with no request (Jaeger, Zipkin, a fixture without times) still renders,
    # with nothing to break: every file is checked, none skipped
    assert report.inputs.requests > 0 or report.endpoints == ()
    out = tmp_path / "report.json"
    write_json(report, out)
    write_html(report, out.with_suffix(".html"))
    out.with_suffix(".txt").write_text(render_text(report))
    assert report_problems(out) == []


def test_the_checker_catches_a_saving_above_the_bound() -> None:
    # The checker itself must fail on a broken report: inflate one saving past its bound.
    doc = json.loads(SAMPLES[0].read_text())
    endpoint = doc["endpoints"][0]
    (_target, projection), *_ = endpoint["verdict"]["targets"].items()
    projection["p50_saving_ms"] = endpoint["latency_ms"]["p50"]
    projection["p50_ms"] = 0.0
    problems = endpoint_problems(endpoint)
    assert any("above the stated bound" in p for p in problems), problems
    endpoint["verdict"]["summary"] = endpoint["verdict"]["summary"].replace(
        "of p50", "of p50 (slow_statement)", 1
    )
    assert any("internal identifiers" in p for p in endpoint_problems(endpoint))


def test_the_checker_catches_a_bound_above_its_part() -> None:
    doc = json.loads(SAMPLES[0].read_text())
    endpoint = doc["endpoints"][0]
    bounds = endpoint["wait_bounds_ms"]["p50"]
    bounds["database"] = endpoint["ledger_ms"]["p50"]["database"] + 1
    bounds["unbounded"] = endpoint["latency_ms"]["p50"] + 1
    endpoint["native_threads"] = {"requests": 1, "cpu_ms_per_request": 2, "max_ms_per_request": 1}
    problems = endpoint_problems(endpoint)
    assert any("database wait bound outside" in p for p in problems), problems
    assert any("unbounded I/O outside" in p for p in problems), problems
    assert any("native threads' CPU outside" in p for p in problems), problems


if __name__ == "__main__":
    found = [p for arg in sys.argv[1:] for p in report_problems(Path(arg))]
    print("\n".join(found) or "all invariants hold")
    sys.exit(1 if found else 0)
