"""Analysis throughput and peak memory, side by side with the plainest Python reader.

Run:  uv run python tests/benchmarks/bench_analyze.py                 (1M spans, ~10 min)
      uv run python tests/benchmarks/bench_analyze.py --spans 5000000 --runs 1
      uv run python tests/benchmarks/bench_analyze.py --spans 10000000 --runs 1 \
          --modes jobs1,jobs2 --no-shuffled                              (the 100M projection)
      uv run python tests/benchmarks/bench_analyze.py --spans 200000 --runs 1   (a smoke run)
      uv run python tests/benchmarks/bench_analyze.py --instructions 20000   (callgrind)

Generates an OTLP JSON-lines file (tests/read/gen.py: traces of 20 spans, a SERVER span
with DB and HTTP CLIENT children, 2-8 traces per line, a trace's spans within a few
lines of each other), and an out-of-order copy of it (every span moved to a random one
of 64 stretches of the file: a trace's spans spread across all of it). Then in one run
it alternates, round after round, each in a fresh process:

- ``plain``: ``json.loads`` per line, reading every span's fields and keeping nothing:
  the simplest possible reader, the bar the issue sets;
- ``jobs1``: the whole ``latency_ledger.analyze`` pipeline (read, book, aggregate,
  findings, verdict) in one process (``--jobs 1``);
- ``jobs2``: the same with two worker processes (``--jobs 2``);
- ``shuffled``: ``--jobs 1`` on the out-of-order copy (``--no-shuffled``: skipped);
- ``before1`` / ``before2`` (with ``--before DIR``): ``--jobs 1`` / ``--jobs 2`` run by
  another checkout's code (its own ``.venv``), in the same rounds: before/after in one run.

``--instructions N`` instead counts the CPU instructions per span of ``plain`` and
``jobs1`` on N generated spans under valgrind's callgrind (counting switched on around
the measured part only, as ``bench_instructions.py`` does, and the plugins loaded
before it: a fixed cost that would dominate a small file): figures that repeat however
busy the machine is, for comparing two versions of the code. Their ratio is not the
wall-clock ratio: the C JSON decoder of the plain walk runs more instructions per cycle
than the interpreter does (here the plain walk's ~53k instructions a span took less time
than the analysis's ~50k).

It prints each mode's median spans/s, seconds, peak RSS and spans per CPU-second (all
processes' user + system time: what the machine's other load does not change much), and
the ratios the issue
sets as targets: jobs1 / plain (>= 1.5, goal 3) and jobs2 / jobs1 (>= 1.7 on 2 cores).
Peak RSS is sampled every 20 ms as the SUM over the process and all its children (the
workers), and also taken from ``getrusage`` (the largest single process). It also prints
the 1-minute load average before and after: other work on the machine changes absolute
figures, so quote medians and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "read"))

SPANS_PER_TRACE = 20
STRETCHES = 64  # out-of-order copy: each span goes to one of this many parts of the file


def plain_walk(path: Path) -> int:
    """The issue's bar: ``json.loads`` per line, every span's fields read, nothing kept.

    Keeping a tuple per span (as this walk once did) made the bar itself slow (2.7 GB at
    1M spans, the machine paging) and flattered the ratio.
    """
    spans = 0
    last = None
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            doc = json.loads(line)
            for rs in doc.get("resourceSpans", ()):
                for ss in rs.get("scopeSpans", ()):
                    for s in ss.get("spans", ()):
                        last = (
                            s["traceId"],
                            s["spanId"],
                            s.get("parentSpanId", ""),
                            s["name"],
                            s.get("kind", 0),
                            int(s["startTimeUnixNano"]),
                            int(s["endTimeUnixNano"]),
                            s.get("attributes", ()),
                        )
                        spans += 1
    del last
    return spans


def full_analysis(path: Path, jobs: int) -> int:
    from latency_ledger.analyze import AnalyzeOptions, analyze

    report = analyze([path], options=AnalyzeOptions(jobs=jobs))
    return report.inputs.spans


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return found


class PeakSampler(threading.Thread):
    """The largest sum of RSS over this process and its children, sampled."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_kb = 0
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.wait(0.02):
            total = _rss_kb(me) + sum(_rss_kb(c) for c in _children(me))
            self.peak_kb = max(self.peak_kb, total)


def _callgrind(switch: str) -> None:
    """Switch callgrind's counting in this process (run under ``--instr-atstart=no``)."""
    command = ["callgrind_control", "-i", switch, str(os.getpid())]
    subprocess.run(command, capture_output=True, check=True)


def child(mode: str, path: Path, counted: bool = False) -> None:
    if mode != "plain":
        from latency_ledger.analyze import default_rules  # (imports are not the analysis)

        if counted:  # nor, per span, is loading the plugins: a fixed ~0.1 s
            default_rules()
    sampler = PeakSampler()
    if not counted:  # under callgrind the sampler's reads would be counted too
        sampler.start()
    before = resource.getrusage(resource.RUSAGE_SELF)
    if counted:
        _callgrind("on")
    start = time.perf_counter()
    if mode == "plain":
        spans = plain_walk(path)
    else:
        spans = full_analysis(path, jobs=2 if mode == "jobs2" else 1)
    seconds = time.perf_counter() - start
    if counted:
        _callgrind("off")
    sampler.stop.set()
    if sampler.is_alive():
        sampler.join()
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = me.ru_maxrss / 1024
    kids = children.ru_maxrss / 1024
    cpu = (
        me.ru_utime
        + me.ru_stime
        - before.ru_utime
        - before.ru_stime
        + children.ru_utime
        + children.ru_stime
    )
    print(
        json.dumps(
            {
                "mode": mode,
                "spans": spans,
                "seconds": seconds,
                "peak_mb": max(sampler.peak_kb / 1024, own),
                "max_process_mb": max(own, kids),
                "cpu_seconds": cpu,
            }
        )
    )


def run_child(mode: str, path: Path, before: Path | None = None) -> dict[str, float]:
    python = sys.executable
    if mode.startswith("before"):  # the same mode run by another checkout's code
        assert before is not None
        python = str(before / ".venv" / "bin" / "python")
        mode = "jobs" + mode.removeprefix("before")
    out = subprocess.run(
        [python, __file__, "--child", mode, str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def count_instructions(mode: str, path: Path) -> int:
    """Instructions ``mode``'s measured part runs, counted by callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, __file__]
        command += ["--child", mode, str(path), "--counted"]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"{mode}: {done.stderr[-2000:]}")
        return int(found.group(1))


def instructions(spans: int, where: str | None) -> None:
    """``--instructions``: plain and jobs1 per span under callgrind (module docstring)."""
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install -y valgrind")
    with tempfile.TemporaryDirectory(prefix="ll-bench-", dir=where) as tmp:
        path = Path(tmp) / "spans.jsonl"
        written = generate(path, spans)
        counts = {mode: count_instructions(mode, path) / written for mode in ("plain", "jobs1")}
    print(f"instructions per span, callgrind, {written:,} spans:")
    for mode, count in counts.items():
        print(f"{mode:<6} {count:>10,.0f}")
    print(f"ratio plain/jobs1 (instructions): {counts['plain'] / counts['jobs1']:.2f}")


def generate(path: Path, spans: int) -> int:
    from gen import write_otlp_jsonl

    return write_otlp_jsonl(  # type: ignore[no-any-return]
        path,
        requests=max(1, spans // SPANS_PER_TRACE),
        spans_per_request=SPANS_PER_TRACE,
        seed=7,
    )


def scatter(source: Path, target: Path, seed: int = 1) -> None:
    """``source`` with every span moved to a random one of ``STRETCHES`` parts of the
    file (a few spans per line), in bounded memory: one temporary file per part."""
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        parts = [open(Path(tmp, str(i)), "w") for i in range(STRETCHES)]  # noqa: SIM115
        pending: list[list[str]] = [[] for _ in range(STRETCHES)]
        try:
            with source.open() as fh:
                for line in fh:
                    for rs in json.loads(line)["resourceSpans"]:
                        resource_json = json.dumps(rs.get("resource"))
                        for ss in rs["scopeSpans"]:
                            for span in ss["spans"]:
                                i = rng.randrange(STRETCHES)
                                pending[i].append(
                                    f'{{"resource":{resource_json},'
                                    f'"scopeSpans":[{{"spans":[{json.dumps(span)}]}}]}}'
                                )
                                if len(pending[i]) >= 6:
                                    parts[i].write(
                                        f'{{"resourceSpans":[{",".join(pending[i])}]}}\n'
                                    )
                                    pending[i].clear()
            for i, rest in enumerate(pending):
                if rest:
                    parts[i].write(f'{{"resourceSpans":[{",".join(rest)}]}}\n')
        finally:
            for part in parts:
                part.close()
        with target.open("w") as out:
            for i in range(STRETCHES):
                with open(Path(tmp, str(i))) as fh:
                    for line in fh:
                        out.write(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--shuffled", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--modes",
        default="plain,jobs1,jobs2",
        help="comma-separated, of plain,jobs1,jobs2 (and before1,before2 with --before)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="another checkout (synced: its .venv) whose --jobs 1/2 run as before1/before2, "
        "interleaved with this one's in the same rounds: a before/after table in one run",
    )
    parser.add_argument("--dir", default=None, help="where the generated files go (temp)")
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        metavar="N",
        help="count CPU instructions per span (callgrind) of plain and jobs1 on N spans",
    )
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--counted", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]), counted=args.counted)
        return
    if args.instructions:
        instructions(args.instructions, args.dir)
        return

    with tempfile.TemporaryDirectory(prefix="ll-bench-", dir=args.dir) as tmp:
        path = Path(tmp) / "spans.jsonl"
        written = generate(path, args.spans)
        size_mb = path.stat().st_size / 2**20
        print(f"file: {written:,} spans, {size_mb:,.0f} MB; load average {os.getloadavg()[0]:.1f}")
        modes = args.modes.split(",")
        if args.before is not None:
            modes += [m.replace("jobs", "before") for m in modes if m.startswith("jobs")]
        files = dict.fromkeys(modes, path)
        if args.shuffled:
            shuffled = Path(tmp) / "shuffled.jsonl"
            scatter(path, shuffled)
            files["shuffled"] = shuffled
        results: dict[str, list[dict[str, float]]] = {mode: [] for mode in files}
        for _ in range(args.runs):
            for mode, file in files.items():
                results[mode].append(run_child(mode, file, args.before))
        rates = {}
        print(
            f"{'mode':<9} {'spans/s (median)':>17} {'seconds':>8} {'peak RSS MB':>12}"
            f" {'largest process MB':>19} {'spans per CPU-s':>16}"
        )
        for mode, rows in results.items():
            assert all(r["spans"] == written for r in rows), rows
            rate = statistics.median(r["spans"] / r["seconds"] for r in rows)
            rates[mode] = rate
            secs = statistics.median(r["seconds"] for r in rows)
            peak = max(r["peak_mb"] for r in rows)
            largest = max(r["max_process_mb"] for r in rows)
            per_cpu = statistics.median(r["spans"] / r["cpu_seconds"] for r in rows)
            print(
                f"{mode:<9} {rate:>17,.0f} {secs:>8.2f} {peak:>12,.0f} {largest:>19,.0f}"
                f" {per_cpu:>16,.0f}"
            )
        if "plain" in rates and "jobs1" in rates:
            ratio = rates["jobs1"] / rates["plain"]
            print(f"ratio jobs1/plain: {ratio:.2f} (target >= 1.5, goal 3)")
        if "jobs1" in rates and "jobs2" in rates:
            print(f"ratio jobs2/jobs1: {rates['jobs2'] / rates['jobs1']:.2f} (target >= 1.7)")
        for n in ("1", "2"):
            if f"before{n}" in rates and f"jobs{n}" in rates:
                gain = rates[f"jobs{n}"] / rates[f"before{n}"]
                print(f"jobs{n} / before{n} (this checkout over --before): {gain:.2f}")
            if f"before{n}" in rates and "plain" in rates:
                print(f"ratio before{n}/plain: {rates[f'before{n}'] / rates['plain']:.2f}")
        best = max(rate for mode, rate in rates.items() if mode.startswith("jobs"))
        # (this checkout's best; before* modes are not projected)
        print(
            f"projection: 100M spans in {100e6 / best / 60:.1f} min at {best:,.0f} spans/s "
            "(target < 10 min)"
        )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
