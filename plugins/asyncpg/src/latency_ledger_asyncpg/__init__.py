"""latency-ledger plugin: asyncpg statements as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every asyncpg statement
(``execute``, ``fetch*``, cursors, prepared statements) a CLIENT span with
``db.system=postgresql`` and the statement with literals replaced by ``?``; bind
parameters are never captured (``capture_parameters`` stays off).
Returns False and does nothing when asyncpg is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-asyncpg, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="asyncpg",
    library="asyncpg",
    instrumentor="opentelemetry.instrumentation.asyncpg:AsyncPGInstrumentor",
)
