"""``LedgerMiddleware``: pure ASGI, one SERVER span per HTTP request with its ledger on it.

Contract: HTTP requests get a SERVER span whose ``ledger.*`` attributes carry the
request's own CPU, queueing and booked ledger (see ``collector.py``); websocket and other
scopes pass straight through; lifespan messages pass through unchanged, with the task
factory installed at startup and buffered spans flushed at shutdown. Messages are never
altered, replaced or reordered, headers and bodies are never recorded, and the collector's
own failures are counted, never raised: if bookkeeping fails the app still runs as if the
middleware were not there. Context variables and spans are reset and ended in ``finally``.

Not built on ``opentelemetry-instrumentation-asgi``: its middleware alone costs ~200-250 us
per request here (MEASURED.md), already the whole budget for "every span recorded". The
attributes follow the same semantic conventions (``http.request.method``, ``url.path``,
``http.route``, ``http.response.status_code``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from functools import partial
from time import thread_time_ns
from typing import Any

from opentelemetry.trace import SpanKind

from latency_ledger.collect.accounting import CURRENT, PER_THREAD, begin_segment, end_segment
from latency_ledger.collect.config import CollectConfig
from latency_ledger.collect.steps import TimedCoroutine, request_start

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class LedgerMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        config: CollectConfig | None = None,
        collector: Any = None,
        app_title: str | None = None,
    ) -> None:
        self.app = app
        self._config = config
        self._collector = collector
        self._app_title = app_title

    def _get_collector(self) -> Any:
        collector = self._collector
        if collector is None or collector.closed:
            from latency_ledger.collect import default_collector

            collector = self._collector = default_collector(self._config, self._app_title)
        return collector

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            collector = self._get_collector()
            collector.hooks.ensure_loop(asyncio.get_running_loop())
        except Exception:
            collector = None

        async def lifespan_send(message: Message) -> None:
            if collector is not None and message.get("type") == "lifespan.shutdown.complete":
                try:
                    collector.sink.flush()  # bounded: the server is exiting
                    collector.hooks.release_loop(asyncio.get_running_loop())
                except Exception:
                    collector.stats.errors += 1
            await send(message)

        await self.app(scope, receive, lifespan_send if collector is not None else send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or CURRENT.get() is not None:  # not HTTP, or nested
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # The HTTP path is written out here rather than in a helper coroutine: every
        # resumption of the request would pass through one more frame.
        try:
            collector = self._collector
            if collector is None or collector.closed:
                collector = self._get_collector()
            # our CPU around the app is the collector's cost: 1 in N requests measured
            # (selfcost.py), from here to begin_segment and from end_segment to the end
            meter = collector.request_meter
            sampled = meter.due()
            c0 = thread_time_ns() if sampled else 0
            loop_state = collector.hooks.ensure_loop(asyncio.get_running_loop())
            timed, start_ns, busy_start = request_start()
            wrapped = timed is not None
            acct, token = collector.begin(scope, loop_state, start_ns, busy_start)
        except Exception:
            # the collector could not start: run the app untouched
            with contextlib.suppress(Exception):
                self._collector.stats.errors += 1
            await self.app(scope, receive, send)
            return

        profiler = None
        if collector.profiler.enabled:
            try:
                p0 = thread_time_ns()
                profiler = collector.profiler.start(scope.get("path", ""), start_ns)
                if profiler is not None:
                    acct.thread_wrapper = collector.profiler.follow(
                        profiler, partial(_count_error, collector)
                    )
                    # a profiled request (rare) is charged its profile's start and stop
                    # exactly, out of the meter's typical request
                    acct.overhead_ns += thread_time_ns() - p0
                    sampled = False
            except Exception:
                collector.stats.errors += 1

        status: list[int] = []

        def forward(message: Message) -> Awaitable[None]:
            # a plain function handing back send's awaitable, which the app awaits: no
            # coroutine of ours (its object and frame) per message
            if message["type"] == "http.response.start":
                status.append(message["status"])
            return send(message)

        ledger_send: Send = forward
        if collector.config.receive_send_spans:
            receive, ledger_send = _io_spans(collector.tracer, receive, forward)

        error: BaseException | None = None
        begin_segment(acct)
        c1 = PER_THREAD.seg.t0  # the thread clock begin_segment read
        try:
            if wrapped:
                await self.app(scope, receive, ledger_send)
            else:
                await TimedCoroutine(self.app(scope, receive, ledger_send), loop_state)  # type: ignore[arg-type]
        except BaseException as exc:
            error = exc
            raise
        finally:
            end_segment()
            c2 = PER_THREAD.seg.t0  # the thread clock end_segment read
            if wrapped:  # the step it ends in is its task's: ending after the segment, uncounted
                acct.steps += 1
            summary = collector.stop_profile(acct, profiler) if profiler is not None else None
            try:
                collector.finish(acct, scope, status[0] if status else None, error, summary)
            except Exception:
                collector.stats.errors += 1
                with contextlib.suppress(Exception):
                    collector.abandon(acct, scope)
            finally:
                if acct.otel_token is not None:  # finish detaches; this is for when it failed
                    try:
                        collector.detach(acct)
                    except Exception:
                        collector.stats.errors += 1
                CURRENT.reset(token)
                if wrapped:  # counted as a step of no request when it ends: charged above
                    loop_state.free_steps -= 1
                if sampled:
                    meter.record(c1 - c0 + thread_time_ns() - c2)


def _count_error(collector: Any) -> None:
    collector.stats.errors += 1


def _io_spans(tracer: Any, receive: Receive, send: Send) -> tuple[Receive, Send]:
    """receive/send wrapped in spans (``asgi.event.type``: the ledger books them as the
    request waiting on its own client, category network). Only the message type is
    recorded, never a body or a header."""

    async def traced_receive() -> Message:
        span = tracer.start_span("http receive", kind=SpanKind.CLIENT)
        try:
            message = await receive()
            span.set_attribute("asgi.event.type", str(message.get("type", "")))
            return message
        finally:
            span.end()

    async def traced_send(message: Message) -> None:
        span = tracer.start_span(
            "http send",
            kind=SpanKind.CLIENT,
            attributes={"asgi.event.type": str(message.get("type", ""))},
        )
        try:
            await send(message)
        finally:
            span.end()

    return traced_receive, traced_send
