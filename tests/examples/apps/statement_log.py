"""SQLite's own count of the statements each request ran, for the sampled-vs-all test.

Contract: :func:`watch` is SQLite's trace callback for one connection
(``sqlite3.Connection.set_trace_callback``): SQLite calls it with every statement it
runs, below any ORM, driver wrapper or instrumentation, so it is an independent count.
:func:`request` brackets one request: the statements run in its context (its thread, or
its tasks and the worker threads they hand work to: a ``ContextVar``) are appended to
``STATEMENT_LOG`` (a file path from the environment) as one JSON line,
``{"method": ..., "path": ..., "start_ns": ..., "statements": [...]}``, written as the
request ends (lines are in the order requests end; ``start_ns`` orders them as they began).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_CURRENT: ContextVar[list[str] | None] = ContextVar("statements", default=None)
_PATH = os.environ.get("STATEMENT_LOG", "")


def _record(sql: str) -> None:
    statements = _CURRENT.get()
    if statements is not None:
        statements.append(sql)


def watch(connection: object) -> None:
    """Have SQLite report every statement ``connection`` runs."""
    if isinstance(connection, sqlite3.Connection):
        connection.set_trace_callback(_record)


@contextmanager
def request(method: str, path: str) -> Iterator[None]:
    statements: list[str] = []
    start_ns = time.time_ns()
    token = _CURRENT.set(statements)
    try:
        yield
    finally:
        _CURRENT.reset(token)
        line = json.dumps(
            {"method": method, "path": path, "start_ns": start_ns, "statements": statements}
        )
        if _PATH:
            with open(_PATH, "a", encoding="utf-8") as out:
                out.write(line + "\n")
