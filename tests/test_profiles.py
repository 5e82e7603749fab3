"""Profile buckets from hand-built frame data, and the per-endpoint accumulator."""

from __future__ import annotations

import json

import pytest

from latency_ledger.model import Span, SpanKind
from latency_ledger.profiles import (
    BUCKETS,
    PACKAGE_BUCKETS,
    PART_BUCKETS,
    ProfileAccumulator,
    frame_bucket,
    stack_bucket,
)

SITE = "/venv/lib/python3.11/site-packages/"
STDLIB = "/usr/lib/python3.11/"
ROOTS = (SITE, STDLIB)  # longest first, as collect/profiling.py builds them


def frame(function: str, path: str, line: int = 1) -> str:
    """A pyinstrument frame identifier."""
    return f"{function}\x00{path}\x00{line}"


@pytest.mark.parametrize(
    ("path", "bucket"),
    [
        # Django: ORM, its driver adapter, templates, forms/serializers, the rest framework
        (f"{SITE}django/db/models/query.py", "orm"),
        (f"{SITE}django/db/models/sql/compiler.py", "orm"),
        (f"{SITE}django/db/transaction.py", "orm"),
        (f"{SITE}django/db/backends/utils.py", "database_driver"),
        (f"{SITE}django/db/backends/postgresql/base.py", "database_driver"),
        (f"{SITE}django/template/base.py", "templates"),
        (f"{SITE}django/template/loader_tags.py", "templates"),
        (f"{SITE}django/template/backends/jinja2.py", "templates"),
        (f"{SITE}django/templatetags/static.py", "templates"),
        (f"{SITE}jinja2/environment.py", "templates"),
        (f"{SITE}markupsafe/__init__.py", "templates"),
        (f"{SITE}django/forms/forms.py", "validation_serialization"),
        (f"{SITE}django/core/serializers/json.py", "validation_serialization"),
        (f"{SITE}django/core/validators.py", "validation_serialization"),
        (f"{SITE}django/core/handlers/base.py", "framework"),
        (f"{SITE}django/urls/resolvers.py", "framework"),
        (f"{SITE}django/http/response.py", "framework"),
        (f"{SITE}django/utils/functional.py", "framework"),
        (f"{SITE}django/contrib/sessions/middleware.py", "framework"),
        (f"{SITE}rest_framework/serializers.py", "validation_serialization"),
        (f"{SITE}rest_framework/views.py", "framework"),
        # servers and glue
        (f"{SITE}asgiref/sync.py", "framework"),
        (f"{SITE}asgiref/current_thread_executor.py", "framework"),
        (f"{SITE}gunicorn/workers/gthread.py", "framework"),
        (f"{SITE}uvicorn/protocols/http/h11_impl.py", "framework"),
        (f"{SITE}daphne/server.py", "framework"),
        (f"{SITE}latency_ledger_django/middleware.py", "framework"),
        # unchanged: FastAPI stack, SQLAlchemy split, drivers
        (f"{SITE}starlette/routing.py", "framework"),
        (f"{SITE}sqlalchemy/orm/query.py", "orm"),
        (f"{SITE}sqlalchemy/engine/base.py", "database_driver"),
        (f"{SITE}psycopg/cursor.py", "database_driver"),
        (f"{STDLIB}sqlite3/dbapi2.py", "database_driver"),
        (f"{STDLIB}json/encoder.py", "validation_serialization"),
        (f"{SITE}pydantic/main.py", "validation_serialization"),
        # the app, an unknown library, the interpreter's generic code
        ("/srv/shop/storefront/views.py", "application"),
        ("/srv/shop/storefront/templatetags/money.py", "application"),
        ("<string>", "application"),
        (f"{SITE}somelib/core.py", "other"),
        (f"{STDLIB}threading.py", None),
        (f"{STDLIB}functools.py", None),
        ("<frozen importlib._bootstrap>", None),
    ],
)
def test_frame_bucket(path: str, bucket: str | None) -> None:
    assert frame_bucket(path, ROOTS) == bucket


def test_every_bucket_named_is_a_known_bucket() -> None:
    named = set(PACKAGE_BUCKETS.values()) | {bucket for _, bucket in PART_BUCKETS}
    assert named <= set(BUCKETS)
    # longest prefix first, so django/db/backends/ is tried before django/db/
    lengths = [len(prefix) for prefix, _ in PART_BUCKETS]
    assert lengths == sorted(lengths, reverse=True)


GUNICORN_VIEW = [
    frame("run", f"{SITE}gunicorn/workers/gthread.py"),
    frame("handle_request", f"{SITE}gunicorn/workers/gthread.py"),
    frame("__call__", f"{SITE}django/core/handlers/wsgi.py"),
    frame("inner", f"{SITE}django/core/handlers/exception.py"),
    frame("__call__", f"{SITE}latency_ledger_django/middleware.py"),
    frame("order_detail", "/srv/shop/storefront/views.py"),
]


@pytest.mark.parametrize(
    ("inner", "bucket"),
    [
        ([], "application"),  # in the view itself
        ([frame("get_response", f"{SITE}django/core/handlers/base.py")], "framework"),
        (
            [
                frame("__iter__", f"{SITE}django/db/models/query.py"),
                frame("execute_sql", f"{SITE}django/db/models/sql/compiler.py"),
                frame("execute", f"{SITE}django/db/backends/utils.py"),
                frame("execute", f"{SITE}psycopg/cursor.py"),
                frame("wait", f"{STDLIB}selectors.py"),  # a framework module: decides
            ],
            "framework",
        ),
        (
            [
                frame("__iter__", f"{SITE}django/db/models/query.py"),
                frame("execute", f"{SITE}django/db/backends/utils.py"),
                frame("execute", f"{SITE}psycopg/cursor.py"),
            ],
            "database_driver",
        ),
        (
            [
                frame("__iter__", f"{SITE}django/db/models/query.py"),
                frame("from_db", f"{SITE}django/db/models/base.py"),
                frame("__init__", f"{SITE}django/db/models/base.py"),
            ],
            "orm",
        ),
        (
            [
                frame("render", f"{SITE}django/shortcuts.py"),
                frame("render", f"{SITE}django/template/base.py"),
                frame("render", f"{SITE}django/template/defaulttags.py"),
                frame("__iter__", f"{SITE}django/db/models/query.py"),
                frame("_fetch_all", f"{SITE}django/db/models/query.py"),
            ],
            "orm",  # the query a template's loop runs is ORM time, not rendering
        ),
        (
            [
                frame("render", f"{SITE}django/template/base.py"),
                frame("render_annotated", f"{SITE}django/template/base.py"),
                frame("escape", f"{SITE}django/utils/html.py"),
                frame("wrapper", f"{STDLIB}functools.py"),  # generic: defers outward
            ],
            "framework",  # django.utils: the innermost frame that decides
        ),
        (
            [
                frame("render", f"{SITE}django/template/base.py"),
                frame("money", "/srv/shop/storefront/templatetags/money.py"),
            ],
            "application",  # the app's own template tag
        ),
        (
            [
                frame("render", f"{SITE}django/template/base.py"),
                frame("_compile", f"{STDLIB}re/_compiler.py"),
            ],
            "templates",
        ),
    ],
)
def test_stack_bucket_wsgi(inner: list[str], bucket: str) -> None:
    assert stack_bucket([*GUNICORN_VIEW, *inner], ROOTS) == bucket


def test_stack_bucket_async_view_under_wsgi() -> None:
    # async_to_sync: the loop thread runs the view; asgiref and asyncio around it
    loop_thread = [
        frame("_bootstrap", f"{STDLIB}threading.py"),
        frame("_worker", f"{STDLIB}concurrent/futures/thread.py"),
        frame("run", f"{STDLIB}asyncio/runners.py"),
        frame("main_wrap", f"{SITE}asgiref/sync.py"),
    ]
    assert stack_bucket(loop_thread, ROOTS) == "framework"
    view = [*loop_thread, frame("health", "/srv/shop/storefront/views.py")]
    assert stack_bucket(view, ROOTS) == "application"
    # the WSGI thread waiting in async_to_sync: generic threading code defers to asgiref
    waiting = [
        *GUNICORN_VIEW[:5],
        frame("__call__", f"{SITE}asgiref/sync.py"),
        frame("run_until_future", f"{SITE}asgiref/current_thread_executor.py"),
        frame("wait", f"{STDLIB}threading.py"),
    ]
    assert stack_bucket(waiting, ROOTS) == "framework"
    assert stack_bucket(["[await]", frame("x", f"{STDLIB}threading.py")], ROOTS) == "other"


def test_accumulator_reads_the_templates_bucket() -> None:
    span = Span(
        trace_id="1" * 32,
        span_id="2" * 16,
        parent_span_id="",
        name="GET /orders/<int:order_id>",
        kind=SpanKind.SERVER,
        start_ns=0,
        end_ns=10,
        is_error=False,
        attributes={"http.request.method": "GET", "http.route": "/orders/<int:order_id>"},
        service="shop",
    )
    raw = json.dumps(
        {"samples": 4, "buckets": {"templates": 0.003, "orm": 0.001}, "top": [["render", 0.003]]}
    )
    accumulator = ProfileAccumulator()
    accumulator.add(span, raw)
    summary = accumulator.summary("shop", "GET /orders/<int:order_id>")
    assert summary is not None
    assert summary.bucket_fraction == pytest.approx({"templates": 0.75, "orm": 0.25})
