"""Known answers under real servers and the real PostgreSQL: gunicorn (WSGI) and uvicorn (ASGI).

A view runs ``SELECT pg_sleep(0.03)`` and burns 10 ms of pure-Python CPU, as a sync view
and as an async view. Expected, per request: the ``pg_sleep`` statement books ~30 ms of
database time (what the view measured around it, itself 30-60 ms on this shared
machine), the request's database time equals what the view measured around all its
database work (the connect too, when it opened a connection: under ASGI every request
runs its sync code in a fresh thread, so it opens one), and interpreter ~10 ms; each
within the issue's tolerance, 15% or 2 ms.

Interpreter time is the request's whole CPU outside waits, so it also holds Django's own
work around the view: ~0.4-0.6 ms. An async view under WSGI costs more: Django runs it
through ``async_to_sync``, which per request starts a thread and runs a new event loop
in it (``asyncio.run``: loop and selector set-up, teardown) while the WSGI thread waits:
~1.2-1.6 ms of CPU here with no burn at all. That is real per-request cost of that
deployment, and counted once: the loop thread's CPU is charged by the collector's
thread-pool hook (its loop has no timed task factory, so no step is counted twice), the
WSGI thread's clock does not advance while it blocks in ``async_to_sync`` (a lock
wait, not a spin), and the ``sync_to_async`` query runs back on the WSGI thread, booked
there once (test_middleware.py checks the CPU against the process's own clock, and that
the loop thread's CPU is not also booked as queueing). So the burn is measured as
interpreter(burn) - interpreter(same view, ``?burn_ms=0``) = 10 ms within the tolerance,
for every case; every case but the async view under gunicorn also books 10 ms itself.
Measured medians (5 requests each, ms, interpreter with burn / without): gunicorn sync
10.5 / 0.4, gunicorn async 11.5-12.1 / 1.2-1.6, uvicorn sync 10.6 / 0.5, uvicorn async
10.7 / 0.6. The exported OTLP JSON lines are read back through the offline pipeline
(``latency_ledger.read`` + ``latency_ledger.ledger``).
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import httpx
import pytest
from django_servers import DjangoServer, postgres_up

from latency_ledger.analyze import default_rules
from latency_ledger.ledger import book_trace
from latency_ledger.model import CallKind, Category
from latency_ledger.read import ReadStats, read_traces

pytestmark = [
    pytest.mark.server,
    pytest.mark.postgres,
    pytest.mark.skipif(not postgres_up(), reason="PostgreSQL on 127.0.0.1:5432 not reachable"),
]
MS = 1_000_000
REQUESTS = 5  # per view
BASELINE = 4  # per view with ?burn_ms=0, after those


def close_to(value_ns: float, expected_ns: float) -> bool:
    """The issue's tolerance: within 15% or 2 ms."""
    return abs(value_ns - expected_ns) <= max(0.15 * expected_ns, 2 * MS)


def booked_requests(directory: Path) -> list[Any]:
    rules = default_rules()
    stats = ReadStats()
    requests = [
        request
        for trace in read_traces([directory], stats=stats)
        for request in book_trace(trace, rules=rules).requests
    ]
    assert not stats.problems, stats.problems
    return sorted(requests, key=lambda r: r.start_ns)


@pytest.fixture(scope="module", params=["gunicorn", "uvicorn"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    kind = request.param
    out = tmp_path_factory.mktemp(f"traces-{kind}")
    target = (
        "ledger_site.wsgi:application" if kind == "gunicorn" else "ledger_site.asgi:application"
    )
    env = {
        "DJANGO_SETTINGS_MODULE": "ledger_site.settings",
        "LATENCY_LEDGER_OUTPUT_DIR": str(out),
        "LATENCY_LEDGER_KEEP_SPANS": "all",
    }
    truths: dict[str, list[dict[str, int]]] = {"/sync": [], "/async": []}
    with (
        DjangoServer(kind, target, env=env) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        # the collector starts on the first request and imports every plugin's library:
        # seconds on a loaded machine, so a warm-up request pays for it
        assert client.get("/warm", timeout=60).status_code == 200
        for path, bodies in truths.items():
            for i in range(REQUESTS + BASELINE):
                response = client.get(path, params={"burn_ms": 10 if i < REQUESTS else 0})
                assert response.status_code == 200, response.text
                bodies.append(response.json())
    return kind, booked_requests(out), truths


@pytest.mark.parametrize("path", ["/sync", "/async"])
def test_database_and_interpreter(served: Any, path: str) -> None:
    kind, requests, truths = served
    rows = [r for r in requests if r.endpoint == f"GET {path}"]
    assert len(rows) == REQUESTS + BASELINE, [r.endpoint for r in requests]
    baseline = statistics.median(r.ledger.interpreter_ns for r in rows[REQUESTS:])
    bodies = truths[path]  # the baseline requests' database time is checked too
    for row, body in zip(rows, bodies, strict=True):
        ledger = row.ledger
        assert ledger.cpu_measured
        # one span per statement, even with the psycopg instrumentation switched on too
        query = [c for c in row.calls if c.target == "SELECT pg_sleep(?)"]
        assert len(query) == 1, (kind, row.calls)
        assert query[0].kind is CallKind.QUERY
        # the sleep's wall time stretches when this shared machine is busy (PostgreSQL
        # itself waits for a CPU: 110 ms measured at load 11): the booked time is held
        # to what the view measured around it, and that to at least the 30 ms slept
        assert 30 * MS <= body["query_ns"] <= 300 * MS, (kind, body)
        # less what the view's thread waited for a CPU meanwhile: waiting, not database
        query_ns = body["query_ns"] - body["query_wait_ns"]
        assert close_to(query[0].booked_ns, query_ns), (kind, query, body)
        # Django opens a new connection (no pool): a connect, never a pool wait
        assert not [c for c in row.calls if c.kind is CallKind.POOL], (kind, row.calls)
        connects = [c for c in row.calls if c.kind is CallKind.CONNECT]
        assert (len(connects) == 1) == (body["connect_ns"] > 1 * MS), (kind, connects, body)
        assert all(c.category is Category.DATABASE for c in row.calls)
        truth = body["connect_ns"] - body["connect_wait_ns"] + query_ns
        assert close_to(ledger.database_ns, truth), (kind, ledger.database_ns / MS, truth / MS)
        assert ledger.network_ns == 0
    burned = rows[:REQUESTS]
    interpreter = statistics.median(r.ledger.interpreter_ns for r in burned)
    got = (kind, baseline / MS, [r.ledger.interpreter_ns / MS for r in burned])
    # the framework's own CPU, measured in this run by the same view without its burn:
    # small beside the burn, but its size is this machine's speed (1.8-3.2 ms here), so
    # the burn is judged over it, not against an absolute 10 ms
    assert baseline < 5 * MS, got
    assert close_to(interpreter - baseline, 10 * MS), got  # the burn itself
    assert all(row.collector_overhead_ns > 0 for row in rows)
