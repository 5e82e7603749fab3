"""Fork safety for the middleware's own state; the collector re-arms itself.

Contract: after ``os.fork()`` (gunicorn workers, with or without ``--preload``; uWSGI;
``multiprocessing`` with the fork start method), every live ``LedgerMiddleware`` in the
child gets a new lock (one another thread held at the fork would stay held forever).
The collectors themselves (a new buffer, export thread and, when the collector made it,
exporter) are re-armed by ``latency_ledger.collect`` (``Collector.after_fork``).
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


def after_fork_in_child() -> None:
    try:
        for middleware in list(MIDDLEWARES):
            middleware._lock = threading.Lock()
    except Exception as exc:  # never into the server's fork
        _log.warning("latency-ledger: resetting the middleware after fork failed: %r", exc)


_registered = False


def register() -> None:
    """Install the hook once per process (``os.register_at_fork`` has no removal)."""
    global _registered
    if not _registered:
        _registered = True
        os.register_at_fork(after_in_child=after_fork_in_child)
