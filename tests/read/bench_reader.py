"""The reader alone vs the simplest Python reader, on a generated OTLP JSON-lines file.

Run: ``uv run --no-sync python tests/read/bench_reader.py [--spans 200000] [--rounds 3]``

Each reader runs in its own process (so peak RSS is its own), alternating, and the best
CPU-time round is reported. ``walk`` is ``json.loads`` per line touching every span's
fields; ``walk_keep`` also keeps one tuple per span (what a naive tool does);
``read_traces`` is ``latency_ledger.read`` with its defaults, counting spans.
Not collected by pytest (not a ``test_*`` file); the full-analysis benchmark lives in
tests/benchmarks/.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("walk", "walk_keep", "read_traces")


def _walk(path: str, keep: bool) -> int:
    kept: list[tuple[object, ...]] = []
    count = 0
    with open(path, "rb") as f:
        for line in f:
            data = json.loads(line)
            for rs in data.get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    for s in ss.get("spans", ()):
                        count += 1
                        row = (
                            s["traceId"],
                            s["spanId"],
                            s.get("parentSpanId", ""),
                            s["name"],
                            s["kind"],
                            int(s["startTimeUnixNano"]),
                            int(s["endTimeUnixNano"]),
                            {a["key"]: a["value"] for a in s.get("attributes", ())},
                        )
                        if keep:
                            kept.append(row)
    return count


def _read_traces(path: str) -> int:
    from latency_ledger.read import ReadStats, read_traces

    stats = ReadStats()
    return sum(len(t.spans) for t in read_traces([path], stats=stats))


def _child(mode: str, path: str) -> None:
    cpu = time.process_time()
    spans = _read_traces(path) if mode == "read_traces" else _walk(path, mode == "walk_keep")
    cpu = time.process_time() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"spans": spans, "cpu_s": cpu, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file", help="reuse (or create) this file instead of a temp one")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.file)
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from gen import write_otlp_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file or Path(tmp) / "bench.jsonl")
        if not path.exists():
            write_otlp_jsonl(path, requests=args.spans // 10, spans_per_request=10, seed=1)
        print(f"{path}: {path.stat().st_size / 1e6:.0f} MB")
        best: dict[str, dict[str, float]] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, "--file", str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                result = json.loads(out)
                if mode not in best or result["cpu_s"] < best[mode]["cpu_s"]:
                    best[mode] = result
        for mode, r in best.items():
            rate = r["spans"] / r["cpu_s"]
            print(
                f"{mode:12s} {r['spans']:>9,} spans  {r['cpu_s']:6.2f} s CPU  "
                f"{rate:>9,.0f} spans/s  peak RSS {r['peak_mb']:5.0f} MB"
            )


if __name__ == "__main__":
    main()
