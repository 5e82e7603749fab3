"""Shared helpers for latency-ledger's library plugins (one distribution each under plugins/).

- :mod:`.plugin`: :class:`InstrumentorPlugin`, a failsafe wrapper around one OpenTelemetry
  instrumentor that meets the ``latency_ledger.plugins`` contract.
- :mod:`.tracing`: :class:`SanitizingTracerProvider`, so recorded statements and URLs carry
  no literals or query values.
- :mod:`.sanitize`: the pure sanitizing functions.
- :mod:`.leaks`: what tests check to prove no instrumentation outlives a test.
"""

from typing import Any

from latency_ledger_plugin_base.plugin import InstrumentorPlugin, LibraryPlugin, library_available
from latency_ledger_plugin_base.sanitize import sanitize_attribute, sanitize_sql, strip_query_values
from latency_ledger_plugin_base.tracing import SanitizingTracerProvider

__all__ = [
    "InstrumentorPlugin",
    "LibraryPlugin",
    "SanitizingTracerProvider",
    "active_instrumentors",
    "library_available",
    "sanitize_attribute",
    "sanitize_sql",
    "strip_query_values",
]


def __getattr__(name: str) -> Any:
    # imported on first use: it pulls in opentelemetry.instrumentation.instrumentor
    # (~0.1 s), which only tests need, not an app's start-up
    if name == "active_instrumentors":
        from latency_ledger_plugin_base.leaks import active_instrumentors

        return active_instrumentors
    raise AttributeError(name)
