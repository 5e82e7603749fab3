"""What the server benchmarks share: a free port, the one-table SQLite file, wrk, span counts.

Imported by bench_collect.py and bench_django.py, which run as scripts (their folder is on
sys.path) and as server modules started with --app-dir / --chdir on this folder.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO item VALUES (?, ?)", [(i, f"item {i}") for i in range(100)])


def wrk(url: str, duration: float) -> float:
    """Requests/s from wrk pinned to CPU 1 (the server is pinned to CPU 0)."""
    cmd = ["taskset", "-c", "1", "wrk", "-t1", "-c16", f"-d{int(duration)}s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not match or "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk: unexpected output:\n{out}")
    return float(match.group(1))


def count_spans(out_dir: Path) -> int:
    total = 0
    for path in out_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            for rs in json.loads(line).get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    total += len(ss.get("spans", ()))
    return total


def interleaved_rounds(
    measure: Callable[[str, str, Path], tuple[float, float]],
    variants: Sequence[str],
    endpoints: Sequence[str],
    rounds: int,
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """``measure(variant, endpoint, work_dir)`` -> (req/s, spans/request) for every variant
    and endpoint, ``rounds`` times over, interleaved so slow drift on a shared machine hits
    every variant alike; the work directory holds the one-table SQLite file."""
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        make_db(work / "bench.db")
        for _ in range(rounds):
            for endpoint in endpoints:
                for variant in variants:
                    rps, spans = measure(variant, endpoint, work)
                    results.setdefault((variant, endpoint), []).append((rps, spans))
                    print(f"  {variant:13} {endpoint:7} {rps:9.0f} req/s", file=sys.stderr)
    return results


def print_report(
    results: Mapping[tuple[str, str], Sequence[tuple[float, float]]],
    variants: Sequence[str],
    endpoints: Sequence[str],
) -> None:
    """The side-by-side table and the issue's targets, from (req/s, spans/req) per round.

    ``variants`` must include bare, otel, ours_all and ours_sampled; ``plugins``
    (instrumentation without the collector) is reported when present.
    """

    def rps(variant: str, endpoint: str) -> float:
        return statistics.median(r for r, _ in results[(variant, endpoint)])

    def overhead(variant: str, endpoint: str) -> float:
        return 1e6 / rps(variant, endpoint) - 1e6 / rps("bare", endpoint)

    print(
        "| variant | /hello req/s | /hello us/req | /one req/s | /one us/req | spans/req (/one) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for variant in variants:
        spans = statistics.median(s for _, s in results[(variant, "/one")])
        cells = []
        for endpoint in endpoints:
            cells.append(f"{rps(variant, endpoint):,.0f}")
            cells.append("-" if variant == "bare" else f"{overhead(variant, endpoint):+.0f}")
        print(f"| {variant} | {' | '.join(cells)} | {spans:.2f} |")
    print()
    for endpoint in endpoints:
        ratio = overhead("ours_all", endpoint) / overhead("otel", endpoint)
        verdict = "met" if ratio <= 0.5 else "NOT met"
        print(
            f"every span kept, {endpoint}: {ratio:.2f} x plain OpenTelemetry's overhead "
            f"(target <= 0.5: {verdict})"
        )
    loss = 1 - rps("ours_sampled", "/one") / rps("bare", "/one")
    verdict = "met" if loss <= 0.10 else "NOT met"
    print(f"default (sampled), /one: {loss:.1%} of bare throughput lost (target <= 10%: {verdict})")
    if "plugins" in variants:
        own = overhead("ours_sampled", "/one") - overhead("plugins", "/one")
        print(
            f"  of which the instrumentation alone (plugins): {overhead('plugins', '/one'):+.0f}"
            f" us, the collector: {own:+.0f} us per request"
        )
