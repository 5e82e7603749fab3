"""LedgerMiddleware through Django's test clients (sync handler and async handler).

The example shop's views plus a few test views (errors, streaming) in a URLconf built
here; spans are read from the collector's in-memory exporter.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.test import AsyncClient, Client, override_settings
from django.urls import include, path
from opentelemetry import trace
from storefront.models import Product

MIDDLEWARE = [
    "latency_ledger_django.LedgerMiddleware",
    "django.middleware.common.CommonMiddleware",
]


def burn_cpu(ms: float) -> None:
    """Pure-Python work until this thread has run ``ms`` milliseconds of CPU."""
    end = time.thread_time_ns() + int(ms * 1_000_000)
    while time.thread_time_ns() < end:
        pass


def burn(request: HttpRequest) -> HttpResponse:
    burn_cpu(10)
    return HttpResponse("ok")


TOGETHER: list[threading.Barrier] = []


def burn_together(request: HttpRequest) -> HttpResponse:
    """Waits until every test thread is inside the view, then burns: they overlap."""
    TOGETHER[0].wait(timeout=10)
    burn_cpu(10)
    return HttpResponse("ok")


async def aburn(request: HttpRequest) -> HttpResponse:
    await asyncio.sleep(0.005)  # off-CPU with nothing instrumented: unattributed waiting
    burn_cpu(10)
    return HttpResponse("ok")


def hash_password(request: HttpRequest) -> HttpResponse:
    """A bcrypt hash (cost 10), answering the CPU it took on this thread."""
    import bcrypt

    t0 = time.thread_time_ns()
    bcrypt.hashpw(b"correct horse battery staple", bcrypt.gensalt(10))
    return HttpResponse(str(time.thread_time_ns() - t0))


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("the view failed")


def missing(request: HttpRequest) -> HttpResponse:
    raise Http404("nothing here")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    def rows() -> Iterator[str]:
        for p in Product.objects.order_by("id")[:3]:
            yield f"{p.sku}\n"

    return StreamingHttpResponse(rows())


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    async def rows() -> AsyncIterator[bytes]:
        for i in range(3):
            await asyncio.sleep(0)
            yield b"%d\n" % i

    return StreamingHttpResponse(rows())


async def acount(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"products": await Product.objects.acount()})


URLS = types.ModuleType("ledger_test_urls")
URLS.urlpatterns = [  # type: ignore[attr-defined]
    path("t/boom", boom),
    path("t/burn", burn),
    path("t/hash", hash_password),
    path("t/aburn", aburn),
    path("t/burn_together", burn_together),
    path("t/missing", missing),
    path("t/stream", stream),
    path("t/astream", astream),
    path("t/acount", acount),
    path("shop/", include("storefront.urls")),
]


@pytest.fixture
def ledger(make_collector: Callable[..., Any]) -> Iterator[tuple[Any, Any]]:
    collector, exporter = make_collector()
    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
        yield collector, exporter


def _by_kind(spans: list[Any], kind: trace.SpanKind) -> list[Any]:
    return [s for s in spans if s.kind == kind and s.name != "connect"]


def _descends_from(span: Any, root: Any, spans: list[Any]) -> bool:
    by_id = {s.context.span_id: s for s in spans}
    parent = span.parent
    while parent is not None:
        if parent.span_id == root.context.span_id:
            return True
        found = by_id.get(parent.span_id)
        parent = found.parent if found is not None else None
    return False


def test_route_named_span_with_queries_and_template(ledger: Any, exported: Any) -> None:
    collector, exporter = ledger
    from storefront.models import OrderItem

    lines = OrderItem.objects.filter(order_id=7).count()
    response = Client().get("/shop/orders/7")
    assert response.status_code == 200
    spans = exported(collector, exporter)
    (server,) = _by_kind(spans, trace.SpanKind.SERVER)
    attrs = dict(server.attributes or {})
    assert server.name == "GET /shop/orders/<int:order_id>"
    assert attrs["http.route"] == "/shop/orders/<int:order_id>"
    assert attrs["url.path"] == "/shop/orders/<int:order_id>"  # the template, not the raw path
    assert attrs["http.response.status_code"] == 200
    for key in ("cpu_ns", "database_ns", "interpreter_ns", "waiting_ns", "overhead_ns"):
        assert attrs[f"ledger.{key}"] >= 0
    assert attrs["ledger.database_ns"] > 0
    queries = [s for s in _by_kind(spans, trace.SpanKind.CLIENT) if s.name == "SELECT"]
    # the order with its customer, the items, then one product per line: the N+1
    assert len(queries) == 2 + lines
    for query in queries:
        q = dict(query.attributes or {})
        assert q["db.system.name"] == "sqlite"
        assert q["django.db.alias"] == "default"
        assert "%s" in q["db.query.text"]
        assert _descends_from(query, server, spans)
    (render,) = _by_kind(spans, trace.SpanKind.INTERNAL)
    assert render.name == "render storefront/order.html"
    assert render.parent.span_id == server.context.span_id
    in_template = [q for q in queries if q.parent.span_id == render.context.span_id]
    assert len(in_template) == 1 + lines  # the relation walked by the template


def test_async_client_async_view(ledger: Any, exported: Any) -> None:
    collector, exporter = ledger
    response = asyncio.run(AsyncClient().get("/t/acount"))
    assert response.status_code == 200
    spans = exported(collector, exporter)
    (server,) = _by_kind(spans, trace.SpanKind.SERVER)
    assert dict(server.attributes or {})["http.route"] == "/t/acount"
    (count,) = _by_kind(spans, trace.SpanKind.CLIENT)  # async ORM: run in a worker thread
    assert "COUNT" in dict(count.attributes or {})["db.query.text"]
    assert count.parent.span_id == server.context.span_id


def test_async_client_sync_view(ledger: Any, exported: Any) -> None:
    collector, exporter = ledger
    response = asyncio.run(AsyncClient().get("/shop/products/search", {"q": "oak"}))
    assert response.status_code == 200
    spans = exported(collector, exporter)
    (server,) = _by_kind(spans, trace.SpanKind.SERVER)
    assert dict(server.attributes or {})["http.route"] == "/shop/products/search"
    (query,) = _by_kind(spans, trace.SpanKind.CLIENT)
    assert query.parent.span_id == server.context.span_id
    assert "LIKE" in dict(query.attributes or {})["db.query.text"]


def test_unresolved_path_has_no_route(ledger: Any, exported: Any) -> None:
    assert Client().get("/no/such/page/123").status_code == 404
    (server,) = server_spans = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    attrs = dict(server.attributes or {})
    assert "http.route" not in attrs
    assert server.name == "GET"
    assert attrs["http.response.status_code"] == 404
    assert server.status.status_code == trace.StatusCode.UNSET
    assert len(server_spans) == 1


def test_http404_from_view_is_not_an_error(ledger: Any, exported: Any) -> None:
    assert Client().get("/t/missing").status_code == 404
    (server,) = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    assert server.status.status_code == trace.StatusCode.UNSET
    assert not server.events


@pytest.mark.parametrize("asynchronous", [False, True])
def test_view_exception_marks_error(ledger: Any, exported: Any, asynchronous: bool) -> None:
    if asynchronous:
        client: Any = AsyncClient(raise_request_exception=False)
        response = asyncio.run(client.get("/t/boom"))
    else:
        response = Client(raise_request_exception=False).get("/t/boom")
    assert response.status_code == 500
    (server,) = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    assert server.status.status_code == trace.StatusCode.ERROR
    assert dict(server.attributes or {})["http.route"] == "/t/boom"
    (event,) = server.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "RuntimeError"


def test_sync_stream_ends_span_after_body(ledger: Any, exported: Any) -> None:
    collector, exporter = ledger
    response = Client().get("/t/stream")
    assert _by_kind(exported(collector, exporter), trace.SpanKind.SERVER) == []  # still open
    body = b"".join(response.streaming_content)
    response.close()
    assert body == b"SKU-00001\nSKU-00002\nSKU-00003\n"
    spans = exported(collector, exporter)
    (server,) = _by_kind(spans, trace.SpanKind.SERVER)
    (query,) = _by_kind(spans, trace.SpanKind.CLIENT)  # run while the body streamed
    assert query.parent.span_id == server.context.span_id
    assert server.end_time >= query.end_time
    assert dict(server.attributes or {})["http.route"] == "/t/stream"


def test_async_stream_under_async_client(ledger: Any, exported: Any) -> None:
    async def fetch() -> bytes:
        response = await AsyncClient().get("/t/astream")
        chunks = [chunk async for chunk in response.streaming_content]
        return b"".join(chunks)

    assert asyncio.run(fetch()) == b"0\n1\n2\n"
    (server,) = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    assert dict(server.attributes or {})["http.route"] == "/t/astream"


def test_traceparent_is_joined(ledger: Any, exported: Any) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    header = f"00-{trace_id}-00f067aa0ba902b7-01"
    assert Client().get("/shop/health", HTTP_TRACEPARENT=header).status_code == 200
    (server,) = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    assert f"{server.context.trace_id:032x}" == trace_id
    assert f"{server.parent.span_id:016x}" == "00f067aa0ba902b7"


class _FailingExporter:
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Any) -> Any:
        self.calls += 1
        raise OSError("disk full")

    def shutdown(self) -> None:
        raise OSError("still full")


def test_failing_exporter_never_reaches_the_app(make_collector: Callable[..., Any]) -> None:
    failing = _FailingExporter()
    collector, _ = make_collector(exporter=failing)
    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
        client = Client(raise_request_exception=False)
        statuses = [client.get(p).status_code for p in ("/shop/orders/3", "/t/boom", "/nope")]
        collector.flush()
    assert statuses == [200, 500, 404]
    assert failing.calls >= 1
    assert collector.stats.export_errors >= 1
    assert collector.stats.requests == 3


def test_collector_failure_runs_the_app_untouched(
    ledger: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector, _ = ledger

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("collector bug")

    monkeypatch.setattr(collector, "begin", broken)
    response = Client().get("/shop/orders/3")
    assert response.status_code == 200
    assert b"Order 3" in response.content
    assert asyncio.run(AsyncClient().get("/t/acount")).status_code == 200
    assert collector.stats.errors == 2


def test_finish_failure_still_ends_span(
    ledger: Any, exported: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector, exporter = ledger

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("booking bug")

    monkeypatch.setattr(collector, "finish", broken)
    assert Client().get("/shop/health").status_code == 200
    assert len(_by_kind(exported(collector, exporter), trace.SpanKind.SERVER)) == 1
    assert collector.stats.errors == 1


def test_threads_waiting_for_the_gil_book_queueing_not_cpu(ledger: Any, exported: Any) -> None:
    # Expected: 4 requests in 4 threads, all inside the view before any burns 10 ms of
    # CPU, one GIL. Each books its own ~10 ms as CPU (within 15% or 2 ms), never the
    # 40 ms the process spent; the others' CPU meanwhile is queueing. The last to finish
    # was in flight while the other three burned their 30 ms, so it books at least 20 ms
    # of queueing (with the GIL handing over every 5 ms, usually every request does;
    # a busy machine that does not wake the others in time can spare the first).
    threads_n = 4
    TOGETHER[:] = [threading.Barrier(threads_n)]
    statuses: list[int] = []
    around: list[int] = []  # each thread's CPU clock around its whole request

    def one() -> None:
        t0 = time.thread_time_ns()
        statuses.append(Client().get("/t/burn_together").status_code)
        around.append(time.thread_time_ns() - t0)

    threads = [threading.Thread(target=one) for _ in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * threads_n
    servers = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    assert len(servers) == threads_n
    rows = [dict(s.attributes or {}) for s in servers]
    for row in rows:
        # its own CPU: the 10 ms burn (less 15% at most) and Django's work around it, no
        # more than its thread's clock read around the whole request (the test client's
        # work included; four threads handing one lock over cost each ~1-3 ms more here)
        assert row["ledger.cpu_ns"] >= 8_500_000, row
        assert row["ledger.cpu_ns"] <= max(around), (row["ledger.cpu_ns"], around)
        assert row["ledger.interpreter_ns"] == row["ledger.cpu_ns"]
        assert row["ledger.queueing_ns"] <= row["ledger.waiting_ns"], row
    assert max(row["ledger.queueing_ns"] for row in rows) >= 20_000_000, rows


def test_async_view_under_the_sync_handler_counts_its_loop_thread_once(
    ledger: Any, exported: Any
) -> None:
    # Expected: Django runs the async view through async_to_sync (a new event loop in a
    # new thread) while the serving thread waits: the loop thread's 10 ms of burn (plus
    # ~1 ms of loop set-up and teardown) is the request's CPU, once: never more than the
    # whole process spent, and never also "other work" it queued behind, so the 5 ms
    # sleep stays unattributed waiting, not queueing.
    client = Client()
    assert client.get("/t/aburn").status_code == 200  # first-use imports and profiler start
    cpu0 = time.process_time_ns()
    assert client.get("/t/aburn").status_code == 200
    process = time.process_time_ns() - cpu0
    _, server = _by_kind(exported(*ledger), trace.SpanKind.SERVER)
    row = dict(server.attributes or {})
    assert 10_000_000 <= row["ledger.cpu_ns"] <= process, (row, process)
    assert row["ledger.cpu_ns"] <= 13_000_000, row
    assert row["ledger.waiting_ns"] >= 4_000_000, row
    assert row["ledger.queueing_ns"] < 1_000_000, (row, process)


def test_profiled_request_carries_its_summary(
    make_collector: Callable[..., Any], exported: Any
) -> None:
    collector, exporter = make_collector(profile_rate=1.0)
    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
        assert Client().get("/t/burn").status_code == 200
    (server,) = _by_kind(exported(collector, exporter), trace.SpanKind.SERVER)
    profile = json.loads(dict(server.attributes or {})["ledger.profile"])
    assert profile["samples"] > 0
    assert profile["buckets"]["application"] > 0  # burn_cpu, in this test file
    assert any("burn_cpu" in name for name, _ in profile["top"])


def test_a_profiled_bcrypt_view_books_its_hash_as_native(
    make_collector: Callable[..., Any], exported: Any
) -> None:
    # Expected: the view's hash CPU (measured in the view with the thread clock) is in
    # the profile as native CPU, at least 80% of it and never more than the request's
    # CPU (the ledger books the profile's figure as native: tests/test_ledger.py).
    pytest.importorskip("bcrypt")
    collector, exporter = make_collector(profile_rate=1.0)
    settings = {"MIDDLEWARE": MIDDLEWARE, "ROOT_URLCONF": URLS}
    with override_settings(**settings, LATENCY_LEDGER={"collector": collector}):
        response = Client().get("/t/hash")
    assert response.status_code == 200
    hash_cpu = int(response.content)
    (server,) = _by_kind(exported(collector, exporter), trace.SpanKind.SERVER)
    attrs = dict(server.attributes or {})
    profile = json.loads(attrs["ledger.profile"])
    assert 0.8 * hash_cpu <= profile["native"] * 1e9 <= attrs["ledger.cpu_ns"], (profile, hash_cpu)
    assert profile["native_top"][0][0] == "hashpw"


def test_inside_the_asgi_ledger_middleware_one_span_named_by_route(
    ledger: Any, exported: Any
) -> None:
    # Django's ASGI app wrapped in the ASGI LedgerMiddleware as well: the outer one books
    # the request, ours hands it the route; one SERVER span, never two
    from django.core.asgi import get_asgi_application

    from latency_ledger.collect import LedgerMiddleware as AsgiLedgerMiddleware

    collector, exporter = ledger
    app = AsgiLedgerMiddleware(get_asgi_application(), collector=collector)
    sent: list[dict[str, Any]] = []

    async def call() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/shop/orders/2",
            "raw_path": b"/shop/orders/2",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"testserver")],
            "server": ("testserver", 80),
            "client": ("127.0.0.1", 5000),
        }
        messages = [{"type": "http.request", "body": b"", "more_body": False}]

        async def receive() -> dict[str, Any]:
            if messages:
                return messages.pop()
            await asyncio.sleep(3600)  # the client never disconnects during the test
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, send)

    asyncio.run(call())
    assert sent[0]["status"] == 200
    (server,) = _by_kind(exported(collector, exporter), trace.SpanKind.SERVER)
    assert server.name == "GET /shop/orders/<int:order_id>"
    assert dict(server.attributes or {})["http.route"] == "/shop/orders/<int:order_id>"
