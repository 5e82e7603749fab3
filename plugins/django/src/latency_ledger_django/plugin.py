"""The ``django`` plugin: database and template spans, switched on with the collector.

Contract (``latency_ledger.plugins``): ``plugin.instrument(tracer_provider)`` starts the
:class:`~.database.QueryTracer` (every connection gets the execute wrapper as it makes a
cursor; ``BaseDatabaseWrapper.connect`` is timed) and the :class:`~.templates.RenderTracer`
(``Template.render`` of the Django engine and of the Jinja2 backend); ``commit`` and
``rollback`` are transaction spans. It returns False
and does nothing unless Django is imported and its settings configured (a FastAPI app in
the same environment is left alone), and never raises into the app.
``plugin.uninstrument()`` restores every patched method; wrappers already on connections
stay but only call through. The collector loads it through the entry point like any
plugin; :class:`~.middleware.LedgerMiddleware` also
switches it on for a collector that did not load plugins.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

from latency_ledger_plugin_base import LibraryPlugin, SanitizingTracerProvider
from latency_ledger_plugin_base.tracing import meter_for
from opentelemetry import trace

from latency_ledger_django.database import QueryTracer
from latency_ledger_django.templates import RenderTracer

__all__ = ["DjangoPlugin", "plugin"]

TRACER_NAME = "latency_ledger_django"
_ORIGINAL = "__latency_ledger_original__"
# (module, class, method); a module that does not import (jinja2 absent) is skipped
_PATCHES = (
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "connect"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "_prepare_cursor"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "commit"),
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "rollback"),
    ("django.template.base", "Template", "render"),
    ("django.template.backends.jinja2", "Template", "render"),
)


class DjangoPlugin(LibraryPlugin):
    def __init__(self) -> None:
        super().__init__(name="django", library="django")
        self.queries = QueryTracer()
        self.renders = RenderTracer()
        self._patched: list[tuple[type, str, Any]] = []

    def instrument(self, tracer_provider: Any) -> bool:
        # A Django app has imported Django by the time a collector starts (the middleware
        # starts it); anywhere else, importing Django only to find it unused costs ~0.1 s.
        if "django" not in sys.modules:
            return False
        return bool(super().instrument(tracer_provider))

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        from django.conf import settings

        if not settings.configured:
            # Django installed but not (yet) this process's framework, e.g. a FastAPI app;
            # the middleware instruments again once Django is serving.
            return False
        wrappers = {
            "connect": self.queries.wrap_connect,
            "_prepare_cursor": self.queries.wrap_prepare_cursor,
            "commit": lambda method: self.queries.wrap_transaction(method, "COMMIT"),
            "rollback": lambda method: self.queries.wrap_transaction(method, "ROLLBACK"),
            "render": self.renders.wrap,
        }
        for module_name, class_name, method in _PATCHES:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except ImportError:
                continue
            original = cls.__dict__[method]
            patched = wrappers[method](original)
            self._patched.append((cls, method, original))
            setattr(cls, method, patched)
        # Statements are sanitized where they are read (database.py): the raw provider
        # spares a wrapper object per span.
        provider = tracer_provider.provider or trace.get_tracer_provider()
        tracer = provider.get_tracer(TRACER_NAME)
        self.queries.tracer = tracer
        self.queries.meter = meter_for(tracer)
        self.renders.tracer = tracer
        return True

    def _uninstrument(self) -> None:
        self.queries.tracer = None
        self.renders.tracer = None
        for cls, method, original in reversed(self._patched):
            current = cls.__dict__.get(method)
            if getattr(current, _ORIGINAL, None) is original:
                setattr(cls, method, original)
        self._patched.clear()

    @property
    def hook_errors(self) -> int:
        """Failures inside the per-query and per-render hooks (counted, never raised)."""
        return self.queries.errors + self.renders.errors


plugin = DjangoPlugin()
