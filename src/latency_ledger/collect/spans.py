"""The SERVER span's pieces, built without the SDK's ``Span`` (see ``Collector.begin``).

Contract: small pure helpers: the span's identity while it is open, its route template
and parent context from the ASGI scope (only ``traceparent``/``tracestate`` are read of
the headers), the exception event ``Span.record_exception`` would add, and the measured
cost of timing one task step.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from time import thread_time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Status, StatusCode

from latency_ledger.collect.accounting import CURRENT
from latency_ledger.collect.scrub import scrub_exception_text


class ServerSpan:
    """The open SERVER span's identity until :meth:`Collector.finish` writes it out."""

    __slots__ = ("context", "parent", "start_time")

    def __init__(self, context: Any, parent: Any, start_time: int) -> None:
        self.context = context
        self.parent = parent
        self.start_time = start_time


SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
SCOPE = InstrumentationScope("latency_ledger.collect")
ERROR_STATUS = Status(StatusCode.ERROR)
UNSET_STATUS = Status(StatusCode.UNSET)


def exception_event(error: BaseException, when_ns: int) -> Event:
    """The event ``Span.record_exception`` would add, built directly, its text scrubbed
    (a database error echoes the statement's bound parameters)."""
    return Event(
        "exception",
        {
            "exception.type": type(error).__qualname__,
            "exception.message": scrub_exception_text(str(error)),
            "exception.stacktrace": scrub_exception_text(
                "".join(traceback.format_exception(type(error), error, error.__traceback__))
            ),
            "exception.escaped": "False",
        },
        timestamp=when_ns,
    )


def route_template(scope: Mapping[str, Any]) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None) if route is not None else None
    if isinstance(path, str) and path:
        root = scope.get("root_path") or ""
        app_root = scope.get("app_root_path") or ""
        mount = root[len(app_root) :] if root.startswith(app_root) else ""
        return f"{mount}{path}"
    return ""


def parent_context(scope: Mapping[str, Any]) -> Any:
    """The caller's span context when it sent ``traceparent`` (no other header is read)."""
    headers = scope.get("headers")
    if not headers:
        return None
    carrier = {}
    for name, value in headers:
        if name == b"traceparent" or name == b"tracestate":
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    if not carrier:
        return None
    from opentelemetry.propagate import extract

    parent = trace.get_current_span(extract(carrier)).get_span_context()
    return parent if parent.is_valid else None


class _Pause:
    """An awaitable that yields once: one task step per ``await``."""

    __slots__ = ()

    def __await__(self) -> Any:
        yield


async def _steps(count: int) -> None:
    pause = _Pause()
    for _ in range(count):
        await pause


def _run_steps(coro: Any) -> int:
    """Step ``coro`` to its end as a task would; the CPU ns it took (this thread's)."""
    send = coro.send
    t0 = thread_time_ns()
    try:
        while True:
            send(None)
    except StopIteration:
        pass
    return thread_time_ns() - t0


def calibrate_step_cost(steps: int = 200, rounds: int = 5) -> int:
    """What timing one task step adds, measured: the same coroutine stepped ``steps``
    times through a :class:`TimedCoroutine` charging a request and bare, the fastest of
    ``rounds`` each (the wrapper's frames, clock reads and bookkeeping, as a step of a
    request runs them; the task's C code calls both alike)."""
    from latency_ledger.collect.accounting import Account, LoopState, TimedCoroutine

    state = LoopState(None)
    token = CURRENT.set(Account(state))
    try:
        timed = min(_run_steps(TimedCoroutine(_steps(steps), state)) for _ in range(rounds))
        bare = min(_run_steps(_steps(steps)) for _ in range(rounds))
    finally:
        CURRENT.reset(token)
    return max(0, timed - bare) // steps
