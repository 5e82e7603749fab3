"""latency-ledger plugin: psycopg (3) statements as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every statement run on a psycopg
connection opened after the call (``psycopg.connect`` and the async variant are wrapped;
connections opened before are not traced) a CLIENT span with ``db.system=postgresql`` and
the statement with literals replaced by ``?``; bind parameters are never captured and
sqlcommenter stays off.
Returns False and does nothing when psycopg is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-psycopg, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="psycopg",
    library="psycopg",
    instrumentor="opentelemetry.instrumentation.psycopg:PsycopgInstrumentor",
)
