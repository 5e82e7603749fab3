"""A streaming response whose body outlives the middleware: booked when the body ends.

Contract: :class:`Finisher` holds what booking the request needs (collector, accounting,
OTel context, scope, status, route) and books it exactly once, with the error that ended
the body if any; the collector's own failures are counted, never raised. Each chunk is
produced inside the request's context with its CPU charged to the request (under WSGI
accounting also added to ``loop_ns``, the request's own CPU). :class:`SyncStream` and
:class:`AsyncStream` re-wrap a body chunk for chunk, sync staying sync and async async,
and book on exhaustion, on an exception, or on ``close()`` (what Django's
``response.close`` calls).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from time import thread_time_ns
from typing import Any

from opentelemetry import context as otel_context

from latency_ledger.collect.accounting import CHARGED, CURRENT, PER_THREAD
from latency_ledger.collect.threads import request_cpu_ns


def _charge(acct: Any) -> tuple[Any, int, int]:
    """Charge this thread's CPU to ``acct`` from now; returns what to restore."""
    seg = PER_THREAD.seg
    saved = (seg.acct, seg.t0)
    now = thread_time_ns()
    seg.acct, seg.t0 = acct, now
    return saved[0], saved[1], now


def _uncharge(acct: Any, saved: tuple[Any, int, int]) -> int:
    """Stop charging ``acct``; the outer charge resumes. Returns this thread's CPU spent."""
    seg = PER_THREAD.seg
    now = thread_time_ns()
    charged = seg.acct is acct  # else a nested charge took the thread over meanwhile
    if charged:
        CHARGED.ns += now - seg.t0
        acct.charged_ns += now - seg.t0
    if charged and acct.depth == 0:
        acct.cpu_ns += now - seg.t0
    outer, outer_t0, started = saved
    seg.acct = outer
    seg.t0 = now if outer is not None else outer_t0
    return now - started


class Finisher:
    """Books a request whose streaming body outlived the middleware, exactly once."""

    __slots__ = (
        "acct",
        "collector",
        "context",
        "done",
        "profile",
        "route",
        "scope",
        "status",
        "threaded",
    )

    def __init__(
        self,
        collector: Any,
        acct: Any,
        context: Any,
        scope: dict[str, Any],
        status: int,
        route: str,
        threaded: bool,
    ) -> None:
        self.collector = collector
        self.acct = acct
        self.context = context  # the request's OTel context: spans made while streaming
        self.scope = scope
        self.status = status
        self.route = route
        self.threaded = threaded  # WSGI accounting: own CPU also kept in loop_ns
        self.done = False
        self.profile: str | None = None

    def enter(self) -> tuple[Any, Any, int, tuple[Any, int, int]]:
        acct = self.acct
        token = CURRENT.set(acct)
        otel_token = otel_context.attach(self.context)
        return token, otel_token, acct.cpu_ns, _charge(acct)

    def leave(self, entered: tuple[Any, Any, int, tuple[Any, int, int]]) -> None:
        token, otel_token, charged0, saved = entered
        acct = self.acct
        spent = _uncharge(acct, saved)
        if self.threaded:
            acct.loop_ns += request_cpu_ns(spent, acct.cpu_ns - charged0)
        otel_context.detach(otel_token)
        CURRENT.reset(token)

    def finish(self, error: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.collector.finish(
                self.acct, self.scope, self.status, error, self.profile, route=self.route
            )
        except Exception:
            self.collector.stats.errors += 1
            with contextlib.suppress(Exception):
                self.collector.abandon(self.acct, self.scope)


class SyncStream:
    """A sync streaming body, chunk for chunk, that books its request when done."""

    def __init__(self, content: Iterator[Any], finisher: Finisher) -> None:
        self._content = content
        self._finisher = finisher

    def __iter__(self) -> SyncStream:
        return self

    def __next__(self) -> Any:
        finisher = self._finisher
        if finisher.done:
            return next(self._content)
        entered = finisher.enter()
        ended: BaseException | None = None
        try:
            return next(self._content)
        except BaseException as exc:
            ended = exc
            raise
        finally:
            finisher.leave(entered)
            if ended is not None:
                finisher.finish(None if isinstance(ended, StopIteration) else ended)

    def close(self) -> None:  # the server closes the response: Django calls this
        self._finisher.finish()


class AsyncStream:
    """The same for an async body; ``close`` (sync) is what Django's response.close calls."""

    def __init__(self, content: AsyncIterator[Any], finisher: Finisher) -> None:
        self._content = content
        self._finisher = finisher

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        finisher = self._finisher
        if finisher.done:
            return await self._content.__anext__()
        entered = finisher.enter()
        ended: BaseException | None = None
        try:
            return await self._content.__anext__()
        except BaseException as exc:
            ended = exc
            raise
        finally:
            finisher.leave(entered)
            if ended is not None:
                finisher.finish(None if isinstance(ended, StopAsyncIteration) else ended)

    def close(self) -> None:
        self._finisher.finish()
