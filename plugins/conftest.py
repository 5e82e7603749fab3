"""Fixtures shared by every plugin's tests.

- ``no_leaked_instrumentation`` (autouse): a test must leave no instrumentor switched on,
  no SQLAlchemy engine listener and no global tracer provider behind (as pyinstrument
  asserts ``sys.getprofile() is None``).
- ``spans``: a TracerProvider wired to OTel's InMemorySpanExporter (synchronous export).
- ``stub_url``: a local HTTP server on 127.0.0.1 (free port) answering JSON, for clients.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from latency_ledger_plugin_base import active_instrumentors
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@pytest.fixture(autouse=True)
def no_leaked_instrumentation() -> Iterator[None]:
    before = trace.get_tracer_provider()
    assert active_instrumentors() == (), "instrumentation was left on before this test"
    yield
    assert active_instrumentors() == (), "this test left instrumentation switched on"
    assert trace.get_tracer_provider() is before, "this test replaced the global provider"


@dataclass
class Spans:
    provider: TracerProvider
    exporter: InMemorySpanExporter

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.finished() if span.name == name]


@pytest.fixture
def spans() -> Iterator[Spans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Spans(provider=provider, exporter=exporter)
    provider.shutdown()


class _StubHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        pass


@pytest.fixture(scope="session")
def stub_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
