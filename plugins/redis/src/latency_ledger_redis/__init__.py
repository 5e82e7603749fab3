"""latency-ledger plugin: Redis commands as CLIENT spans.

Contract: ``plugin.instrument(tracer_provider)`` makes every command of redis-py's sync and
asyncio clients (including pipelines) a CLIENT span with ``db.system=redis`` and the
command with its arguments replaced by ``?`` (the instrumentation's own sanitizing; the
ledger books Redis as a cache, i.e. network).
Returns False and does nothing when redis is not installed; never raises into the app
(failures are logged once and counted in ``plugin.errors``); ``plugin.uninstrument()``
undoes it. Spans come from opentelemetry-instrumentation-redis, handed a sanitizing tracer
provider (latency_ledger_plugin_base.tracing).
"""

from __future__ import annotations

from latency_ledger_plugin_base import InstrumentorPlugin

__all__ = ["plugin"]

plugin = InstrumentorPlugin(
    name="redis",
    library="redis",
    instrumentor="opentelemetry.instrumentation.redis:RedisInstrumentor",
)
