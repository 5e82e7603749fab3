"""What in-app collection costs a FastAPI app, side by side in one run.

Run:  uv run --no-sync python tests/benchmarks/bench_collect.py          (~2 min)
      uv run --no-sync python tests/benchmarks/bench_collect.py --duration 5 --rounds 3

Needs wrk (``apt-get install -y wrk``). Each variant of the same app is served by uvicorn
(one worker, httptools, the loop uvicorn picks) pinned to CPU 0, and loaded by
``wrk -t1 -c16`` pinned to CPU 1, on two endpoints: ``/hello`` and ``/one`` (one sync
SQLAlchemy query on SQLite, a ``def`` endpoint). Variants:

- ``bare``:   the app alone;
- ``otel``:   plain OpenTelemetry: opentelemetry-instrumentation-asgi's middleware and
  opentelemetry-instrumentation-sqlalchemy, SDK, BatchSpanProcessor, OTLP JSON file
  exporter (opentelemetry-exporter-otlp-json-file);
- ``plugins``: only the instrumentation ``instrument(app)`` switches on (the project's
  plugins, SQLAlchemy's among them) on an SDK provider with no processor and no
  middleware: the part of the cost that is the instrumentation's, not the collector's;
- ``ours_all``: ``latency_ledger.collect.instrument(app)``, every span kept;
- ``ours_sampled``: the same with the default ``keep_spans="sampled"``.

Per request overhead (us) = 1e6 / rps(variant) - 1e6 / rps(bare): the server is bound
to one core, so 1 / rps is its time per request. Rounds interleave the variants and the
table shows medians. Spans written per request is a sanity check that each variant
really records (a variant that records nothing is cheap for the wrong reason).

This file is also the app: ``uvicorn bench_collect:app`` builds the variant named by
``BENCH_VARIANT``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _wrk import count_spans, free_port, interleaved_rounds, print_report, wrk

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "otel", "plugins", "ours_all", "ours_sampled")
ENDPOINTS = ("/hello", "/one")


# -- the app ------------------------------------------------------------------------


def build_app(
    variant: str, out_dir: Path, db_path: Path, overrides: dict[str, Any] | None = None
) -> Any:
    """``overrides``: CollectConfig fields for the ``ours`` variants (bench_instructions.py)."""
    from fastapi import FastAPI
    from sqlalchemy import create_engine, text

    # FastAPI's own request spans stay off in every variant, so each measures one thing
    app = FastAPI(telemetry={"tracing": False, "metrics": False, "logs": False})
    engine_holder: dict[str, Any] = {}

    if variant == "otel":
        from opentelemetry.exporter.otlp.json.file import FileSpanExporter
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        out_dir.mkdir(parents=True, exist_ok=True)
        exporter = FileSpanExporter(out_dir / f"otel-{os.getpid()}.jsonl")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        engine = create_engine(f"sqlite:///{db_path}")
        SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
        app.add_middleware(OpenTelemetryMiddleware, tracer_provider=provider)
    elif variant == "plugins":
        from opentelemetry.sdk.trace import TracerProvider

        from latency_ledger.plugins import load_plugins

        provider = TracerProvider()
        for plugin in load_plugins():
            if callable(getattr(plugin, "instrument", None)):
                plugin.instrument(provider)
        engine = create_engine(f"sqlite:///{db_path}")
    elif variant.startswith("ours"):
        from latency_ledger.collect import CollectConfig, instrument

        keep = "all" if variant == "ours_all" else "sampled"
        config = CollectConfig(output_dir=out_dir, keep_spans=keep, **(overrides or {}))
        instrument(app, config=config)
        engine = create_engine(f"sqlite:///{db_path}")
    else:
        engine = create_engine(f"sqlite:///{db_path}")
    engine_holder["engine"] = engine

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/one")
    def one() -> dict[str, Any]:
        with engine_holder["engine"].connect() as conn:
            row = conn.execute(text("SELECT id, name FROM item WHERE id = :id"), {"id": 7}).one()
        return {"id": row[0], "name": row[1]}

    return app


if os.environ.get("BENCH_VARIANT"):
    app = build_app(
        os.environ["BENCH_VARIANT"], Path(os.environ["BENCH_OUT"]), Path(os.environ["BENCH_DB"])
    )


# -- the driver ---------------------------------------------------------------------


def wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def measure(variant: str, endpoint: str, work: Path, duration: float) -> tuple[float, float]:
    """(requests/s, spans written per request) for one variant on one endpoint."""
    out_dir = work / f"out-{variant}-{endpoint.strip('/')}"
    shutil.rmtree(out_dir, ignore_errors=True)
    port = free_port()
    env = {
        **os.environ,
        "BENCH_VARIANT": variant,
        "BENCH_OUT": str(out_dir),
        "BENCH_DB": str(work / "bench.db"),
    }
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "--app-dir", str(HERE)]
    cmd += ["bench_collect:app", "--port", str(port), "--http", "httptools"]
    cmd += ["--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env)
    try:
        wait_for(port, proc)
        url = f"http://127.0.0.1:{port}{endpoint}"
        wrk(url, 1)  # warm-up
        try:
            rps = wrk(url, duration)
        except RuntimeError as exc:  # a stall on this shared machine: say so, measure again
            print(f"  retrying {variant} {endpoint}: {str(exc).splitlines()[0]}", file=sys.stderr)
            rps = wrk(url, duration)
    finally:
        proc.send_signal(2)  # SIGINT: graceful, so buffered spans are flushed
        proc.wait(30)
    requests = rps * duration + rps * 1  # roughly, warm-up included
    spans = count_spans(out_dir) if out_dir.exists() else 0
    return rps, spans / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    results = interleaved_rounds(
        lambda variant, endpoint, work: measure(variant, endpoint, work, args.duration),
        VARIANTS,
        ENDPOINTS,
        args.rounds,
    )

    print()
    print_report(results, VARIANTS, ENDPOINTS)


if __name__ == "__main__":
    main()
