"""What in-app collection costs, counted in CPU instructions: repeatable on a busy machine.

Run:  uv run --no-sync python tests/benchmarks/bench_instructions.py          (~3 min)
      uv run --no-sync python tests/benchmarks/bench_instructions.py --requests 3200

Needs valgrind. wrk figures (bench_collect.py) move by 10-30% between runs on these shared
two-core machines; ``valgrind --tool=callgrind`` counts the instructions a program runs,
the same count whatever else the machine is doing. Each variant of bench_collect.py's
app (bare, plain OpenTelemetry, ours with every span kept, ours in the default setting)
runs in its own process under callgrind, driven in-process through its ASGI callable (no
server, no sockets) by 4 concurrent clients, each request its own task as an ASGI server
makes it. Counting is switched on (``callgrind_control -i on``) only after a warm-up and
off after the measured requests, so start-up and imports are not counted; instructions
per request = counted / requests. Sampled profiling is off here (see ``child``).
System calls run in the kernel and are not counted
(each task step of ours reads the thread CPU clock twice, ~0.6 us each here), so the
wall-clock cost is somewhat above what these counts suggest.

This file is also the driver each process runs: ``--child VARIANT ENDPOINT N``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "otel", "ours_all", "ours_sampled")
ENDPOINTS = ("/hello", "/one", "/api")
CLIENTS = 4
WARM_UP = 300


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }


async def _drive(app: Any, endpoint: str, requests: int) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def request() -> None:
        await app(_scope(endpoint), receive, send)

    startup: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})

    async def lifespan_send(message: dict[str, Any]) -> None:
        return None

    lifespan = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, startup.get, lifespan_send)
    )
    await asyncio.sleep(0.05)
    for _ in range(WARM_UP):
        await asyncio.ensure_future(request())

    async def client() -> None:
        for _ in range(requests // CLIENTS):
            await asyncio.ensure_future(request())  # a task per request, as a server does

    pid = os.getpid()
    subprocess.run(["callgrind_control", "-i", "on", str(pid)], capture_output=True, check=True)
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    subprocess.run(["callgrind_control", "-i", "off", str(pid)], capture_output=True, check=True)
    await startup.put({"type": "lifespan.shutdown"})
    await asyncio.sleep(0.05)
    lifespan.cancel()


def child(variant: str, endpoint: str, requests: int, work: Path) -> None:
    sys.path.insert(0, str(HERE))
    from _wrk import make_db
    from bench_collect import build_app

    try:  # valgrind runs ~50x slower: every pool checkout would look like a wait
        import latency_ledger_sqlalchemy

        latency_ledger_sqlalchemy.POOL_WAIT_MIN_NS = 10**15
    except ImportError:
        pass
    make_db(work / "bench.db")
    if endpoint == "/api":
        from _realistic import make_pg

        make_pg()
    # Time-driven parts are off, as valgrind runs ~50x slower than real time: the rules
    # that keep or profile the slowest request per endpoint per minute would fire ~50x as
    # often per request, and a pyinstrument profile samples the stack every millisecond
    # of wall time, so one profiled request would count ~50x its real cost (a single one
    # moved the per-request mean by over 1M instructions). The random 1% kept stays; the
    # 0.1% profiled is measured by bench_collect.py in real time.
    overrides = {"profile_slowest": False, "slow_per_endpoint": False, "profile_rate": 0.0}
    app = build_app(variant, work / "out", work / "bench.db", overrides)
    asyncio.run(_drive(app, endpoint, requests))


def measure(variant: str, endpoint: str, requests: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        cmd += [f"--callgrind-out-file={out}", sys.executable, __file__]
        cmd += ["--child", variant, endpoint, str(requests), tmp]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"{variant} {endpoint}: {done.stderr[-2000:]}")
        return int(found.group(1)) / (requests // CLIENTS * CLIENTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=1600)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "ENDPOINT", "N", "DIR"))
    args = parser.parse_args()
    if args.child:
        variant, endpoint, n, work = args.child
        child(variant, endpoint, int(n), Path(work))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found: apt-get install -y valgrind")
    endpoints = args.endpoints.split(",")
    variants = args.variants.split(",")
    counts = {(v, e): measure(v, e, args.requests) for e in endpoints for v in variants}
    print(f"\ninstructions per request, {args.requests} requests, {CLIENTS} clients, in-process")
    print("\n| variant | " + " | ".join(f"{e} | vs bare" for e in endpoints) + " |")
    print("|---|" + "---:|---:|" * len(endpoints))
    for v in variants:
        cells = []
        for e in endpoints:
            n, bare = counts[(v, e)], counts.get(("bare", e))
            cells += [f"{n:,.0f}", "-" if v == "bare" or not bare else f"+{n / bare - 1:.1%}"]
        print(f"| {v} | " + " | ".join(cells) + " |")
    for e in endpoints:
        if {("otel", e), ("ours_all", e), ("bare", e)} <= counts.keys():
            bare, otel = counts[("bare", e)], counts[("otel", e)]
            share = (counts[("ours_all", e)] - bare) / (otel - bare)
            print(f"every span kept, {e}: {share:.2f} x plain OpenTelemetry's added instructions")
        if ("ours_sampled", e) in counts and ("bare", e) in counts:
            print(
                f"default (sampled), {e}: "
                f"{counts[('ours_sampled', e)] / counts[('bare', e)] - 1:.1%} more "
                "instructions than the bare app"
            )


if __name__ == "__main__":
    main()
