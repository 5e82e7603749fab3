"""The middleware is transparent: same messages out, same exceptions, for any request.

Driven at the ASGI level (every message the app sends is compared, not just what an HTTP
client would see), over generated requests, streaming, errors, websockets and lifespan.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI, Request, WebSocket
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from latency_ledger.collect import Collector, LedgerMiddleware


def build_app() -> FastAPI:
    app = FastAPI(telemetry={"tracing": False})

    @app.get("/items/{item_id}")
    async def item(item_id: str, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        return Response(
            body, media_type="application/octet-stream", headers={"x-n": str(len(body))}
        )

    @app.get("/headers")
    async def headers(request: Request) -> PlainTextResponse:
        response = PlainTextResponse(request.headers.get("x-probe", "none"), status_code=201)
        response.set_cookie("session", "abc")
        response.headers["x-custom"] = "1"
        return response

    @app.get("/stream")
    async def stream(n: int = 3) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(min(n, 20)):
                await asyncio.sleep(0)
                yield f"chunk-{i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/sync")
    def sync_endpoint(x: int = 0) -> dict[str, int]:
        return {"double": 2 * x}

    @app.get("/error")
    async def error() -> None:
        raise RuntimeError("boom")

    @app.get("/status/{code}")
    async def status(code: int) -> Response:
        return Response(status_code=code if 200 <= code < 600 else 400)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    return app


async def drive_http(app: Any, scope: dict[str, Any], body: bytes) -> tuple[list[Any], str]:
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # a client that stays connected
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    error = ""
    try:
        await app(scope, receive, send)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    return sent, error


def http_scope(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


@pytest.fixture
def apps(make_collector: Callable[..., Any]) -> tuple[Any, Any, Collector, Any]:
    collector, exporter = make_collector(keep_spans="all")
    bare = build_app()
    instrumented = build_app()
    instrumented.add_middleware(LedgerMiddleware, collector=collector)
    return bare, instrumented, collector, exporter


@pytest.fixture
def runner() -> Iterator[asyncio.Runner]:
    with asyncio.Runner() as r:
        yield r


paths = st.one_of(
    st.builds(
        lambda s: f"/items/{s}", st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s)
    ),
    st.sampled_from(["/echo", "/headers", "/stream", "/sync", "/error", "/nope", "/items/"]),
    st.builds(lambda c: f"/status/{c}", st.integers(100, 700)),
)
header_lists = st.lists(
    st.tuples(
        st.sampled_from([b"x-probe", b"traceparent", b"user-agent", b"content-type", b"cookie"]),
        st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    ),
    max_size=4,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS"]),
    path=paths,
    query=st.binary(max_size=30),
    headers=header_lists,
    body=st.binary(max_size=200),
)
def test_same_messages_with_and_without_middleware(
    apps: tuple[Any, Any, Collector, Any],
    runner: asyncio.Runner,
    method: str,
    path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> None:
    bare, instrumented, collector, _ = apps
    scope = http_scope(method, path, query, headers)
    expected = runner.run(drive_http(bare, dict(scope), body))
    got = runner.run(drive_http(instrumented, dict(scope), body))
    assert got == expected
    assert collector.stats.errors == 0


def test_error_response_is_unchanged_and_span_marked_failed(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    bare, instrumented, collector, exporter = apps
    scope = http_scope("GET", "/error", b"", [])
    expected = runner.run(drive_http(bare, dict(scope), b""))
    got = runner.run(drive_http(instrumented, dict(scope), b""))
    assert got == expected
    assert got[1] == "RuntimeError: boom"
    assert got[0][0]["status"] == 500
    collector.flush()
    (server,) = [s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert server.status.status_code == trace.StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == 500
    assert server.attributes["http.route"] == "/error"
    assert server.attributes["ledger.spans_kept"] is True


def test_streaming_response_chunks_pass_through_in_order(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    _, instrumented, _, _ = apps
    sent, error = runner.run(
        drive_http(instrumented, http_scope("GET", "/stream", b"n=5", []), b"")
    )
    assert error == ""
    bodies = [m["body"] for m in sent if m["type"] == "http.response.body"]
    assert b"".join(bodies) == b"".join(f"chunk-{i}\n".encode() for i in range(5))
    assert len(bodies) >= 5


def test_websocket_is_passed_through(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    bare, instrumented, collector, exporter = apps

    async def drive(app: Any) -> list[Any]:
        incoming = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": "hello"},
            {"type": "websocket.receive", "text": "again"},
            {"type": "websocket.disconnect", "code": 1000},
        ]
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {**http_scope("GET", "/ws", b"", []), "type": "websocket", "scheme": "ws"}
        scope.pop("method")
        await app(scope, receive, send)
        return sent

    expected = runner.run(drive(bare))
    assert expected[1:] == [
        {"type": "websocket.send", "text": "HELLO"},
        {"type": "websocket.send", "text": "AGAIN"},
    ]
    assert runner.run(drive(instrumented)) == expected
    collector.flush()
    assert exporter.get_finished_spans() == ()


def test_lifespan_passes_through_and_gives_the_task_factory_back(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    bare, instrumented, _, _ = apps
    state: dict[str, Any] = {}

    async def drive(app: Any) -> list[Any]:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            if len(incoming) == 1:  # between startup and shutdown: the app is serving
                state["factory_while_serving"] = asyncio.get_running_loop().get_task_factory()
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
        state["factory_after"] = asyncio.get_running_loop().get_task_factory()
        return sent

    expected = runner.run(drive(bare))
    assert [m["type"] for m in expected] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert runner.run(drive(instrumented)) == expected
    assert state["factory_while_serving"] is not None
    assert state["factory_after"] is None


def test_collector_failure_never_reaches_the_app(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare, instrumented, collector, exporter = apps

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("collector bug")

    monkeypatch.setattr(collector, "finish", broken)
    scope = http_scope("GET", "/items/7", b"q=x", [])
    assert runner.run(drive_http(instrumented, dict(scope), b"")) == runner.run(
        drive_http(bare, dict(scope), b"")
    )
    monkeypatch.setattr(collector, "begin", broken)
    assert runner.run(drive_http(instrumented, dict(scope), b"")) == runner.run(
        drive_http(bare, dict(scope), b"")
    )
    assert collector.stats.errors == 2
    collector.flush()
    # the span whose bookkeeping failed was still ended and exported
    assert len([s for s in exporter.get_finished_spans() if s.kind == trace.SpanKind.SERVER]) == 1


def test_server_span_carries_route_status_and_ledger(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    _, instrumented, collector, exporter = apps
    runner.run(drive_http(instrumented, http_scope("GET", "/items/42", b"q=secret", []), b""))
    collector.flush()
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes)
    assert span.name == "GET /items/{item_id}"
    assert attrs["http.route"] == "/items/{item_id}"
    assert attrs["url.path"] == "/items/{item_id}"  # the template: a path can hold a token
    assert attrs["http.response.status_code"] == 200
    assert "secret" not in json.dumps(attrs)  # no query string, no headers recorded
    wall = span.end_time - span.start_time
    parts = sum(attrs[f"ledger.{p}_ns"] for p in ("database", "network", "interpreter", "waiting"))
    assert parts == wall
    assert 0 < attrs["ledger.interpreter_ns"] <= attrs["ledger.cpu_ns"] + 1
    assert attrs["ledger.overhead_ns"] > 0


def test_requests_served_in_turn_by_one_task_each_start_at_their_own_start(
    apps: tuple[Any, Any, Collector, Any], runner: asyncio.Runner
) -> None:
    # Expected: a server that serves several requests in one task (keep-alive in a
    # connection task) gets each request's wall from its own start, not the task's.
    _, instrumented, collector, exporter = apps

    async def connection() -> None:
        for _ in range(3):
            await drive_http(instrumented, http_scope("GET", "/items/1", b"", []), b"")
            await asyncio.sleep(0.05)

    runner.run(connection())
    collector.flush()
    spans = exporter.get_finished_spans()
    assert len(spans) == 3
    assert all(span.end_time - span.start_time < 40_000_000 for span in spans)


def test_receive_send_spans_when_asked(
    make_collector: Callable[..., Any], runner: asyncio.Runner
) -> None:
    collector, exporter = make_collector(keep_spans="all", receive_send_spans=True)
    bare, instrumented = build_app(), build_app()
    instrumented.add_middleware(LedgerMiddleware, collector=collector)
    scope = http_scope("POST", "/echo", b"", [])
    assert runner.run(drive_http(instrumented, dict(scope), b"abc")) == runner.run(
        drive_http(bare, dict(scope), b"abc")
    )
    collector.flush()
    events = sorted(
        str(s.attributes["asgi.event.type"])
        for s in exporter.get_finished_spans()
        if s.kind == trace.SpanKind.CLIENT
    )
    assert events == ["http.request", "http.response.body", "http.response.start"]
