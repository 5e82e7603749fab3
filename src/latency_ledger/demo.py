"""``latency-ledger demo``: run an example app, drive load, collect, and write the verdict.

Contract: starts the example's downstream stub and the app itself (instrumented) as child
processes on 127.0.0.1 (the app on ``port``, or a free port; the stub on a free port),
drives a bounded load with a progress bar, stops the app gracefully (so its collector
flushes), then analyzes what it wrote and leaves in ``out_dir``: ``traces/`` (OTLP JSON
lines), ``report.html``, ``report.json``. Prints the terminal summary. Returns the exit
code. The example apps ship inside the package (``latency_ledger/examples`` in the wheel,
``examples/`` in a source checkout); what they import comes with the ``demo`` extra, and
a missing one is a one-line ConfigError naming it, before anything starts.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import click

from latency_ledger.commands import analyze_paths
from latency_ledger.errors import ConfigError, LedgerError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
# One client: each endpoint's own split is what the demo shows, so no request queues
# behind another's CPU (with more, the order pages would wait for checkout's GIL and a
# 2-core machine would mostly measure that queue).
DEMO_CONCURRENCY = 1


# What the example apps, the stub and the load script import, per app: the demo extra.
NEEDS = {
    "fastapi": ("fastapi", "uvicorn", "sqlalchemy", "httpx"),
    "django": ("django", "gunicorn", "requests", "uvicorn", "httpx"),
}


def find_examples() -> Path:
    """The example apps: inside the installed package (the wheel puts the checkout's
    ``examples/`` there), else the source checkout's; env LATENCY_LEDGER_EXAMPLES overrides."""
    given = os.environ.get("LATENCY_LEDGER_EXAMPLES")
    here = Path(__file__).resolve().parent
    candidates = [Path(given)] if given else [here / "examples", here.parents[1] / "examples"]
    for path in candidates:
        if (path / "shop" / "app.py").is_file():
            return path
    raise ConfigError(f"the demo's example apps are not at {candidates[0]}: reinstall the package")


def check_extra(app: str) -> None:
    """A one-line ConfigError naming what the ``demo`` extra would have installed."""
    missing = [name for name in NEEDS[app] if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the {app} demo needs {', '.join(missing)}: pip install 'latency-ledger[demo]'"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-5:]
            raise LedgerError(f"{url}: the server exited early: {' | '.join(tail)}")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise LedgerError(f"{url}: the server did not answer within {START_TIMEOUT_S:.0f} s")


@contextmanager
def _server(
    argv: Sequence[str], *, env: dict[str, str], ready_url: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_ready(ready_url, proc, log)
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT first: uvicorn then runs the lifespan shutdown, where the collector flushes."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _uvicorn(app_dir: Path, target: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), target,
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1", "--no-access-log",
    ]  # fmt: skip


def _load_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot load the example load script")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drive(
    run_load: Callable[..., dict[str, int]], base_url: str, duration_s: float
) -> dict[str, int]:
    with click.progressbar(length=1000, label="driving load", file=sys.stderr) as bar:
        done = [0]

        def on_progress(fraction: float) -> None:
            step = int(fraction * 1000) - done[0]
            if step > 0:
                bar.update(step)
                done[0] += step

        return run_load(
            base_url, duration_s=duration_s, concurrency=DEMO_CONCURRENCY, on_progress=on_progress
        )


def run_demo(*, app: str, duration_s: float, out_dir: Path, port: int | None = None) -> int:
    check_extra(app)
    examples = find_examples()
    out_dir.mkdir(parents=True, exist_ok=True)
    traces = out_dir / "traces"
    shutil.rmtree(traces, ignore_errors=True)
    traces.mkdir()
    app_port, rates_port = port or free_port(), free_port()
    rates_url = f"http://127.0.0.1:{rates_port}"
    base = f"http://127.0.0.1:{app_port}"
    env = dict(os.environ)
    env.update(
        LATENCY_LEDGER="1",
        LATENCY_LEDGER_OUTPUT_DIR=str(traces.resolve()),
        SHOP_DOWNSTREAM_URL=rates_url,
    )
    if app == "django":
        serve = _load_module(examples / "django" / "serve.py", "latency_ledger_demo_django")
        env = serve.environment(
            env,
            traces_dir=traces.resolve(),
            rates_url=rates_url,
            sqlite_path=(out_dir / "django-shop.sqlite3").resolve(),
        )
        env.setdefault("OTEL_SERVICE_NAME", "django-shop")
        subprocess.run(serve.seed_command(), env=env, check=True, capture_output=True)
        app_cmd = serve.server_command(app_port)
    else:
        env.setdefault("OTEL_SERVICE_NAME", "shop")
        env.setdefault("SHOP_DATABASE_URL", f"sqlite:///{(out_dir / 'shop.db').resolve()}")
        app_cmd = _uvicorn(examples, "shop.app:app", app_port)
    click.echo(f"demo: starting the example {app} shop on {base} (logs in {out_dir})", err=True)
    rates_cmd = _uvicorn(examples, "downstream:app", rates_port)
    with (
        _server(rates_cmd, env=env, ready_url=f"{rates_url}/health",
                log=out_dir / "downstream.log"),
        _server(app_cmd, env=env, ready_url=f"{base}/health", log=out_dir / f"{app}.log"),
    ):  # fmt: skip
        load = _load_module(examples / "load.py", "latency_ledger_demo_load")
        counts = _drive(load.run_load, base, duration_s)
    sent = sum(v for k, v in counts.items() if k != "errors")
    click.echo(f"demo: sent {sent} requests ({counts.get('errors', 0)} errors)", err=True)
    return _analyze(traces, out_dir)


def _analyze(traces: Path, out_dir: Path) -> int:
    return analyze_paths(
        [str(traces)],
        json_path=out_dir / "report.json",
        html_path=out_dir / "report.html",
        targets=(),
        progress=False,
        quiet=False,
    )
