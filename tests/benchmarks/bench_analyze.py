"""Analysis throughput and peak memory, side by side with the plainest Python reader.

Run:  uv run python tests/benchmarks/bench_analyze.py            (1,000,000 spans; ~5 min)
      uv run python tests/benchmarks/bench_analyze.py --spans 200000 --big-factor 0

Generates an OTLP JSON-lines file, then in one run alternates, each in a fresh process
(so peak RSS is that reader's own):
- ``plain``: ``json.loads`` per line, walking every span into a tuple: the simplest
  possible reader, the bar the issue sets;
- ``full``:  the whole ``latency_ledger.analyze`` pipeline (read, book, aggregate,
  findings, verdict).
It prints the medians, the ratio (full / plain spans per second: >= 1 meets the target)
and then the full pipeline's peak RSS on a file ``--big-factor`` times larger (target:
under 1 GB). Machines here are noisy: quote medians and ratios, not single runs.
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


def plain_walk(path: Path) -> int:
    spans = 0
    keep = []
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            for rs in doc.get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    for s in ss.get("spans", ()):
                        keep.append(
                            (
                                s["traceId"],
                                s["spanId"],
                                s.get("parentSpanId", ""),
                                s["name"],
                                s.get("kind", 0),
                                int(s["startTimeUnixNano"]),
                                int(s["endTimeUnixNano"]),
                                s.get("attributes", ()),
                            )
                        )
                        spans += 1
    return spans


def full_analysis(path: Path) -> int:
    from latency_ledger.analyze import analyze

    report = analyze([path])
    return report.inputs.spans


def child(mode: str, path: Path) -> None:
    start = time.perf_counter()
    spans = plain_walk(path) if mode == "plain" else full_analysis(path)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"mode": mode, "spans": spans, "seconds": seconds, "peak_mb": peak_mb}))


def run_child(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def generate(path: Path, spans: int) -> None:
    from gen import write_otlp_jsonl

    per_request = 10
    write_otlp_jsonl(
        path, requests=max(1, spans // per_request), spans_per_request=per_request, seed=7
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--big-factor",
        type=int,
        default=4,
        help="memory run on a file this many times larger (0: skip)",
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    with tempfile.TemporaryDirectory(prefix="ll-bench-") as tmp:
        path = Path(tmp) / "spans.jsonl"
        generate(path, args.spans)
        size_mb = path.stat().st_size / 2**20
        print(f"file: {args.spans:,} spans, {size_mb:,.0f} MB")
        results: dict[str, list[dict[str, float]]] = {"plain": [], "full": []}
        for _ in range(args.runs):
            for mode in ("plain", "full"):
                results[mode].append(run_child(mode, path))
        rates = {}
        print(f"{'reader':<8} {'spans/s (median)':>18} {'seconds':>9} {'peak RSS MB':>12}")
        for mode, rows in results.items():
            assert all(r["spans"] == rows[0]["spans"] for r in rows)
            rate = statistics.median(r["spans"] / r["seconds"] for r in rows)
            rates[mode] = rate
            secs = statistics.median(r["seconds"] for r in rows)
            peak = statistics.median(r["peak_mb"] for r in rows)
            print(f"{mode:<8} {rate:>18,.0f} {secs:>9.2f} {peak:>12,.0f}")
        print(f"ratio full/plain throughput: {rates['full'] / rates['plain']:.2f} (target >= 1)")
        path.unlink()

        if args.big_factor:
            big = Path(tmp) / "big.jsonl"
            generate(big, args.spans * args.big_factor)
            size_mb = big.stat().st_size / 2**20
            row = run_child("full", big)
            print(
                f"memory: full analysis of {row['spans']:,.0f} spans ({size_mb:,.0f} MB): "
                f"peak RSS {row['peak_mb']:,.0f} MB (target < 1024), {row['seconds']:.1f} s"
            )


if __name__ == "__main__":
    main()
