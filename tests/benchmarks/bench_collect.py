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

from _realistic import (
    PG_URL,
    SQL_CUSTOMER,
    SQL_LINES,
    SQL_ORDERS,
    SQL_TOUCH,
    OrderPage,
    build_page,
    next_customer,
)
from _wrk import (
    Round,
    count_spans,
    free_port,
    interleaved_rounds,
    measure_server,
    print_report,
    reported_overhead,
)

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "otel", "plugins", "ours_all", "ours_sampled")
ENDPOINTS = ("/hello", "/one", "/api")


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
        pg = create_engine(PG_URL, pool_size=8)
        SQLAlchemyInstrumentor().instrument(engines=[engine, pg], tracer_provider=provider)
        engine_holder["pg"] = pg
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
    if "pg" not in engine_holder:
        engine_holder["pg"] = create_engine(PG_URL, pool_size=8)

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.get("/one")
    def one() -> dict[str, Any]:
        with engine_holder["engine"].connect() as conn:
            row = conn.execute(text("SELECT id, name FROM item WHERE id = :id"), {"id": 7}).one()
        return {"id": row[0], "name": row[1]}

    @app.get("/api")
    def api() -> OrderPage:
        customer_id = next_customer()
        with engine_holder["pg"].begin() as conn:
            customer = conn.execute(text(SQL_CUSTOMER), {"id": customer_id}).one()
            orders = conn.execute(text(SQL_ORDERS), {"id": customer_id}).all()
            lines = conn.execute(text(SQL_LINES), {"orders": [o[0] for o in orders]}).all()
            conn.execute(text(SQL_TOUCH), {"id": customer_id})
        return build_page(customer, orders, lines)

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


def measure(variant: str, endpoint: str, work: Path, duration: float) -> Round:
    """One variant on one endpoint: req/s, spans written per request, the worker's CPU
    per request, and the collector's own reported cost."""
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
    proc = subprocess.Popen(cmd, env=env)  # taskset execs: proc.pid is the worker
    try:
        wait_for(port, proc)
        rps, cpu_us = measure_server(f"http://127.0.0.1:{port}{endpoint}", proc.pid, duration)
    finally:
        proc.send_signal(2)  # SIGINT: graceful, so buffered spans are flushed
        proc.wait(30)
    requests = rps * duration + rps * 1  # roughly, warm-up included
    spans = count_spans(out_dir) if out_dir.exists() else 0
    reported, plugins = reported_overhead(out_dir) if out_dir.exists() else (0.0, {})
    return Round(rps, spans / requests, cpu_us, reported, plugins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--endpoints", default=",".join(ENDPOINTS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    results = interleaved_rounds(
        lambda variant, endpoint, work: measure(variant, endpoint, work, args.duration),
        args.variants.split(","),
        args.endpoints.split(","),
        args.rounds,
    )

    print()
    print_report(results, args.variants.split(","), args.endpoints.split(","))


if __name__ == "__main__":
    main()
