"""A TracerProvider wrapper that sanitizes statements and URLs as they are recorded.

Contract: ``SanitizingTracerProvider(provider)`` behaves like ``provider`` for an
OpenTelemetry instrumentation, except that every attribute named in
:mod:`.sanitize` (``db.statement``, ``db.query.text``, ``http.url``, ``url.full``) is
rewritten before it reaches the real span, so span processors and exporters never see
the raw value. Non-recording spans are returned unwrapped (nothing to sanitize, no cost).

Why a wrapper rather than patching each instrumentation: the instrumentations set these
attributes in many places (at span start, via ``set_attribute``, in private helpers that
change between releases); the tracer is the one seam they all pass through, and it is
public API. Spans opened through it also get ``server.address`` from the URL when the
instrumentation (old semantic conventions) leaves it out.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.util import types
from opentelemetry.util._decorator import _agnosticcontextmanager

from latency_ledger_plugin_base.sanitize import URL_KEYS, sanitize_attribute

SERVER_ADDRESS = "server.address"


def _host_of(url: str) -> str | None:
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _clean(attributes: types.Attributes) -> dict[str, Any] | None:
    if not attributes:
        return None
    clean = {key: sanitize_attribute(key, value) for key, value in attributes.items()}
    if SERVER_ADDRESS not in clean:
        for key in URL_KEYS & clean.keys():
            host = _host_of(str(attributes[key]))
            if host:
                clean[SERVER_ADDRESS] = host
                break
    return clean


def clean_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """``attributes`` as a sanitizing span would have recorded them (a new dict)."""
    return _clean(attributes) or {}


def _no_charge(ns: int) -> None:
    return None


class _NoMeter:
    """A collector's ``Meter`` stand-in that never measures and charges nothing."""

    __slots__ = ()
    mean_ns = 0

    def due(self) -> bool:
        return False

    def record(self, ns: int) -> None:
        return None


_NO_METER = _NoMeter()


def meter_for(tracer: Any) -> Any:
    """A collector's meter of one kind of a plugin's wrapper (``due()``, ``record(ns)``,
    ``mean_ns``: the collector's ``selfcost.Meter``), or one that never measures."""
    make = getattr(tracer, "new_meter", None)
    return make() if callable(make) else _NO_METER


def charger(tracer: Any) -> Any:
    """``charge(ns)``: where a plugin's hot path reports the time its own wrapper spent
    around the app's call (a collector's ``LightTracer.charge``: the request's and the
    plugin's cost); a no-op for any other tracer."""
    charge = getattr(tracer, "charge", None)
    return charge if callable(charge) else _no_charge


def start_clean_span(
    tracer: Any, name: str, kind: SpanKind, attributes: dict[str, Any]
) -> Span | None:
    """A plain tracer's span with ``attributes`` as given, or None when instrumentation
    is suppressed here: what ``start_clean_span`` means for a tracer without one."""
    from opentelemetry.instrumentation.utils import is_instrumentation_enabled

    if not is_instrumentation_enabled():
        return None
    return tracer.start_span(name, kind=kind, attributes=attributes)  # type: ignore[no-any-return]


def clean_span_starter(tracer: Any) -> Any:
    """What a plugin's hot path calls to start a span with cached clean attributes:
    ``start(name, kind, attributes) -> span or None`` (None: instrumentation suppressed
    here, run the call untraced); the tracer's own when it has one."""
    start = getattr(tracer, "clean_span_starter", None) or getattr(tracer, "start_clean_span", None)
    if callable(start):
        return start
    return functools.partial(start_clean_span, tracer)


class SanitizingSpan(Span):
    """Forwards to the real span; attribute values are sanitized on the way in."""

    def __init__(self, span: Span) -> None:
        self._span = span

    def __getattr__(self, name: str) -> Any:  # SDK-only members (``attributes``, ``name``)
        return getattr(self._span, name)

    def end(self, end_time: int | None = None) -> None:
        self._span.end(end_time)

    def get_span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        clean = _clean(attributes)
        if clean:
            self._span.set_attributes(clean)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if key in URL_KEYS and isinstance(value, str):
            self.set_attributes({key: value})
            return
        self._span.set_attribute(key, sanitize_attribute(key, value))  # type: ignore[arg-type]

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._span.record_exception(exception, attributes, timestamp, escaped)


class SanitizingTracer(trace.Tracer):
    """A tracer whose spans sanitize what is recorded on them.

    A wrapped tracer that can apply the sanitizing itself (it has an ``attribute_filter``
    slot and marks its spans ``filters_attributes``, as latency-ledger's collector does
    for its light spans) is handed :func:`clean_attributes` and its spans are returned
    unwrapped: one pass over the attributes when the span ends instead of a wrapper call
    per attribute.
    """

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        if hasattr(tracer, "attribute_filter"):
            tracer.attribute_filter = clean_attributes
        # a collector's tracer with a hot path for cached, already clean attributes
        self._start_clean = getattr(tracer, "start_clean_span", None)
        self._record_wait = getattr(tracer, "record_wait", None)
        self.charge = charger(tracer)
        self.new_meter = getattr(tracer, "new_meter", None)

    @property
    def clean_span_starter(self) -> Any:
        """:meth:`start_clean_span` itself, or the wrapped tracer's when it has one: what a
        plugin's per-statement hot path holds, one call shorter."""
        return self._start_clean or self.start_clean_span

    def start_clean_span(
        self, name: str, kind: SpanKind, attributes: dict[str, Any]
    ) -> Span | None:
        """A span whose ``attributes`` went through :func:`clean_attributes` already and
        are shared between spans (a plugin's per-statement cache): no per-span pass over
        them. The caller only sets the status and ends it. None when instrumentation is
        suppressed here (``is_instrumentation_enabled()`` False): the caller runs its
        call untraced (a collector's tracer answers that itself, reading the context
        once for both questions)."""
        start = self._start_clean
        if start is not None:
            return start(name, kind, attributes)  # type: ignore[no-any-return]
        return start_clean_span(self._tracer, name, kind, attributes)

    def record_wait(
        self,
        name: str,
        attributes: dict[str, Any],
        start_ns: int,
        end_ns: int,
        cpu_ns: int,
        error: BaseException | None = None,
    ) -> None:
        """A CLIENT span for a wait timed without one (``attributes`` clean already);
        ``cpu_ns`` is this thread's CPU inside it, which a collector keeps out of the
        request's interpreter time."""
        record = self._record_wait
        if record is not None and record(name, attributes, start_ns, end_ns, cpu_ns, error):
            return  # a collector's light span
        span = self._tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes, start_time=start_ns
        )
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end(end_ns)

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
    ) -> Span:
        span = self._tracer.start_span(
            name,
            context,
            kind,
            _clean(attributes),
            links,
            start_time,
            record_exception,
            set_status_on_exception,
        )
        if getattr(span, "filters_attributes", False) or not span.is_recording():
            return span
        return SanitizingSpan(span)

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
    ) -> Iterator[Span]:
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


class SanitizingTracerProvider(trace.TracerProvider):
    """Wraps ``provider`` (None: the global one, looked up when a tracer is made)."""

    def __init__(self, provider: trace.TracerProvider | None) -> None:
        self.provider = provider

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes | None = None,
    ) -> trace.Tracer:
        provider = self.provider or trace.get_tracer_provider()
        return SanitizingTracer(
            provider.get_tracer(
                instrumenting_module_name, instrumenting_library_version, schema_url, attributes
            )
        )
