"""Light child spans: what a request's DB and client calls record before we know it is kept.

Contract: :class:`LightTracerProvider` wraps the SDK ``TracerProvider`` the collector uses
and is what the plugins' instrumentations get. A span started through it inside a request
whose account allows it (``RequestRecord.light``: no span processor but ours on the
provider, the SERVER span is ours) is a :class:`LightSpan`: a plain object that keeps the
name, kind, times, attributes, status and events, pauses the request's CPU clock while it
is a wait (CLIENT/PRODUCER), and on ``end`` joins its request's list. Anywhere else (no
request, an SDK span current, an explicit foreign parent, after shutdown) the SDK tracer
is used, unchanged.

At the request's end the collector books its ledger straight from those spans
(:func:`book_light`, with the offline ledger's classification rules and the same
critical-path rule, or :func:`latency_ledger.ledger.book_trace` itself when the spans
nest or overlap) and only for a kept request turns them into ``ReadableSpan`` objects
(:func:`materialize`), with the ids, parents, resource and scope the SDK would give them.

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
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

from latency_ledger.collect.accounting import CURRENT, PER_THREAD, pause_for_wait, resume_after_wait
from latency_ledger.collect.selfcost import Meter
from latency_ledger.collect.spans import SAMPLED, UNSET_STATUS
from latency_ledger.collect.tails import run_delay_ns, span_key, wait_ended_at, wait_started
from latency_ledger.ledger import MAX_WALL_NS, split_measured, tail_overlap
from latency_ledger.model import Category, Span
from latency_ledger.model import SpanKind as ModelKind

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
# OpenTelemetry Python numbers SpanKind from 0 (INTERNAL); the model follows OTLP.
_MODEL_KINDS = (
    ModelKind.INTERNAL,
    ModelKind.SERVER,
    ModelKind.CLIENT,
    ModelKind.PRODUCER,
    ModelKind.CONSUMER,
)
_ERROR = StatusCode.ERROR
_DATABASE = Category.DATABASE
# a wait span's tail (see tails.py), as the offline ledger reads it
TAIL_NS = "ledger.queueing_ns"
TAIL_MAX_NS = "ledger.queueing_max_ns"
DELAY_NS = "ledger.unattributed_ns"


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
            self.started = wait_started(acct, pause_for_wait(acct), delay0)
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
                thread_ns = -1
                length = self.end_time - self.start_time  # type: ignore[operator]
                if now and length > 0:
                    # how much of this wait's end was waiting for the loop or the lock
                    # (tails.py); a span with no contention teaches the typical time
                    self.tail_ns, self.delay_ns, self.bound_ns, thread_ns = wait_ended_at(
                        acct,
                        self.tracer.collector.typical_io,
                        span_key(self.name, self.attributes),
                        length,
                        self.started,
                        delay_ns,
                    )
                # the thread's CPU clock as just read for the tail, if it was
                resume_after_wait(acct, thread_ns)
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


# -- at the request's end -------------------------------------------------------------


def exported_attributes(span: LightSpan) -> dict[str, Any]:
    """The span's attributes, with its tail, bound and delay when they were measured."""
    if span.bound_ns < 0:
        return span.attributes
    return {
        **span.attributes,
        TAIL_NS: span.tail_ns,
        TAIL_MAX_NS: span.bound_ns,
        DELAY_NS: span.delay_ns,
    }


def _model_span(span: LightSpan, trace_id: str, server_id: str, service: str) -> Span:
    parent = span.parent
    return Span(
        trace_id=trace_id,
        span_id=f"{span.get_span_context().span_id:016x}",
        parent_span_id=f"{parent.get_span_context().span_id:016x}" if parent else server_id,
        name=span.name,
        kind=_MODEL_KINDS[span.kind.value],
        start_ns=span.start_time,
        end_ns=span.end_time or span.start_time,
        is_error=span.status.status_code is _ERROR,
        attributes=exported_attributes(span),
        service=service,
    )


def model_spans(lights: Sequence[LightSpan], server: Span) -> list[Span]:
    """The light spans as :class:`model.Span` children of ``server`` (for ``book_trace``)."""
    return [_model_span(s, server.trace_id, server.span_id, server.service) for s in lights]


def classifier(rules: Sequence[Any]) -> Any:
    from latency_ledger.classify import classify_standard, standard_fields

    if len(rules) == 1 and rules[0] is classify_standard:
        return standard_fields

    def classify(span: Span) -> Any:
        for rule in rules:
            if rule is classify_standard:
                return standard_fields(span)
            found = rule(span)
            if found is not None:
                return found.category, found.kind, found.system, found.target
        return None

    return classify


MAX_CLASSIFIED = 4_096


def book_light(
    start_ns: int,
    end_ns: int,
    cpu_ns: int,
    queueing_ns: int,
    lights: Sequence[LightSpan],
    classify: Callable[[Span], Any],
    classified: dict[tuple[Any, ...], tuple[Any, Any]] | None,
    service: str,
) -> tuple[int, int, int, int, int, int, int, int] | None:
    """(database, network, interpreter, waiting, queueing, database wait bound, network
    wait bound, unbounded I/O) ns of a request from its light children when they are
    direct and sequential (:func:`light_waits`), own time split by its measured CPU and
    queueing as the offline ledger splits it; None otherwise, and the caller books with
    ``book_trace``. ``classify``: :func:`classifier` of the rules."""
    # not min()/max() (each parses its keywords): this runs for every request
    hi = end_ns if end_ns > start_ns else start_ns
    if hi > start_ns + MAX_WALL_NS:
        hi = start_ns + MAX_WALL_NS
    waits = light_waits(start_ns, hi, lights, classify, classified, service)
    if waits is None:
        return None
    database, network, tails, (database_slack, network_slack, unbounded) = waits
    own = hi - start_ns - database - network
    return (
        database,
        network,
        *split_measured(own, cpu_ns, queueing_ns if queueing_ns > tails else tails),
        database_slack,
        network_slack,
        unbounded,
    )


def light_waits(
    lo: int,
    hi: int,
    lights: Sequence[LightSpan],
    classify: Callable[[Span], Any],
    classified: dict[tuple[Any, ...], tuple[Any, Any]] | None,
    service: str,
) -> tuple[int, int, int, tuple[int, int, int]] | None:
    """(database, network, tails, bounds) ns of a request spanning ``lo``..``hi`` from its
    light children, when they are direct and sequential; None otherwise. ``tails``: the
    parts of wait spans' tails (``tail_ns``, see tails.py) moved from their category to
    own time; ``bounds``: as ``ledger.book_spans`` gives them (what may still be waiting
    for Python in database and network, and the time of waits not measured).

    Sequential children (after clipping to the request, each starts at or after the
    previous one ends) never compete for an instant, so the critical-path rule gives each
    its whole clipped length: a wait's length goes to its category, any other span's to
    own time. That is :func:`latency_ledger.ledger.book_trace`'s answer for such a tree
    (a test checks both agree); for anything else (nested, overlapping) the caller books
    with ``book_trace``. ``classify`` is :func:`classifier`'s result for the rules.
    """
    database_category = _DATABASE
    database = network = tails = 0
    database_slack = network_slack = unbounded = 0
    previous_end = lo
    # Spans are listed as they ended, which for sequential ones is also their start
    # order: walked as listed while they are in _start's order (a key call per span and
    # a sort saved), sorted and walked again from the start once one is not. Equal: an
    # overlap found in a sorted prefix is one in the sorted whole too.
    key_start = key_end = lo - MAX_WALL_NS  # the previous span's _start key
    for light in lights:
        if light.parent is not None:
            return None
        start = light.start_time
        raw_end = light.end_time or start
        if start < key_start or (start == key_start and raw_end < key_end):
            return light_waits(lo, hi, sorted(lights, key=_START), classify, classified, service)
        key_start, key_end = start, raw_end
        start = lo if start < lo else (hi if start > hi else start)
        end = light.end_time or start
        if end > hi:
            end = hi
        elif end < start:
            end = start
        if start < previous_end:
            return None
        previous_end = end
        # A span with a plugin's shared attributes (one dict per statement) is classified
        # once per (dict, name, kind, error): all a rule reads of a span here. The entry
        # holds the dict, so its id cannot be reused by another while cached. The kind
        # by identity and the error as a bool: an Enum member's hash and ``value``, and
        # ``Status.status_code``, are Python calls, and this runs for every span.
        status = light.status
        failed = status is not UNSET_STATUS and status.status_code is _ERROR
        key = (id(light.attributes), light.name, id(light.kind), failed) if light.shared else None
        hit = classified.get(key) if classified is not None and key is not None else None
        if hit is not None:
            found = hit[1]
        else:
            found = classify(
                Span(
                    trace_id="",
                    span_id="",
                    parent_span_id="",
                    name=light.name,
                    kind=_MODEL_KINDS[light.kind.value],
                    start_ns=light.start_time,
                    end_ns=light.end_time or light.start_time,
                    is_error=failed,
                    attributes=light.attributes,
                    service=service,
                )
            )
            if classified is not None and key is not None:
                if len(classified) >= MAX_CLASSIFIED:
                    classified.clear()
                classified[key] = (light.attributes, found)
        if found is None:
            continue
        length = end - start
        bound = light.bound_ns
        slack = 0
        if bound < 0:  # not measured: see exported_attributes
            unbounded += length
        else:
            tail = light.tail_ns
            if tail > 0 or light.delay_ns > 0:
                moved = tail_overlap(
                    tail + light.delay_ns, start, end, light.end_time or light.start_time
                )
                length -= moved
                tails += tail if tail < moved else moved
            slack = bound - tail
            slack = 0 if slack < 0 or length <= 0 else (length if slack > length else slack)
        if found[0] == database_category:
            database += length
            database_slack += slack
        else:
            network += length
            network_slack += slack
    return database, network, tails, (database_slack, network_slack, unbounded)


def _start(span: LightSpan) -> tuple[int, int]:
    # then by end: a zero-length span starting where a longer one starts goes first,
    # so the order the spans ended in cannot make them look overlapping
    return span.start_time, span.end_time or span.start_time


_START = _start


def materialize(lights: Sequence[LightSpan], acct: Any, collector: Any) -> list[ReadableSpan]:
    """Kept request: the light spans as the ``ReadableSpan`` objects the SDK would export."""
    server_context = acct.server.context
    resource = collector.provider.resource
    out = []
    for light in lights:
        parent = light.parent
        out.append(
            ReadableSpan(
                name=light.name,
                context=light.get_span_context(),
                parent=parent.get_span_context() if parent is not None else server_context,
                resource=resource,
                attributes=exported_attributes(light),
                events=tuple(light.events),
                kind=light.kind,
                status=light.status,
                start_time=light.start_time,
                end_time=light.end_time,
                instrumentation_scope=light.tracer.scope,
            )
        )
    return out
