"""The collector never records its own export traffic, and always shuts down in time
(issue 13, defect 1: the OTLP exporter's POSTs were recorded by the requests plugin,
each export queued another span, 11,409 self-spans in 12 s after one request, and the
app never exited after SIGINT with the receiver's port closed)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

APPS = Path(__file__).parent / "apps"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Receiver(ThreadingHTTPServer):
    """A loopback OTLP/HTTP receiver: counts the spans posted to /v1/traces."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[tuple[str, int]] = []  # (name, kind)
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.path == "/v1/traces":
            message = ExportTraceServiceRequest.FromString(body)
            with self.server.lock:
                self.server.spans += [
                    (s.name, s.kind)
                    for rs in message.resource_spans
                    for ss in rs.scope_spans
                    for s in ss.spans
                ]
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _start_app(endpoint: str, downstream: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "DOWNSTREAM_URL": downstream,
        "LATENCY_LEDGER_KEEP_SPANS": "all",
        "LATENCY_LEDGER_EXPORT_INTERVAL_S": "0.1",
    }
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(APPS), "outbound_app:app"]
    cmd += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/missing", timeout=1)
            return proc, port
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("the app did not start") from None
            time.sleep(0.1)


def _stop_within(proc: subprocess.Popen[bytes], seconds: float) -> float:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"still running {seconds} s after SIGTERM")
    return time.monotonic() - started


def test_a_live_receiver_gets_the_request_and_nothing_of_our_own(receiver: _Receiver) -> None:
    proc, port = _start_app(receiver.url, f"{receiver.url}/downstream")
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/call", timeout=10)
        assert answer.text == "204"
        # Exports run every 0.1 s: a loop would post hundreds of spans per second.
        time.sleep(2.0)
        with receiver.lock:
            first = list(receiver.spans)
        time.sleep(1.0)
        with receiver.lock:
            later = list(receiver.spans)
    finally:
        took = _stop_within(proc, 5.0)
    names = sorted(name for name, _ in first)
    # The probe (GET /missing), the request and its one outbound call; never a POST.
    assert later == first, "spans kept arriving after the request"
    assert len(first) <= 4, names
    assert any(name.startswith("GET /call") for name in names), names
    assert not any("POST" in name for name in names), names
    assert took < 5.0


def test_a_closed_port_never_holds_up_shutdown(receiver: _Receiver) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    proc, port = _start_app(closed, f"{receiver.url}/downstream")
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/call", timeout=10)
        assert answer.text == "204"
        time.sleep(1.5)  # the exporter is now retrying with backoff
    finally:
        took = _stop_within(proc, 5.0)
    assert took < 5.0
