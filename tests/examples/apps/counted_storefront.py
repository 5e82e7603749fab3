"""The Django example shop's WSGI app (``examples/django``, instrumented when
``LATENCY_LEDGER=1``), with SQLite's count of each request's statements logged beside it
(:mod:`statement_log`). The count wraps the whole app, collector included."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import statement_log
from django.db.backends.signals import connection_created
from django_shop.wsgi import application as _inner


def _watch(sender: Any, connection: Any, **kwargs: Any) -> None:
    statement_log.watch(connection.connection)


connection_created.connect(_watch)


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    with statement_log.request(environ["REQUEST_METHOD"], environ["PATH_INFO"]):
        return _inner(environ, start_response)  # type: ignore[no-any-return]
