"""The sanitizing provider: processors only ever see sanitized values."""

from __future__ import annotations

from typing import Any

from latency_ledger_plugin_base import SanitizingTracerProvider
from opentelemetry import trace
from opentelemetry.trace import SpanKind


def test_start_attributes_and_later_sets_are_sanitized(spans: Any) -> None:
    tracer = SanitizingTracerProvider(spans.provider).get_tracer("t")
    with tracer.start_as_current_span(
        "q", kind=SpanKind.CLIENT, attributes={"db.statement": "SELECT 'pw'", "n": 1}
    ) as span:
        span.set_attribute("db.query.text", "SELECT 42")
        span.set_attributes({"url.full": "http://h:81/p?k=v"})
        span.set_attribute("http.url", "http://u:p@h:81/p?k=v")
    (done,) = spans.finished()
    assert dict(done.attributes or {}) == {
        "db.statement": "SELECT ?",
        "db.query.text": "SELECT ?",
        "n": 1,
        "url.full": "http://h:81/p?k=",
        "http.url": "http://h:81/p?k=",
        "server.address": "h",
    }
    assert done.kind == SpanKind.CLIENT


def test_context_and_parenting_pass_through(spans: Any) -> None:
    tracer = SanitizingTracerProvider(spans.provider).get_tracer("t")
    with tracer.start_as_current_span("outer") as outer:
        assert trace.get_current_span() is outer
        inner = tracer.start_span("inner")
        inner.end()
    by_name = {s.name: s for s in spans.finished()}
    assert by_name["inner"].parent is not None
    assert by_name["inner"].parent.span_id == by_name["outer"].context.span_id


def test_exception_recorded_and_span_ended(spans: Any) -> None:
    tracer = SanitizingTracerProvider(spans.provider).get_tracer("t")
    try:
        with tracer.start_as_current_span("boom"):
            raise ValueError("x")
    except ValueError:
        pass
    (done,) = spans.finished()
    assert done.status.status_code == trace.StatusCode.ERROR
    assert [e.name for e in done.events] == ["exception"]


def test_non_recording_spans_are_not_wrapped() -> None:
    tracer = SanitizingTracerProvider(trace.NoOpTracerProvider()).get_tracer("t")
    span = tracer.start_span("x")
    assert isinstance(span, trace.NonRecordingSpan)


def test_sdk_members_are_reachable_through_the_wrapper(spans: Any) -> None:
    # Code that reads SDK-only members of the current span (name, kind, attributes) must
    # see the real span's values through the wrapper.
    tracer = SanitizingTracerProvider(spans.provider).get_tracer("t")
    with tracer.start_as_current_span(
        "q", kind=SpanKind.CLIENT, attributes={"db.statement": "SELECT 1"}
    ) as span:
        assert span.name == "q"  # type: ignore[attr-defined]
        assert span.kind == SpanKind.CLIENT  # type: ignore[attr-defined]
        assert dict(span.attributes) == {"db.statement": "SELECT ?"}  # type: ignore[attr-defined]
