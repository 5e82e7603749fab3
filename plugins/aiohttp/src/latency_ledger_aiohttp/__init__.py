"""latency-ledger plugin: outgoing aiohttp client calls as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every request of every
``aiohttp.ClientSession`` created after the call a CLIENT span with the method, the URL
with credentials and query values stripped, and ``server.address``. Sessions created
before are not traced: the instrumentation adds its trace config in
``ClientSession.__init__``.
Returns False and does nothing when aiohttp is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-aiohttp-client, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="aiohttp",
    library="aiohttp",
    instrumentor="opentelemetry.instrumentation.aiohttp_client:AioHttpClientInstrumentor",
)
