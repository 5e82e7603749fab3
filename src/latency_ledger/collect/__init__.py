"""In-app collection for ASGI apps: one line to book every request's ledger.

Contract::

    app = latency_ledger.collect.instrument(app)          # FastAPI / Starlette / any ASGI
    app.add_middleware(LedgerMiddleware)                  # the same, by hand

Every HTTP request gets a SERVER span carrying ``ledger.*`` totals in nanoseconds
(``cpu_ns``, ``queueing_ns``, ``database_ns``, ``network_ns``, ``interpreter_ns``,
``waiting_ns``, ``overhead_ns``, ``spans_kept``, optional ``profile``), booked in-process
with the offline ledger's code; child-span trees are kept per ``CollectConfig.keep_spans``.
``interpreter_ns`` is all the request's own CPU: a profiled request's ``profile`` carries
its native part, which the analyzer splits off (``interpreter`` + ``native``).
Output: OTLP JSON lines in ``./ledger-traces/`` (or the ``OTEL_EXPORTER_OTLP_*`` endpoint).

The process-wide state (the task factory, thread-pool hooks, the tracer provider link,
the export thread) lives in one :class:`~latency_ledger.collect.collector.Collector`,
created on first use; :func:`shutdown` flushes and undoes it (also run at exit and on the
ASGI lifespan shutdown). Settings come from ``LATENCY_LEDGER_<FIELD>`` variables when no
``config`` is given (see :mod:`latency_ledger.collect.config`).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, TypeVar

from latency_ledger.collect.collector import Collector
from latency_ledger.collect.config import CollectConfig, config_from_env
from latency_ledger.collect.middleware import LedgerMiddleware

__all__ = [
    "CollectConfig",
    "Collector",
    "LedgerMiddleware",
    "collector_stats",
    "config_from_env",
    "default_collector",
    "disable_native_request_spans",
    "instrument",
    "shutdown",
]

_App = TypeVar("_App")


class _Default:
    """The process's collector, created on first use (the only module-level state)."""

    lock = threading.Lock()
    collector: Collector | None = None
    atexit_registered = False


def _new_lock_in_child() -> None:
    # a lock another thread held at the fork stays held in the child: a new one, as
    # nothing else runs in the child yet
    _Default.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)


def default_collector(config: CollectConfig | None = None, app_title: str | None = None) -> Any:
    """The process's collector, created from ``config`` (else the environment) if needed."""
    with _Default.lock:
        current = _Default.collector
        if current is None or current.closed:
            current = Collector(
                config if config is not None else config_from_env(), app_title=app_title
            )
            _Default.collector = current
            if not _Default.atexit_registered:
                atexit.register(shutdown)
                _Default.atexit_registered = True
        return current


def instrument(app: _App, *, config: CollectConfig | None = None) -> _App:
    """Add :class:`LedgerMiddleware` to ``app``; returns the app to serve.

    Starlette and FastAPI apps get the middleware through ``add_middleware`` (and are
    returned themselves); any other ASGI callable is wrapped and the wrapper returned.
    Plugins are loaded and switched on now; a failing plugin is counted, never raised.
    """
    title = getattr(app, "title", None)
    title = title if isinstance(title, str) and title else None
    collector = default_collector(config, title)
    disable_native_request_spans(app)
    add = getattr(app, "add_middleware", None)
    if callable(add) and hasattr(app, "user_middleware"):
        add(LedgerMiddleware, collector=collector)
        return app
    return LedgerMiddleware(app, collector=collector)  # type: ignore[arg-type, return-value]


def disable_native_request_spans(app: object) -> None:
    """Switch off FastAPI's own request spans (``FastAPI(telemetry=...)``, FastAPI >= 0.16x).

    Ours carry the same attributes plus the ledger; with both, every request would have two
    SERVER spans and cost three more INTERNAL spans. Metrics and logs are left alone.
    The middleware also joins such a span rather than duplicating it, should one be open.
    """
    telemetry = getattr(app, "_telemetry", None)
    if isinstance(telemetry, dict) and type(app).__module__.startswith("fastapi"):
        telemetry["tracing"] = False
        telemetry["operation_spans"] = False


def shutdown() -> None:
    """Flush buffered spans and remove every hook; safe to call more than once."""
    with _Default.lock:
        collector, _Default.collector = _Default.collector, None
    if collector is not None:
        collector.shutdown()


def collector_stats() -> dict[str, int]:
    """The collector's counters: requests, spans exported and dropped, errors, overhead."""
    collector = _Default.collector
    return collector.stats.as_dict() if collector is not None else {}
