"""Analysis through ClickHouse (chdb, in process) against the file path, on the same spans.

Run:  uv run python tests/benchmarks/bench_clickhouse.py            (1,000,000 spans; ~5 min)
      uv run python tests/benchmarks/bench_clickhouse.py --spans 100000 --runs 1

Generates an OTLP JSON-lines file (tests/read/gen.py), loads the same spans into a chdb
data directory with the exporter's ``otel_traces`` DDL (``clickhouse.schema``; not
timed), then in one run alternates, each in a fresh process (peak RSS its own):
- ``file``:  ``analyze`` on the file (read, book, aggregate, findings, verdict);
- ``chdb``:  ``analyze`` on ``chdb:///DIR?table=otel_traces``: the same report, each
  request booked in ClickHouse (clickhouse/book.py, tree.py; every generated trace has
  that shape), its ledger and calls aggregated in Python;
- ``fetch``: the ClickHouse queries alone (their booking included), the rows decoded
  into requests, nothing aggregated: what the database side and the transfer cost.
Prints medians of interleaved rounds and the chdb/file throughput ratio. Machines here
are noisy: quote medians and ratios, not single runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "read"))
MODES = ("file", "chdb", "fetch")


def _url(directory: Path) -> str:
    return f"chdb://{directory}?table=otel_traces"


def fetch_only(directory: Path) -> int:
    from latency_ledger.analyze import default_rules
    from latency_ledger.clickhouse.read import read_table
    from latency_ledger.clickhouse.source import connect, parse_url
    from latency_ledger.read import ReadLimits, ReadStats
    from latency_ledger.request_filter import RequestFilter

    source = parse_url(_url(directory))
    connection = connect(source)
    stats = ReadStats()
    try:
        for _ in read_table(
            source,
            connection,
            stats=stats,
            select=RequestFilter(),
            limits=ReadLimits(),
            rules=default_rules(),
        ):
            pass
    finally:
        connection.close()
    return stats.spans


def child(mode: str, path: Path, directory: Path) -> None:
    from latency_ledger.analyze import analyze

    start = time.perf_counter()
    if mode == "load":
        spans = load(path, directory)
    elif mode == "fetch":
        spans = fetch_only(directory)
    else:
        report = analyze([str(path) if mode == "file" else _url(directory)])
        spans = report.inputs.spans
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "spans": spans, "seconds": seconds, "peak_mb": peak_mb}))


def run_child(mode: str, path: Path, directory: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path), str(directory)],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"{mode} failed:\n{done.stderr}")
    out = done.stdout
    return json.loads(out.strip().splitlines()[-1])


def load(path: Path, directory: Path) -> int:
    from chdb import session

    from latency_ledger.clickhouse.schema import load_traces
    from latency_ledger.read import ReadStats, read_traces

    db = session.Session(str(directory))
    try:
        return load_traces(db, read_traces([path], stats=ReadStats()))
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", nargs=3, metavar=("MODE", "FILE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), Path(args.child[2]))
        return

    from gen import write_otlp_jsonl

    with tempfile.TemporaryDirectory(prefix="ll-bench-ch-") as tmp:
        path = Path(tmp) / "spans.jsonl"
        directory = Path(tmp) / "chdb"
        per_request = 10
        write_otlp_jsonl(
            path, requests=max(1, args.spans // per_request), spans_per_request=per_request, seed=7
        )
        # In a process of its own: Linux carries the peak RSS across exec, so a parent
        # that had loaded chdb would show its size in every child's figure.
        loading = run_child("load", path, directory)
        loaded = int(loading["spans"])
        print(
            f"{loaded:,} spans: file {path.stat().st_size / 2**20:,.0f} MB; "
            f"loaded into chdb in {loading['seconds']:.0f} s (not timed below)"
        )
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        for _ in range(args.runs):
            for mode in MODES:
                results[mode].append(run_child(mode, path, directory))
        rates = {}
        print(f"{'path':<6} {'spans/s (median)':>18} {'seconds':>9} {'peak RSS MB':>12}")
        for mode, rows in results.items():
            assert all(r["spans"] == loaded for r in rows), rows
            rates[mode] = statistics.median(r["spans"] / r["seconds"] for r in rows)
            secs = statistics.median(r["seconds"] for r in rows)
            peak = statistics.median(r["peak_mb"] for r in rows)
            print(f"{mode:<6} {rates[mode]:>18,.0f} {secs:>9.2f} {peak:>12,.0f}")
        print(f"ratio chdb/file throughput: {rates['chdb'] / rates['file']:.2f}")


if __name__ == "__main__":
    main()
