"""Fork safety: a collector made before a pre-forking server forks gets a new export path.

Contract: after ``os.fork()`` (gunicorn workers, with or without ``--preload``; uWSGI;
``multiprocessing`` with the fork start method), in the child every collector this
process can reach (each live ``LedgerMiddleware``'s, one given in
``LATENCY_LEDGER["collector"]``, and ``latency_ledger.collect``'s default one) gets a new
:class:`~latency_ledger.collect.export.SpanSink`: an empty buffer (the spans buffered
before the fork are the parent's to write), new locks, and an export thread started on
first use. Its exporter is new too when we made it: the JSON lines file exporter names
its file by process id and must not share the parent's open file; the OTLP/HTTP exporter
must not share the parent's pooled connections. An exporter the app gave is kept. The
collector's counters restart at zero (they are per process). Everything else (the
tracer provider, plugins' patches, the thread-pool hooks) is plain memory and stays.

Why here: a collector made in the master is otherwise broken in each worker: its export
thread does not exist there, but the sink believes it does, so nothing is written until
exit and the buffer overflows; a lock the parent's export thread held at the fork stays
held forever, hanging the worker at exit; and every worker appends to the parent's file.
The middleware itself makes its collector on the first request, in the worker; this
covers collectors made earlier (settings, app code, a request served before forking).
The hook never raises: a failure is logged and the worker goes on without the fix.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

_log = logging.getLogger("latency_ledger.collect")

# every LedgerMiddleware made in this process (weakly: Django may build the chain again)
MIDDLEWARES: weakref.WeakSet[Any] = weakref.WeakSet()


def _reachable_collectors() -> list[Any]:
    found: list[Any] = []
    for middleware in list(MIDDLEWARES):
        middleware._lock = threading.Lock()  # a lock held by another thread at the fork
        found.append(middleware._collector)
        found.append(middleware._settings.collector)
    import latency_ledger.collect as collect

    found.append(collect._Default.collector)
    unique: dict[int, Any] = {}
    for collector in found:
        if collector is not None and not getattr(collector, "closed", True):
            unique[id(collector)] = collector
    return list(unique.values())


def new_exporter(collector: Any, old: Any) -> Any:
    """The exporter for ``collector`` in a forked child: a new one of ours, else ``old``."""
    from latency_ledger.collect.export import JsonLinesFileExporter, otlp_endpoint_exporter

    config = collector.config
    if type(old) is JsonLinesFileExporter:
        directory = getattr(old, "_dir", config.output_dir)
        max_bytes = getattr(old, "_max", config.max_file_bytes)
        return JsonLinesFileExporter(directory, max_file_bytes=max_bytes)
    factory = otlp_endpoint_exporter(os.environ)
    if factory is not None and type(old) is factory:
        return factory()
    return old


def rearm(collector: Any) -> None:
    """Give ``collector`` a new sink (and exporter, see :func:`new_exporter`) in this
    process; the old sink is dropped unused: closing it could wait on a dead thread's
    lock."""
    from latency_ledger.collect.export import CollectorStats, SpanSink

    config = collector.config
    stats = collector.stats
    for field in CollectorStats.FIELDS:
        setattr(stats, field, 0)
    old = getattr(collector.sink, "_exporter", None)
    if old is None:  # not the sink this module knows: leave it be
        return
    exporter = new_exporter(collector, old)
    collector.sink = SpanSink(
        exporter,
        stats=stats,
        max_spans=config.max_queue_spans,
        interval_s=config.export_interval_s,
    )


def after_fork_in_child() -> None:
    try:
        for collector in _reachable_collectors():
            rearm(collector)
    except Exception as exc:  # never into the server's fork
        _log.warning("latency-ledger: re-arming the collector after fork failed: %r", exc)


_registered = False


def register() -> None:
    """Install the hook once per process (``os.register_at_fork`` has no removal)."""
    global _registered
    if not _registered:
        _registered = True
        os.register_at_fork(after_in_child=after_fork_in_child)
