"""The ``django`` plugin: database and template spans, switched on with the collector.

Contract (``latency_ledger.plugins``): ``plugin.instrument(tracer_provider)`` starts the
:class:`~.database.QueryTracer` (the ``connection_created`` receiver, the wrapper on the
calling thread's open connections, ``BaseDatabaseWrapper.connect`` timed) and the
:class:`~.templates.RenderTracer` (``Template.render`` of the Django engine and of the
Jinja2 backend); returns False and does nothing without Django; never raises into the
app, and does nothing in a process that has not configured Django settings.
``plugin.uninstrument()`` restores every patched method and disconnects the signal;
wrappers already on connections stay but only call through. The collector loads it
through the entry point like any plugin; :class:`~.middleware.LedgerMiddleware` also
switches it on for a collector that did not load plugins.
"""

from __future__ import annotations

import importlib
from typing import Any

from latency_ledger_plugin_base import LibraryPlugin, SanitizingTracerProvider
from opentelemetry import trace

from latency_ledger_django.database import QueryTracer
from latency_ledger_django.templates import RenderTracer

__all__ = ["DjangoPlugin", "plugin"]

TRACER_NAME = "latency_ledger_django"
_ORIGINAL = "__latency_ledger_original__"
# (module, class, method, which tracer wraps it); a module that does not import is skipped
_PATCHES = (
    ("django.db.backends.base.base", "BaseDatabaseWrapper", "connect", "queries"),
    ("django.template.base", "Template", "render", "renders"),
    ("django.template.backends.jinja2", "Template", "render", "renders"),
)


class DjangoPlugin(LibraryPlugin):
    def __init__(self) -> None:
        super().__init__(name="django", library="django")
        self.queries = QueryTracer()
        self.renders = RenderTracer()
        self._patched: list[tuple[type, str, Any]] = []
        self._receiving = False

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        from django.conf import settings

        if not settings.configured:
            # Django installed but not (yet) this process's framework, e.g. a FastAPI app;
            # the middleware instruments again once Django is serving.
            return False
        from django.db import connections
        from django.db.backends.signals import connection_created

        # Statements are sanitized where they are read (database.py): the raw provider
        # spares a wrapper object per span.
        provider = tracer_provider.provider or trace.get_tracer_provider()
        tracer = provider.get_tracer(TRACER_NAME)
        for module_name, class_name, method, owner in _PATCHES:
            try:
                cls = getattr(importlib.import_module(module_name), class_name)
            except ImportError:  # jinja2 not installed
                continue
            original = cls.__dict__[method]
            wrapper = getattr(self, owner)
            patched = (
                wrapper.wrap_connect(original) if owner == "queries" else wrapper.wrap(original)
            )
            self._patched.append((cls, method, original))
            setattr(cls, method, patched)
        connection_created.connect(self.queries.on_connection_created, weak=False)
        self._receiving = True
        self.queries.tracer = tracer
        self.renders.tracer = tracer
        # connections this thread opened before (other threads get it when they connect)
        for connection in connections.all(initialized_only=True):
            if connection.connection is not None:
                self.queries.add_to(connection)
        return True

    def _uninstrument(self) -> None:
        self.queries.tracer = None
        self.renders.tracer = None
        if self._receiving:
            from django.db.backends.signals import connection_created

            connection_created.disconnect(self.queries.on_connection_created)
            self._receiving = False
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
