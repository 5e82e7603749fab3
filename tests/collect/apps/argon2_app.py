"""An app whose login hashes with argon2 in 4 lanes of the library's own threads, beside a
pure-Python burn.

Served by uvicorn in a subprocess and instrumented by one line. Each endpoint answers with
what its own work took, measured here and not by the collector: this thread's CPU
(``time.thread_time_ns``) and the whole process's (``time.process_time_ns``) around the
work. With one client at a time, the process's CPU around the hash less this thread's is
the CPU of argon2's threads (and the few microseconds the export thread may run then).
"""

from __future__ import annotations

from time import perf_counter_ns, process_time_ns, thread_time_ns
from typing import Any

import argon2
import sqlalchemy
from fastapi import FastAPI

import latency_ledger.collect

# argon2-cffi's defaults but 4 lanes: each hash runs in 4 threads argon2 starts
HASHER = argon2.PasswordHasher(time_cost=3, memory_cost=32768, parallelism=4)

app = FastAPI(title="argon2-test-app")


def _hash() -> dict[str, int]:
    w0, t0, p0 = perf_counter_ns(), thread_time_ns(), process_time_ns()
    HASHER.hash("correct horse battery staple")
    p1, t1, w1 = process_time_ns(), thread_time_ns(), perf_counter_ns()
    return {"thread_cpu_ns": t1 - t0, "process_cpu_ns": p1 - p0, "wall_ns": w1 - w0}


@app.post("/hash")
async def hash_async() -> dict[str, int]:
    """On the event loop's thread (blocking it, as a login often does)."""
    return _hash()


@app.post("/hash_sync")
def hash_sync() -> dict[str, int]:
    """In a worker thread (FastAPI runs ``def`` endpoints there)."""
    return _hash()


@app.get("/burn")
async def burn() -> dict[str, int]:
    """30 ms of this thread's CPU in Python bytecode."""
    t0, p0 = thread_time_ns(), process_time_ns()
    end = t0 + 30_000_000
    total = 0
    while thread_time_ns() < end:
        total += sum(i * i for i in range(64))
    return {"thread_cpu_ns": thread_time_ns() - t0, "process_cpu_ns": process_time_ns() - p0}


ENGINE: list[Any] = []  # made at the first request, after the collector started
# SQLite runs its engine on the calling thread: this query is ~30-60 ms of CPU inside a
# database span (a sum over a recursive sequence, nothing read from disk)
HEAVY = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) "
    "SELECT sum(x) FROM c"
)


@app.get("/sqlite")
def sqlite_query() -> dict[str, int]:
    """One CPU-heavy SQLite statement through SQLAlchemy (the plugin's database span)."""
    if not ENGINE:
        ENGINE.append(sqlalchemy.create_engine("sqlite://"))
    with ENGINE[0].connect() as conn:
        t0, p0 = thread_time_ns(), process_time_ns()
        conn.execute(sqlalchemy.text(HEAVY)).scalar()
        t1, p1 = thread_time_ns(), process_time_ns()
    return {"thread_cpu_ns": t1 - t0, "process_cpu_ns": p1 - p0}


app = latency_ledger.collect.instrument(app)
