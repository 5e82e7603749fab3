"""The SERVER span's pieces, built without the SDK's ``Span`` (see ``Collector.begin``).

Contract: small pure helpers: the span's identity while it is open, its route template
and parent context from the ASGI scope (only ``traceparent``/``tracestate`` are read of
the headers), the exception event ``Span.record_exception`` would add, and the measured
cost of timing one task step.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from operator import itemgetter
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

    __slots__ = ("context", "parent", "parent_id", "start_time", "trace_id")

    def __init__(self, context: Any, parent: Any, start_time: int, trace_id: int) -> None:
        self.context = context
        self.parent = parent
        self.start_time = start_time
        # the ids as ints, for the encoder (SpanContext's are properties)
        self.trace_id = trace_id
        self.parent_id: int | None = parent.span_id if parent is not None else None


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


# id(route object) -> (the route, root_path, app_root_path, its template): route objects
# are the app's and few, and a Starlette route is not hashable (it defines __eq__)
_ROUTES: dict[int, tuple[Any, Any, Any, str]] = {}


def route_template(scope: Mapping[str, Any]) -> str:
    route = scope.get("route")
    if route is None:
        return ""
    root = scope.get("root_path")
    app_root = scope.get("app_root_path")
    cached = _ROUTES.get(id(route))
    if cached is not None and cached[0] is route and cached[1] == root and cached[2] == app_root:
        return cached[3]
    template = ""
    path = getattr(route, "path", None)
    if isinstance(path, str) and path:
        root_text = root or ""
        app_root_text = app_root or ""
        mount = root_text[len(app_root_text) :] if root_text.startswith(app_root_text) else ""
        template = f"{mount}{path}"
    if len(_ROUTES) >= 4096:  # routes made at run time must not grow it forever
        _ROUTES.clear()
    _ROUTES[id(route)] = (route, root, app_root, template)
    return template


_NAME = itemgetter(0)  # an ASGI header's name


def parent_context(scope: Mapping[str, Any]) -> Any:
    """The caller's span context when it sent ``traceparent`` (no other header is read)."""
    headers = scope.get("headers")
    # the names scanned in C: this runs for every request, over every header it sent
    if not headers or b"traceparent" not in map(_NAME, headers):
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


def calibrate_clock_read(reads: int = 200, rounds: int = 5) -> int:
    """What one more read of this thread's CPU clock costs (a step that reads it at its
    start too, see ``steps.BURST_NS``): the fastest of ``rounds`` runs of ``reads``."""
    best = None
    for _ in range(rounds):
        t0 = thread_time_ns()
        for _ in range(reads):
            thread_time_ns()
        spent = (thread_time_ns() - t0) // (reads + 1)
        best = spent if best is None or spent < best else best
    return max(0, best or 0)


def calibrate_step_cost(steps: int = 200, rounds: int = 5) -> int:
    """What timing one task step adds, measured: the same coroutine stepped ``steps``
    times through a :class:`TimedCoroutine` charging a request and bare, the fastest of
    ``rounds`` each (the wrapper's frames, clock reads and bookkeeping, as a step of a
    request runs them; the task's C code calls both alike). Back to back, the steps are
    a burst: one clock read each (a step that reads at its start too costs
    :func:`calibrate_clock_read` more). A seed only: the server's steps are measured
    (``steps.STEPS``), the clock reads of those that read at their start included."""
    from latency_ledger.collect.accounting import Account, LoopState
    from latency_ledger.collect.steps import TimedCoroutine

    state = LoopState(None)
    token = CURRENT.set(Account(state))
    try:
        timed = min(_run_steps(TimedCoroutine(_steps(steps), state)) for _ in range(rounds))
        bare = min(_run_steps(_steps(steps)) for _ in range(rounds))
    finally:
        CURRENT.reset(token)
    return max(0, timed - bare) // steps
