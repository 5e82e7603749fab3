"""Light child spans: what a request's DB and client calls record before we know it is kept.

Contract: :class:`LightTracerProvider` wraps the SDK ``TracerProvider`` the collector uses
and is what the plugins' instrumentations get. A span started through it inside a request
whose account allows it (``RequestRecord.light``: no span processor but ours on the
provider, the SERVER span is ours) is a :class:`LightSpan`: a plain object that keeps the
name, kind, times, attributes, status and events, pauses the request's CPU clock while it
is a wait (CLIENT/PRODUCER), and on ``end`` joins its request's list. Anywhere else (no
request, an SDK span current, an explicit foreign parent, after shutdown) the SDK tracer
is used, unchanged.

At the request's end the collector books its ledger straight from those spans and only
for a kept request turns them into ``ReadableSpan`` objects (``light_booking.py``).

Why: the SDK's span path (sampler, locked attribute maps, every processor's
``on_start``/``on_end``, a ``ReadableSpan`` copy at ``end``) is most of what a recorded
DB call costs, and in the default sampled mode almost every request's spans are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from time import thread_time_ns, time_ns
from typing import Any

from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY as _SUPPRESS_KEY
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

from latency_ledger.collect.accounting import CURRENT, PER_THREAD
from latency_ledger.collect.light_booking import materialize
from latency_ledger.collect.selfcost import Meter
from latency_ledger.collect.spans import SAMPLED, UNSET_STATUS
from latency_ledger.collect.tails import run_delay_ns, span_key, wait_begins, wait_ends

_CLIENT = SpanKind.CLIENT
_PRODUCER = SpanKind.PRODUCER
# the keys ``is_instrumentation_enabled`` and ``get_current_span`` read
_SUPPRESS_KEY_PLAIN = "suppress_instrumentation"


def _context_var() -> ContextVar[Context] | None:
    """The ``ContextVar`` OpenTelemetry's runtime context keeps the current context in,
    when it is the default contextvars one (else None: use ``opentelemetry.context``).
    Read, set and reset directly, it is a C call where the API's ``get_current``,
    ``attach`` and ``detach`` are two or three Python calls each, per statement and per
    request."""
    from opentelemetry import context as otel_context

    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if type(runtime).__name__ == "ContextVarsRuntimeContext" and isinstance(var, ContextVar):
        return var
    return None


CONTEXT_VAR = _context_var()


def _context_getter() -> Callable[[], Context]:
    """``opentelemetry.context.get_current``, or the ``ContextVar.get`` it ends in."""
    if CONTEXT_VAR is not None:
        return CONTEXT_VAR.get
    from opentelemetry import context as otel_context

    return otel_context.get_current


current_context = _context_getter()
_ERROR = StatusCode.ERROR


class LightSpan(trace.Span):
    """One child span of a request, recorded without the SDK (see the module docstring).

    Attributes are kept as given and passed once, at ``end``, through the tracer's
    ``attribute_filter`` (a plugin's sanitizer, see ``SanitizingTracer``): nothing reads
    them before, and nothing but the request's own booking while it is in flight.
    """

    filters_attributes = True

    __slots__ = (
        "_context",
        "acct",
        "attributes",
        "bound_ns",
        "cost_ns",
        "delay_ns",
        "end_time",
        "events",
        "kind",
        "name",
        "parent",
        "shared",
        "start_time",
        "started",
        "status",
        "tail_ns",
        "timed",
        "tracer",
        "wait",
    )

    def __init__(
        self,
        tracer: LightTracer,
        acct: Any,
        parent: LightSpan | None,
        name: str,
        kind: SpanKind,
        attributes: types.Attributes,
        start_time: int | None,
        shared: dict[str, Any] | None = None,
        timed: bool = False,
    ) -> None:
        # recording the span is the collector's cost (overhead_ns), the plugin's share of
        # it: measured here (1 in N spans, selfcost.py) unless the plugin's wrapper
        # measures itself, span included (``timed``)
        c0 = -1 if timed or not tracer.span_meter.due() else thread_time_ns()
        self.tracer = tracer
        self.acct = acct
        self.parent = parent  # None: the request's SERVER span
        self.name = name
        self.kind = kind
        self.end_time: int | None = None
        # ``shared``: already sanitized and shared between spans (a plugin's per-statement
        # cache), adopted as is and copied only if someone writes to it
        self.shared = shared is not None
        self.attributes: dict[str, Any] = shared if shared is not None else {}
        if attributes:
            self.set_attributes(attributes)
        self.status = UNSET_STATUS
        self.events: list[Event] | tuple[()] = ()  # a list once an event is added
        self._context: SpanContext | None = None
        # (identity, not ``in`` a set: hashing an Enum member runs Python code)
        self.wait = wait = kind is _CLIENT or kind is _PRODUCER
        # a wait's run delay is read next to its start time (wait_ended_at says why)
        delay0 = run_delay_ns() if wait else -1
        self.start_time = start_time or time_ns()
        self.tail_ns = self.delay_ns = 0
        self.bound_ns = -1  # not measured (until a wait's end measures it)
        self.timed = timed
        if wait:
            # first: reading the clocks below is not the request's CPU; its reading of
            # this thread's CPU clock serves the tail's clocks too
            self.started = wait_begins(acct, delay0)
        self.cost_ns = -1 if c0 < 0 else thread_time_ns() - c0

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is None:
            server = self.acct.server.context
            context = self._context = SpanContext(
                trace_id=server.trace_id,
                span_id=self.tracer.id_generator.generate_span_id(),
                is_remote=False,
                trace_flags=SAMPLED,
                trace_state=server.trace_state,
            )
        return context

    def end(self, end_time: int | None = None) -> None:
        if self.end_time is not None:
            return
        if self.timed:  # the plugin's wrapper times this too
            self.end_time = end_time or time_ns()
            self._end(
                self.acct,
                end_time is None,
                run_delay_ns() if self.wait and end_time is None else -1,
            )
            return
        cost = self.cost_ns
        c0 = thread_time_ns() if cost >= 0 else -1
        now = end_time is None  # else the caller timed it: nothing of ours to measure
        self.end_time = end_time or time_ns()
        # a wait's run delay is read next to its end time (tails.wait_ended_at says why)
        delay1 = run_delay_ns() if self.wait and now else -1
        acct = self.acct
        try:
            self._end(acct, now, delay1)
        finally:
            tracer = self.tracer
            meter = tracer.span_meter
            if c0 >= 0:
                meter.record(cost + thread_time_ns() - c0)
            tracer.charge_to(acct, meter.mean_ns)

    def _end(self, acct: Any, now: bool, delay_ns: int) -> None:
        try:
            attribute_filter = self.tracer.attribute_filter
            if attribute_filter is not None and self.attributes and not self.shared:
                self.attributes = attribute_filter(self.attributes)
            if acct.finished:  # outlived its request: written only if the request was kept
                if acct.kept:
                    self.tracer.collector.sink.put(
                        materialize((self,), acct, self.tracer.collector)
                    )
                return
            if self.wait:
                length = self.end_time - self.start_time  # type: ignore[operator]
                # the request's CPU resumes; measured (its times are ours): how much of
                # its end was waiting for the loop or the lock (tails.py), and a span
                # with no contention teaches the typical time
                clocks = wait_ends(acct, length if now else 0, self.started, delay_ns)
                if clocks is not None:
                    self.tail_ns, self.delay_ns, self.bound_ns = (
                        self.tracer.collector.typical_io.tail(
                            span_key(self.name, self.attributes), length, clocks[0], clocks[1]
                        )
                    )
            lights = acct.lights
            if len(lights) + len(acct.children) < acct.max_children:
                lights.append(self)
            else:
                self.tracer.collector.stats.dropped_spans += 1
        except Exception:  # never into the app
            self.tracer.collector.stats.errors += 1

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self.end_time is not None:
            return
        if self.shared:
            self.attributes = dict(self.attributes)
            self.shared = False
        store = self.attributes
        for key, value in attributes.items():
            if value is not None:  # the SDK drops None values
                store[key] = tuple(value) if type(value) is list else value

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if value is None or self.end_time is not None:
            return  # the SDK drops None values and writes to ended spans
        if self.shared:
            self.attributes = dict(self.attributes)
            self.shared = False
        self.attributes[key] = tuple(value) if type(value) is list else value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self.end_time is None:
            self._add_event(Event(name, attributes, timestamp or time_ns()))

    def _add_event(self, event: Event) -> None:
        events = self.events
        if type(events) is tuple:
            events = self.events = []
        events.append(event)  # type: ignore[union-attr]

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        return None  # links are not recorded on light spans (no instrumentation we load adds them)

    def update_name(self, name: str) -> None:
        if self.end_time is None:
            self.name = name

    def is_recording(self) -> bool:
        return self.end_time is None

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self.end_time is not None:
            return
        if isinstance(status, Status):
            self.status = status
        else:
            self.status = Status(status, description if status is _ERROR else None)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        from latency_ledger.collect.spans import exception_event

        event = exception_event(exception, timestamp or time_ns())
        if attributes:
            event = Event(event.name, {**(event.attributes or {}), **attributes}, event.timestamp)
        if self.end_time is None:
            self._add_event(event)


class LightTracer(trace.Tracer):
    """The SDK tracer's stand-in: light spans inside light requests, SDK spans elsewhere."""

    def __init__(self, tracer: Any, collector: Any, plugin: str = "") -> None:
        self._tracer = tracer
        self.collector = collector
        # whose cost the spans recorded here are (a plugin's name; "" for none)
        self.plugin = plugin
        # what recording one span costs, init and end (when no wrapper measures it)
        self.span_meter = Meter(stretches=2)
        # set by a wrapping plugin tracer; applied to a light span's attributes at end
        self.attribute_filter: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
        self.scope = getattr(tracer, "_instrumentation_scope", None)
        self.id_generator = collector.provider.id_generator

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        found = None if links else self._light_request(context)
        if found is not None:
            return LightSpan(self, found[0], found[1], name, kind, attributes, start_time)
        return self._tracer.start_span(  # type: ignore[no-any-return]
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )

    @staticmethod
    def new_meter(stretches: int = 2) -> Meter:
        """A meter for a plugin wrapper's own work around one call (selfcost.py), whose
        mean the wrapper charges (:meth:`charge`) for every call."""
        return Meter(stretches=stretches)

    def charge(self, ns: int) -> None:
        """A plugin's wrapper spent ``ns`` of CPU around the app's call: the
        collector's cost, charged to the request running here and to the plugin
        (:meth:`charge_to`)."""
        acct: Any = CURRENT.get() or PER_THREAD.seg.acct
        if acct is not None:
            self.charge_to(acct, ns)

    def charge_to(self, acct: Any, ns: int) -> None:
        """``ns`` of the collector's cost to ``acct``, and to this tracer's plugin."""
        acct.overhead_ns += ns
        plugin = self.plugin
        if plugin:
            costs = getattr(acct, "plugin_ns", None)
            if costs is None:
                try:
                    costs = acct.plugin_ns = {}
                except AttributeError:  # an Account without it (not a request's record)
                    return
            costs[plugin] = costs.get(plugin, 0) + ns

    def _light_request(self, context: Context | None = None) -> tuple[Any, LightSpan | None] | None:
        """(the request, the light parent or None for its SERVER span) when the next span
        here may be light: inside a light request, under its SERVER span or one of its
        light spans; else None (the SDK's way)."""
        acct: Any = CURRENT.get() or PER_THREAD.seg.acct
        if acct is None or not getattr(acct, "light", False) or acct.finished:
            return None
        try:
            # trace.get_current_span(context), read straight from the context (a dict):
            # its four Python calls and an ABC isinstance ran for every statement
            current: Any = (context if context is not None else current_context()).get(_SPAN_KEY)
            if current is None:
                return None
            if type(current) is not LightSpan:  # a plugin's sanitizing wrapper around one?
                current = getattr(current, "_span", current)
            if type(current) is LightSpan:
                return (acct, current) if current.acct is acct else None
            # the request's own context span (most statements) by identity: no calls
            if current is acct.context_span or current.get_span_context().span_id == acct.server_id:
                return acct, None
        except Exception:  # odd attributes, a foreign context: the SDK's way, not ours
            self.collector.stats.errors += 1
        return None

    def start_clean_span(
        self, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> trace.Span | None:
        """``start_span`` for a plugin's hot path: ``attributes`` are already sanitized and
        shared between spans (never written to here), so no per-span copy or filter; None
        when instrumentation is suppressed here (``is_instrumentation_enabled()`` False:
        the caller runs its call untraced), asked here to read the context once."""
        context = current_context()
        if context.get(_SUPPRESS_KEY) or context.get(_SUPPRESS_KEY_PLAIN):
            return None
        found = self._light_request(context)
        if found is not None:
            return LightSpan(self, found[0], found[1], name, kind, None, None, attributes, True)
        return self._tracer.start_span(name, None, kind, attributes)  # type: ignore[no-any-return]

    def record_wait(
        self,
        name: str,
        attributes: dict[str, Any],
        start_ns: int,
        end_ns: int,
        cpu_ns: int,
        error: BaseException | None = None,
    ) -> bool:
        """A light CLIENT span for a wait that already happened (a slow pool checkout,
        timed by the plugin without a span because most are too short to matter), with
        ``cpu_ns``, the CPU this thread spent inside it, taken back out of the request's
        CPU. False when the span may not be light here: the caller records an SDK span."""
        found = self._light_request()
        if found is None:
            return False
        acct, parent = found
        try:
            charged = acct.depth == 0 and PER_THREAD.seg.acct is acct
            span = LightSpan(
                self, acct, parent, name, SpanKind.CLIENT, None, start_ns, attributes, True
            )
            if error is not None:
                span.record_exception(error)
                span.set_status(StatusCode.ERROR, f"{type(error).__name__}: {error}")
            span.end(end_ns)
            if charged:  # the span's pause just charged the wait's CPU: undo that
                acct.cpu_ns = max(0, acct.cpu_ns - cpu_ns)
        except Exception:
            self.collector.stats.errors += 1
            return False
        return True

    # The API's own decorator, so this also works on async functions like the SDK's.
    @_agnosticcontextmanager
    def start_as_current_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace.Span]:
        span = self.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        with trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        ) as current:
            yield current


class LightTracerProvider(trace.TracerProvider):
    """``provider`` as the plugins see it: tracers that record light spans where they can."""

    def __init__(self, provider: Any, collector: Any, plugin: str = "") -> None:
        self.provider = provider
        self.collector = collector
        self.plugin = plugin  # whose tracers these are: their spans' cost is its cost

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes | None = None,
    ) -> trace.Tracer:
        return LightTracer(
            self.provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            ),
            self.collector,
            self.plugin,
        )

    def __getattr__(self, name: str) -> Any:  # resource, id_generator... of the SDK provider
        return getattr(self.provider, name)
