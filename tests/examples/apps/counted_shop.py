"""The FastAPI example shop as ``examples/shop/app.py`` serves it (instrumented when
``LATENCY_LEDGER=1``), with SQLite's count of each request's statements logged beside it
(:mod:`statement_log`). The count wraps the whole app, collector included."""

from __future__ import annotations

from typing import Any

import statement_log
from shop.app import build_app
from sqlalchemy import Engine, event


@event.listens_for(Engine, "connect")
def _watch(dbapi_connection: Any, _record: Any) -> None:
    statement_log.watch(dbapi_connection)


_inner = build_app()


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _inner(scope, receive, send)
        return
    with statement_log.request(scope["method"], scope["path"]):
        await _inner(scope, receive, send)
