"""The app under test, served by uvicorn in a subprocess and instrumented by one line.

Settings come from the environment (``LATENCY_LEDGER_*`` for the collector, ``STUB_URL``
and ``PG_DSN`` for the test's services), so the test drives it like a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import os
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import psycopg
from fastapi import FastAPI
from opentelemetry import trace

import latency_ledger.collect

DSN = os.environ.get("PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
STUB_URL = os.environ.get("STUB_URL", "http://127.0.0.1:1")
STUB_HOST, STUB_PORT = urlsplit(STUB_URL).hostname or "", urlsplit(STUB_URL).port or 80


def burn_cpu(ms: float) -> None:
    """Pure-Python work until this thread has run ``ms`` milliseconds of CPU."""
    end = time.thread_time_ns() + int(ms * 1_000_000)
    x = 0
    while time.thread_time_ns() < end:
        x += 1


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = app.state.sync_db = None
    if os.environ.get("USE_PG") == "1":
        app.state.db = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
        app.state.sync_db = psycopg.connect(DSN, autocommit=True)
    # made once: a client builds an SSL context, milliseconds of CPU. aiohttp, not httpx,
    # for the async calls: httpx.AsyncClient spends ~2.7 ms of CPU per call here, much of
    # it outside its span, which would blur the 10 ms interpreter known answer
    app.state.http = aiohttp.ClientSession()
    app.state.sync_http = http.client.HTTPConnection(STUB_HOST, STUB_PORT)
    yield
    if app.state.db is not None:
        await app.state.db.close()
        app.state.sync_db.close()
    await app.state.http.close()
    app.state.sync_http.close()


app = FastAPI(title="ledger-test-app", lifespan=lifespan)


# Each endpoint answers with the wall time of its own calls as it measured them, less
# what its thread waited for a CPU meanwhile (the collector books that as waiting): the
# ground truth the test compares the booked ledger with.


def cpu_wait_ns() -> int:
    """How long this thread has waited for a CPU (the kernel's scheduler statistics): on
    a shared machine, part of any wall time measured around a call, and not the call's."""
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[1])


# On the loop's thread too: the loop idle in its poll wakes for the reply and may then
# wait for a CPU, which the collector books as waiting.
async def query() -> tuple[int, int]:
    """(wall ns, wall ns less the CPU waits)"""
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    async with app.state.db.cursor() as cur:
        await cur.execute("SELECT pg_sleep(0.03)")
    wall = time.perf_counter_ns() - t0
    return wall, wall - (cpu_wait_ns() - w0)


async def call() -> int:
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    async with app.state.http.get(f"{STUB_URL}/slow") as response:
        await response.read()
    return time.perf_counter_ns() - t0 - (cpu_wait_ns() - w0)


# ``burn_ms=0``: the same calls without the burn, the framework's own CPU (the test's
# reference, measured in the same run, so no constant depends on this machine's speed)
@app.get("/sequential")
async def sequential(burn_ms: int = 10) -> dict[str, int]:
    db_wall_ns, db_ns = await query()
    burn_cpu(burn_ms)
    http_ns = await call()
    return {"db_ns": db_ns, "db_wall_ns": db_wall_ns, "http_ns": http_ns}


@app.get("/concurrent")
async def concurrent(burn_ms: int = 10) -> dict[str, int]:
    burn_cpu(burn_ms)
    (db_wall_ns, db_ns), http_ns = await asyncio.gather(query(), call())
    return {"db_ns": db_ns, "db_wall_ns": db_wall_ns, "http_ns": http_ns}


@app.get("/sync")
def sync(burn_ms: int = 10) -> dict[str, int]:
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    app.state.sync_db.execute("SELECT pg_sleep(0.03)")
    db_wall_ns = time.perf_counter_ns() - t0
    db_ns = db_wall_ns - (cpu_wait_ns() - w0)
    burn_cpu(burn_ms)
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    sync_call()  # an SDK span: the collector's span processor measures its CPU waits too
    http_ns = time.perf_counter_ns() - t0 - (cpu_wait_ns() - w0)
    return {"db_ns": db_ns, "db_wall_ns": db_wall_ns, "http_ns": http_ns}


def sync_call() -> None:
    """http.client with a hand-made CLIENT span: httpx's and requests' sync clients spend
    ~1 ms of CPU per call outside their spans here, which would blur the known answer."""
    tracer = trace.get_tracer("ledger-test-app")
    attributes = {"http.request.method": "GET", "url.full": f"{STUB_URL}/slow"}
    with tracer.start_as_current_span("GET", kind=trace.SpanKind.CLIENT, attributes=attributes):
        conn = app.state.sync_http
        conn.request("GET", "/slow")
        conn.getresponse().read()


@app.get("/burn")
async def burn() -> dict[str, int]:
    burn_cpu(10)
    return {"ok": 1}


@app.get("/sync_burn")
def sync_burn() -> dict[str, int]:
    burn_cpu(10)
    return {"ok": 1}


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}


app = latency_ledger.collect.instrument(app)
