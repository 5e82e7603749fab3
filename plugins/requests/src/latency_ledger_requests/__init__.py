"""latency-ledger plugin: outgoing requests calls as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every call through
``requests`` (any Session, made before or after: ``Session.send`` is patched) a CLIENT span
with the method, the URL with credentials and query values stripped, and
``server.address``.
Returns False and does nothing when requests is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-requests, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="requests",
    library="requests",
    instrumentor="opentelemetry.instrumentation.requests:RequestsInstrumentor",
)
