"""What in-app collection costs a Django app, side by side in one run.

Run:  uv run --no-sync python tests/benchmarks/bench_django.py          (~3 min)
      uv run --no-sync python tests/benchmarks/bench_django.py --duration 5 --rounds 3
      uv run --no-sync python tests/benchmarks/bench_django.py --server uvicorn

Needs wrk (``apt-get install -y wrk``) and opentelemetry-instrumentation-django. Each
variant of the same Django project is served by gunicorn (one ``gthread`` worker, 4
threads: Django's usual WSGI deployment) or uvicorn (ASGI), pinned to CPU 0, and loaded
by ``wrk -t1 -c16`` pinned to CPU 1, on two sync views: ``/hello`` and ``/one`` (one ORM
query on SQLite, persistent connection). Variants:

- ``bare``:   no middleware at all;
- ``otel``:   plain OpenTelemetry: opentelemetry-instrumentation-django (its middleware)
  plus opentelemetry-instrumentation-dbapi on Django's sqlite3 driver, SDK,
  BatchSpanProcessor, OTLP JSON file exporter (opentelemetry-exporter-otlp-json-file);
- ``ours_all``: ``latency_ledger_django.LedgerMiddleware``, every span kept;
- ``ours_sampled``: the same with the default ``keep_spans="sampled"``.

Per request overhead (us) = 1e6 / rps(variant) - 1e6 / rps(bare): the server is bound
to one core, so 1 / rps is its time per request. Rounds interleave the variants and the
table shows medians. Spans written per request is a sanity check that each variant
really records. Targets (issue 4, applied by issue 5): every span kept costs at most
half of plain OpenTelemetry's overhead; the default setting loses at most 10% of the
one-query endpoint's throughput.

This file is also the app: ``bench_django:application`` (WSGI) and
``bench_django:asgi_application`` build the variant named by ``BENCH_VARIANT``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from _wrk import count_spans, free_port, interleaved_rounds, print_report, wrk

HERE = Path(__file__).resolve().parent
VARIANTS = ("bare", "otel", "ours_all", "ours_sampled")
ENDPOINTS = ("/hello", "/one")


# -- the app ------------------------------------------------------------------------


def configure(variant: str, out_dir: Path, db_path: Path) -> None:
    from django.conf import settings
    from django.urls import path

    middleware: list[str] = []
    ledger: dict[str, Any] = {}
    if variant.startswith("ours"):
        middleware = ["latency_ledger_django.LedgerMiddleware"]
        ledger = {
            "output_dir": out_dir,
            "keep_spans": "all" if variant == "ours_all" else "sampled",
        }

    def hello(request: Any) -> Any:
        from django.http import JsonResponse

        return JsonResponse({"hello": "world"})

    def one(request: Any) -> Any:
        from django.db import connection
        from django.http import JsonResponse

        with connection.cursor() as cursor:
            cursor.execute("SELECT id, name FROM item WHERE id = %s", [7])
            row = cursor.fetchone()
        return JsonResponse({"id": row[0], "name": row[1]})

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench",
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=middleware,
        INSTALLED_APPS=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(db_path),
                "CONN_MAX_AGE": None,
            }
        },
        LATENCY_LEDGER=ledger,
        LOGGING_CONFIG=None,
    )
    global urlpatterns
    urlpatterns = [path("hello", hello), path("one", one)]

    if variant == "otel":
        import sqlite3

        from opentelemetry.exporter.otlp.json.file import FileSpanExporter
        from opentelemetry.instrumentation.dbapi import wrap_connect
        from opentelemetry.instrumentation.django import DjangoInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
        out_dir.mkdir(parents=True, exist_ok=True)
        exporter = FileSpanExporter(out_dir / f"otel-{os.getpid()}.jsonl")
        provider.add_span_processor(BatchSpanProcessor(exporter))
        DjangoInstrumentor().instrument(tracer_provider=provider)
        # Django's SQLite backend connects through sqlite3.dbapi2.connect
        wrap_connect(__name__, sqlite3.dbapi2, "connect", "sqlite", tracer_provider=provider)


urlpatterns: list[Any] = []
if os.environ.get("BENCH_VARIANT"):
    configure(
        os.environ["BENCH_VARIANT"], Path(os.environ["BENCH_OUT"]), Path(os.environ["BENCH_DB"])
    )
    from django.core.asgi import get_asgi_application
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    asgi_application = get_asgi_application()


# -- the driver ---------------------------------------------------------------------


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until ``url`` answers: the first request also starts our collector (seconds)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def server_command(server: str, port: int) -> list[str]:
    cmd = ["taskset", "-c", "0", sys.executable, "-m"]
    if server == "gunicorn":
        cmd += ["gunicorn", "--chdir", str(HERE), "bench_django:application"]
        cmd += ["-b", f"127.0.0.1:{port}", "-w", "1", "-k", "gthread", "--threads", "4"]
        return [*cmd, "--log-level", "warning"]
    cmd += ["uvicorn", "--app-dir", str(HERE), "bench_django:asgi_application"]
    cmd += ["--port", str(port), "--http", "httptools", "--lifespan", "off"]
    return [*cmd, "--log-level", "warning", "--no-access-log"]


def measure(
    server: str, variant: str, endpoint: str, work: Path, duration: float
) -> tuple[float, float]:
    """(requests/s, spans written per request) for one variant on one endpoint."""
    out_dir = work / f"out-{server}-{variant}-{endpoint.strip('/')}"
    shutil.rmtree(out_dir, ignore_errors=True)
    port = free_port()
    env = {
        **os.environ,
        "BENCH_VARIANT": variant,
        "BENCH_OUT": str(out_dir),
        "BENCH_DB": str(work / "bench.db"),
    }
    proc = subprocess.Popen(server_command(server, port), env=env)
    requests = 0.0
    try:
        url = f"http://127.0.0.1:{port}{endpoint}"
        wait_ready(url, proc)
        requests += 1 + wrk(url, 1)  # warm-up
        rps = wrk(url, duration)
        requests += rps * duration
    finally:
        # SIGTERM for gunicorn, SIGINT for uvicorn: graceful, so buffered spans are flushed
        proc.send_signal(15 if server == "gunicorn" else 2)
        proc.wait(30)
    spans = count_spans(out_dir) if out_dir.exists() else 0
    return rps, spans / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--server", choices=("gunicorn", "uvicorn"), default="gunicorn")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    results = interleaved_rounds(
        lambda variant, endpoint, work: measure(
            args.server, variant, endpoint, work, args.duration
        ),
        VARIANTS,
        ENDPOINTS,
        args.rounds,
    )

    print(
        f"\nDjango under {args.server}, wrk -t1 -c16 -d{args.duration}s, {args.rounds} round(s)\n"
    )
    print_report(results, VARIANTS, ENDPOINTS)


if __name__ == "__main__":
    main()
