"""latency-ledger for Django: add one line to ``settings.MIDDLEWARE``.

Contract::

    MIDDLEWARE = ["latency_ledger_django.LedgerMiddleware", ...]   # first in the list
    LATENCY_LEDGER = {"keep_spans": "sampled"}                      # optional

Every request is booked (WSGI or ASGI; sync or async views) on a SERVER span named by
its resolved route; ORM queries on every database alias and connection opens are
database spans with sanitized SQL; template renders are INTERNAL spans. Traces go where
the ASGI collector sends them (``./ledger-traces/`` by default, see
``latency_ledger.collect``). Modules: :mod:`.middleware` (the middleware), :mod:`.scope`
(a request's ASGI-shaped scope and route), :mod:`.streaming` (streaming bodies booked
when they end), :mod:`.settings` (``LATENCY_LEDGER`` and the environment),
:mod:`.plugin` (the ``latency_ledger.plugins`` entry point, switching on
:mod:`.database` and :mod:`.templates`), :mod:`.forking` (the middleware's lock after a
pre-forking server forks; the collector re-arms itself).
Thread-per-request queueing comes from ``latency_ledger.collect.threads``.

The middleware is imported lazily: the offline analyzer loads every plugin through the
entry point, and must not import Django or the collector to do so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from latency_ledger_django.plugin import DjangoPlugin, plugin

if TYPE_CHECKING:
    from latency_ledger_django.middleware import LedgerMiddleware

__all__ = ["DjangoPlugin", "LedgerMiddleware", "plugin"]


def __getattr__(name: str) -> Any:
    if name == "LedgerMiddleware":
        from latency_ledger_django.middleware import LedgerMiddleware

        return LedgerMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
