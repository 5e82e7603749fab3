"""An app whose login hashes with bcrypt (CPU in native code) beside a pure-Python burn.

Served by uvicorn in a subprocess and instrumented by one line; each endpoint answers
with the CPU its own work took on this thread (``time.thread_time_ns`` around it), the
ground truth the test compares the booked ledger with.
"""

from __future__ import annotations

import os
from time import thread_time_ns

import bcrypt
from fastapi import FastAPI

import latency_ledger.collect

SALT = bcrypt.gensalt(int(os.environ.get("BCRYPT_COST", "10")))

app = FastAPI(title="native-test-app")


@app.post("/login")
async def login() -> dict[str, int]:
    t0 = thread_time_ns()
    bcrypt.hashpw(b"correct horse battery staple", SALT)
    return {"work_cpu_ns": thread_time_ns() - t0}


@app.post("/login_sync")
def login_sync() -> dict[str, int]:
    """The same hash in a ``def`` endpoint: FastAPI runs it in a worker thread."""
    t0 = thread_time_ns()
    bcrypt.hashpw(b"correct horse battery staple", SALT)
    return {"work_cpu_ns": thread_time_ns() - t0}


@app.get("/burn")
async def burn() -> dict[str, int]:
    """50 ms of this thread's CPU in Python bytecode: arithmetic in a loop."""
    t0 = thread_time_ns()
    end = t0 + 50_000_000
    total = 0
    while thread_time_ns() < end:
        total += sum(i * i for i in range(64))
    return {"work_cpu_ns": thread_time_ns() - t0}


app = latency_ledger.collect.instrument(app)
