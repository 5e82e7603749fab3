"""What the database plugins share about transactions and connections.

Contract: :func:`idle` says whether a DB-API connection has no transaction open (then a
``commit()``/``rollback()`` sends nothing and is no span); :func:`suppress_instrumentation`
keeps a driver's instrumentation from recording a second span for the call an ORM plugin
is recording (one statement, one span), undone with ``opentelemetry.context.detach``;
:data:`CONNECT_ATTRIBUTE` on a ``connect`` span says whether a new connection was opened
(``"open"``) or a pooled one waited for (``"pool"``), which the analyzer books apart.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.context import attach, set_value
from opentelemetry.instrumentation.utils import (  # type: ignore[attr-defined]
    _SUPPRESS_INSTRUMENTATION_KEY,
)

__all__ = ["CONNECT_ATTRIBUTE", "idle", "plain_cursors", "suppress_instrumentation"]

CONNECT_ATTRIBUTE = "ledger.db.connect"


def suppress_instrumentation() -> Any:
    """Suppress instrumentation below this point; the token to ``context.detach``. The
    context is shared with the coroutine an async SQLAlchemy dialect awaits (it runs its
    greenlet in the calling task's context), so this reaches asyncpg and psycopg's async
    cursors too."""
    return attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))


def plain_cursors(dbapi_connection: Any) -> None:
    """Give a (sync) psycopg connection an ORM plugin opened its own cursor class back,
    when opentelemetry-instrumentation-psycopg (the psycopg plugin) made its cursors
    traced ones. The ORM plugin records every statement of it itself and suppresses the
    driver's span: the traced cursor would only check, per statement, that it is
    suppressed, which cost ~36,000 instructions a statement on the realistic benchmark
    endpoint (SQLAlchemy Core on psycopg). Any other connection is left as it is."""
    factory = getattr(dbapi_connection, "cursor_factory", None)
    if (
        isinstance(factory, type)
        and factory.__name__ == "TracedCursorFactory"
        and factory.__module__ == "opentelemetry.instrumentation.psycopg"
        and factory.__bases__
    ):
        dbapi_connection.cursor_factory = factory.__bases__[0]  # the app's own, or Cursor


def traced_cursor(cursor: Any, seen: dict[type, bool]) -> bool:
    """Is ``cursor`` one an OpenTelemetry instrumentation made (cached per type)?"""
    kind = type(cursor)
    traced = seen.get(kind)
    if traced is None:
        traced = kind.__module__.startswith("opentelemetry.")
        if len(seen) < 64:
            seen[kind] = traced
    return traced


def idle(dbapi_connection: Any) -> bool:
    """True when the DB-API connection says no transaction is open (sqlite3's
    ``in_transaction``, psycopg's ``info.transaction_status``, asyncpg's
    ``is_in_transaction()``, also behind SQLAlchemy's pool proxies and async adapters,
    which hold it as ``dbapi_connection`` and ``_connection``); False when it cannot say.

    Asked at every commit: where the answer was found is remembered per connection type
    (the attribute path and which question answered), so later commits ask it directly
    instead of probing a pool proxy's ``__getattr__`` for every name."""
    found = _IDLE_PATHS.get(type(dbapi_connection))
    if found is not None:
        path, ask = found
        try:
            target = dbapi_connection
            for name in path:
                target = getattr(target, name)
            said = ask(target)
        except Exception:  # this one is shaped otherwise: search it
            said = None
        if said is not None:
            return bool(said)
    return _search_idle(dbapi_connection)


def _search_idle(dbapi_connection: Any) -> bool:
    seen: list[tuple[Any, tuple[str, ...]]] = [(dbapi_connection, ())]
    for connection, path in seen:
        try:
            if len(seen) < 4:
                for name in ("dbapi_connection", "_connection"):
                    inner = getattr(connection, name, None)
                    if inner is not None:
                        seen.append((inner, (*path, name)))
            ask = _question(connection)
            said = ask(connection) if ask is not None else None
        except Exception:  # a proxy that raises for what it does not have: ask the next
            continue
        if said is not None:
            if ask is not None and len(_IDLE_PATHS) < 64:
                _IDLE_PATHS[type(dbapi_connection)] = (path, ask)
            return bool(said)
    return False


def _question(connection: Any) -> Any:
    """Which question ``connection`` answers: a function of it -> bool, or None."""
    if isinstance(getattr(connection, "in_transaction", None), bool):
        return _not_in_transaction
    if type(connection).__module__.startswith("psycopg"):
        return _psycopg_idle
    if type(connection).__module__.startswith("asyncpg") and callable(
        getattr(connection, "is_in_transaction", None)
    ):
        return _asyncpg_idle
    return None


def _not_in_transaction(connection: Any) -> bool | None:
    in_transaction = connection.in_transaction
    return not in_transaction if isinstance(in_transaction, bool) else None


def _psycopg_idle(connection: Any) -> bool:
    return int(connection.info.transaction_status) == 0  # TransactionStatus.IDLE


def _asyncpg_idle(connection: Any) -> bool:
    return not connection.is_in_transaction()


# connection type -> (attribute path to what answers, the question it answers)
_IDLE_PATHS: dict[type, tuple[tuple[str, ...], Any]] = {}
