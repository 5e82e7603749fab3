from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, JsonResponse


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


def query() -> dict[str, int]:
    """Wall times around the connect and the query, and the part of each this thread
    waited for a CPU (this shared machine's other load; not database time)."""
    w0 = cpu_wait_ns()
    t0 = time.perf_counter_ns()
    connection.ensure_connection()  # a new connection is database time too (a connect span)
    t1 = time.perf_counter_ns()
    w1 = cpu_wait_ns()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(0.03)")
        cursor.fetchone()
    t2 = time.perf_counter_ns()
    return {
        "connect_ns": t1 - t0,
        "connect_wait_ns": w1 - w0,
        "query_ns": t2 - t1,
        "query_wait_ns": cpu_wait_ns() - w1,
    }


def _burn_ms(request: HttpRequest) -> float:
    """10 ms unless ``?burn_ms=`` says otherwise (0: the view's own cost, for a baseline)."""
    return min(50.0, float(request.GET.get("burn_ms", "10")))


def sync_view(request: HttpRequest) -> JsonResponse:
    truth = query()
    burn_cpu(_burn_ms(request))
    return JsonResponse(truth)


async def async_view(request: HttpRequest) -> JsonResponse:
    truth = await sync_to_async(query)()
    burn_cpu(_burn_ms(request))
    return JsonResponse(truth)


def warm(request: HttpRequest) -> JsonResponse:
    """The first database use imports the backend: CPU a test's ground truth must not hold."""
    return JsonResponse(query())


def hello(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"hello": "world"})


# pg_sleep(0.03), answering with the database's own clock of the statement (received to
# done, as its statement log would time it): the independent truth for its database time
SLEEP_SQL = (
    "SELECT (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1e9)::bigint"
    " FROM pg_sleep(0.03)"
)


def timed_query(sql: str, values: list[object] | None = None) -> tuple[int, int, int]:
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
    with connection.cursor() as cursor:
        cursor.execute(sql)
        row = cursor.fetchone()
    wall = time.perf_counter_ns() - t0
    waited = cpu_wait_ns() - w0
    outer_wall = time.perf_counter_ns() - t_outer
    if values is not None and row is not None:  # the row's first value (``values``)
        values.append(row[0])
    return wall, waited, outer_wall


def busy_view(request: HttpRequest) -> JsonResponse:
    """10 ms of Python CPU and 10 fast queries, the view's own clock around each query."""
    each = []
    for _ in range(10):
        burn_cpu(1)
        each.append(timed_query("SELECT 1"))
    return JsonResponse({"each": each})


def busy_sleep(request: HttpRequest) -> JsonResponse:
    """10 ms of Python CPU and one ``SELECT pg_sleep(0.03)``, with the database's own
    clock of the statement (``server_ns``)."""
    burn_cpu(10)
    server: list[object] = []
    each = [timed_query(SLEEP_SQL, server)]
    return JsonResponse({"each": each, "server_ns": server[0]})
