"""Template rendering as INTERNAL spans, in production (not the test-only signal).

Contract: while a :class:`RenderTracer` is active, each outermost render of a Django
template (``django.template.base.Template.render``: ``render()``, ``TemplateResponse``,
``render_to_string``) and of a Jinja2 template through Django's Jinja2 backend is one
INTERNAL span ``render <template name>`` with ``django.template.name``; the queries the
template runs (a relation walked in a loop) are its children. ``{% include %}`` and
``{% extends %}`` renders inside it are part of it, not spans of their own: one span per
page keeps the cost flat however many includes a loop renders. A render that raises
marks its span as an error and re-raises unchanged.

``django.test.signals.template_rendered`` is only sent under the test runner's
instrumented renderer, hence the method wrapper.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

MAX_NAME_CHARS = 200
MAX_CACHED_NAMES = 1024
_INTERNAL = trace.SpanKind.INTERNAL
_RENDERING = otel_context.create_key("latency_ledger_django.rendering")


def template_name(template: Any) -> str:
    """A Django or Jinja2 template's name; ``<string>`` for one built from a string."""
    origin = getattr(template, "origin", None)
    name = getattr(origin, "template_name", None) if origin is not None else None
    if not name:
        name = getattr(template, "name", None)
    if not name:
        inner = getattr(template, "template", None)  # the Jinja2 backend's wrapper
        name = getattr(inner, "name", None) if inner is not None else None
    return str(name)[:MAX_NAME_CHARS] if name else "<string>"


class RenderTracer:
    def __init__(self) -> None:
        self.tracer: Any = None
        self.errors = 0
        # template name -> (span name, attributes): never written to, shared by its spans
        self._names: dict[str, tuple[str, dict[str, Any]]] = {}

    def _described(self, name: str) -> tuple[str, dict[str, Any]]:
        described = self._names.get(name)
        if described is None:
            described = (f"render {name}", {"django.template.name": name})
            if len(self._names) >= MAX_CACHED_NAMES:  # string templates can be many
                self._names.clear()
            self._names[name] = described
        return described

    def wrap(self, render: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(render)
        def traced_render(template: Any, *args: Any, **kwargs: Any) -> Any:
            tracer = self.tracer
            if tracer is None or otel_context.get_value(_RENDERING):
                return render(template, *args, **kwargs)
            try:
                span_name, attrs = self._described(template_name(template))
                start_clean = getattr(tracer, "start_clean_span", None)
                if start_clean is not None:  # the collector's: attributes shared, not copied
                    span = start_clean(span_name, _INTERNAL, attrs)  # None: suppressed
                else:
                    span = tracer.start_span(span_name, kind=_INTERNAL, attributes=attrs)
                if span is not None:
                    ctx = otel_context.set_value(_RENDERING, True, trace.set_span_in_context(span))
                    token = otel_context.attach(ctx)
            except Exception:
                self.errors += 1
                return render(template, *args, **kwargs)
            if span is None:
                return render(template, *args, **kwargs)
            try:
                return render(template, *args, **kwargs)
            except BaseException as exc:
                try:
                    span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
                except Exception:
                    self.errors += 1
                raise
            finally:
                otel_context.detach(token)
                span.end()

        traced_render.__latency_ledger_original__ = render  # type: ignore[attr-defined]
        return traced_render
