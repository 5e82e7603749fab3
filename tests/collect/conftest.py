"""Shared fixtures for the collector tests: a leak check and real servers in threads."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx
import pytest
import uvicorn
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import latency_ledger.collect as collect
from latency_ledger.collect import CollectConfig, Collector

PG_DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres"


@functools.cache
def postgres_up() -> bool:
    import psycopg

    try:
        psycopg.connect(PG_DSN, connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``postgres`` is skipped when the server is not reachable (asked once)."""
    if item.get_closest_marker("postgres") is not None and not postgres_up():
        pytest.skip("PostgreSQL on 127.0.0.1:5432 not reachable")


def _snapshot() -> dict[str, Any]:
    return {
        "submit": concurrent.futures.ThreadPoolExecutor.__dict__["submit"],
        "run_sync": anyio.to_thread.run_sync,
        "tracer_provider": trace._TRACER_PROVIDER,
        "profile": sys.getprofile(),
        "default_collector": collect._Default.collector,
    }


@pytest.fixture(autouse=True)
def _nothing_leaks() -> Iterator[None]:
    """No task factory, tracer provider, patch, profiler or collector outlives a test."""
    before = _snapshot()
    yield
    assert _snapshot() == before


@pytest.fixture
def make_collector() -> Iterator[Callable[..., tuple[Collector, InMemorySpanExporter]]]:
    made: list[Collector] = []

    def make(**overrides: Any) -> tuple[Collector, InMemorySpanExporter]:
        load_plugins = overrides.pop("load_plugins", False)
        exporter = overrides.pop("exporter", None) or InMemorySpanExporter()
        config = CollectConfig(set_global_provider=False, **overrides)
        collector = Collector(config, exporter=exporter, load_plugins=load_plugins)
        made.append(collector)
        return collector, exporter

    yield make
    for collector in made:
        collector.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving ``app`` on a free local port from a thread (real sockets, real loop)."""

    def __init__(self, app: Any, *, loop: str = "asyncio") -> None:
        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            loop=loop,
            log_level="warning",
            lifespan="on",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def serve() -> Callable[..., ServerThread]:
    return ServerThread


APPS = Path(__file__).parent / "apps"


class AppProcess:
    """``uvicorn <target>`` from tests/collect/apps in a subprocess; SIGINT stops it cleanly."""

    def __init__(self, target: str, *, env: dict[str, str] | None = None, loop: str = "asyncio"):
        self.port = free_port()
        self.target = target
        self.env = {**os.environ, **(env or {})}
        self.loop = loop
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppProcess:
        cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(APPS), self.target]
        cmd += ["--port", str(self.port), "--loop", self.loop, "--log-level", "warning"]
        cmd += ["--no-access-log", "--lifespan", "on"]
        self.proc = subprocess.Popen(cmd, env=self.env)
        # start-up is not what these tests time: a loaded machine imports slowly
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.proc.kill()
                    raise RuntimeError(f"{self.target} did not start") from None
                time.sleep(0.05)

    def interleave(self, endpoints: list[str], rounds: int) -> dict[str, list[Any]]:
        """Each of ``endpoints`` ("METHOD /path") in turn, ``rounds`` times, one client;
        every answer must be 200. Returns each endpoint's JSON bodies, in order."""
        bodies: dict[str, list[Any]] = {endpoint: [] for endpoint in endpoints}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for _ in range(rounds):
                for endpoint in endpoints:
                    method, path = endpoint.split(" ")
                    response = client.request(method, path)
                    assert response.status_code == 200, (endpoint, response.text[:200])
                    bodies[endpoint].append(response.json())
        return bodies

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="session")
def app_process() -> type[AppProcess]:
    return AppProcess


@pytest.fixture(scope="session")
def jsonl_server_attributes() -> Callable[[Path], list[dict[str, Any]]]:
    return read_jsonl_server_attributes


def server_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]


def read_jsonl_server_attributes(directory: Path) -> list[dict[str, Any]]:
    """The attributes of every SERVER span in OTLP JSON lines files (our own reading)."""
    out = []
    for path in sorted(directory.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            for rs in json.loads(line)["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        if span["kind"] != 2:
                            continue
                        attrs: dict[str, Any] = {
                            "_name": span["name"],
                            "_start": int(span["startTimeUnixNano"]),
                        }
                        for kv in span.get("attributes", []):
                            ((kind, value),) = kv["value"].items()
                            attrs[kv["key"]] = int(value) if kind == "intValue" else value
                        out.append(attrs)
    return out
