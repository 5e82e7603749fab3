"""latency-ledger plugin: outgoing httpx calls as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every outgoing call of every
``httpx.Client`` / ``httpx.AsyncClient`` (made before or after: the transports are patched
at class level) a CLIENT span with the method, the URL with credentials and query values
stripped, and ``server.address``.
Returns False and does nothing when httpx is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-httpx, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="httpx",
    library="httpx",
    instrumentor="opentelemetry.instrumentation.httpx:HTTPXClientInstrumentor",
)
