"""A busy app for the interpreter-wait known answers (``test_busy_io.py``).

``/fast`` runs one ``SELECT 1`` on the event loop; ``/block`` blocks the loop with 100 ms
of CPU; ``/sync_view`` is a ``def`` endpoint (a worker thread) doing 10 ms of Python CPU
and 10 fast queries, ``/sync_sleep`` 10 ms of CPU and one ``SELECT pg_sleep(0.03)`` that
also answers with the database's own clock of the statement (``server_ns``). Each
answers with the wall time of its queries as it measured them around each call (the
database's time plus any wait to resume Python), and the part of it its thread waited
for a CPU (``/proc/thread-self/schedstat``: this shared machine's other load).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator

import psycopg
from fastapi import FastAPI

import latency_ledger.collect

DSN = os.environ.get("PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
_local = threading.local()  # one connection per worker thread: no lock shared between them


def burn_cpu(ms: float) -> None:
    """Pure-Python work until this thread has run ``ms`` milliseconds of CPU."""
    end = time.thread_time_ns() + int(ms * 1_000_000)
    x = 0
    while time.thread_time_ns() < end:
        x += 1


def cpu_wait_ns() -> int:
    """How long this thread has waited for a CPU (the kernel's scheduler statistics): on
    a shared machine, part of any wall time measured around a call."""
    with open("/proc/thread-self/schedstat", "rb") as f:
        return int(f.read().split()[1])


# pg_sleep(0.03), answering with the database's own clock of the statement (received to
# done, as its statement log would time it): the independent truth for its database time
SLEEP_SQL = (
    "SELECT (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1e9)::bigint"
    " FROM pg_sleep(0.03)"
)


def timed_query(
    conn: psycopg.Connection[tuple[object, ...]], sql: str, values: list[object] | None = None
) -> tuple[int, int, int]:
    """(wall ns around the query; the part of it this thread waited for a CPU; a wall
    time around both).

    The CPU-wait reads sit just outside the first wall clock and just inside the
    second: wall less wait can only come out short (a wait at the reads' edges counted),
    the wider wall less wait only long (a wait just inside it missed). Each test takes
    the one that keeps its check conservative. Only two reads: each opens a file, which
    lets go of the interpreter lock, and under contention getting it back takes a while,
    which must stay out of the first clock."""
    t_outer = time.perf_counter_ns()
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    row = conn.execute(sql).fetchone()
    wall = time.perf_counter_ns() - t0
    waited = cpu_wait_ns() - w0
    outer_wall = time.perf_counter_ns() - t_outer
    if values is not None and row is not None:  # the row's first value (``values``)
        values.append(row[0])
    return wall, waited, outer_wall


def sync_db() -> psycopg.Connection[tuple[object, ...]]:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True)
    return conn


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.db = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    yield
    await app.state.db.close()


app = FastAPI(title="busy-app", lifespan=lifespan)


@app.get("/fast")
async def fast() -> dict[str, object]:
    t_outer = time.perf_counter_ns()  # as timed_query reads them
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    async with app.state.db.cursor() as cur:
        await cur.execute("SELECT 1")
        await cur.fetchone()
    wall = time.perf_counter_ns() - t0
    # the loop's thread's CPU waits meanwhile: this shared machine's load (alone, the
    # loop runs nothing else during the query; contended, it is not queueing)
    waited = cpu_wait_ns() - w0
    return {"each": [(wall, waited, time.perf_counter_ns() - t_outer)]}


@app.get("/block")
async def block() -> dict[str, int]:
    burn_cpu(100)
    return {"ok": 1}


@app.get("/sync_view")
def sync_view() -> dict[str, object]:
    t0 = time.thread_time_ns()
    conn = sync_db()
    each = []
    for _ in range(10):
        burn_cpu(1)
        each.append(timed_query(conn, "SELECT 1"))
    return {"each": each, "cpu_ns": time.thread_time_ns() - t0}


@app.get("/sync_sleep")
def sync_sleep() -> dict[str, object]:
    conn = sync_db()
    t0 = time.thread_time_ns()
    burn_cpu(10)
    server: list[object] = []
    each = [timed_query(conn, SLEEP_SQL, server)]
    return {"each": each, "cpu_ns": time.thread_time_ns() - t0, "server_ns": server[0]}


app = latency_ledger.collect.instrument(app)
