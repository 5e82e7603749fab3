"""The thread-server queueing source: the process's CPU clock, and a request's own share."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Iterator

import pytest

from latency_ledger.collect.accounting import CURRENT, Account, begin_segment, end_segment
from latency_ledger.collect.hooks import Hooks
from latency_ledger.collect.threads import PROCESS_CPU, ProcessCpu, request_cpu_ns

MS = 1_000_000


def burn_cpu(ms: float) -> None:
    """Pure-Python work until this thread has run ``ms`` milliseconds of CPU."""
    end = time.thread_time_ns() + int(ms * MS)
    x = 0
    while time.thread_time_ns() < end:
        x += 1


def burn_in_thread(ms: float) -> None:
    thread = threading.Thread(target=burn_cpu, args=(ms,))
    thread.start()
    thread.join()


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    h.install()
    yield h
    h.uninstall()


def test_busy_counts_every_thread_of_the_process() -> None:
    # another thread's 20 ms (it has exited by the second read) are on the process clock;
    # this thread only waited in join, which advances neither clock
    before = PROCESS_CPU.busy_ns
    own0 = time.thread_time_ns()
    burn_in_thread(20)
    own = time.thread_time_ns() - own0
    busy = PROCESS_CPU.busy_ns - before
    assert busy >= 20 * MS
    assert busy - own >= 20 * MS
    assert busy < 20 * MS + own + 20 * MS  # not wall time of the whole process run
    assert ProcessCpu().busy_ns >= before  # stateless: any instance reads the same clock


def test_other_threads_cpu_is_the_queueing_candidate() -> None:
    # expected: own 5 ms, another thread's 15 ms in between -> candidate ~15 ms, never
    # the 5 ms this request burned itself
    acct = Account(PROCESS_CPU)  # type: ignore[arg-type]  # duck-types LoopState
    own0 = time.thread_time_ns()
    burn_cpu(5)
    burn_in_thread(15)
    acct.loop_ns = request_cpu_ns(time.thread_time_ns() - own0, acct.cpu_ns)
    candidate = acct.queueing_candidate_ns()
    assert 15 * MS <= candidate <= 17 * MS, candidate / MS


def test_helper_thread_of_the_request_is_not_queueing(hooks: Hooks) -> None:
    # An async view under WSGI: the serving thread blocks while a helper thread (asgiref's
    # event-loop thread, submitted to a ThreadPoolExecutor) does the request's 10 ms. The
    # hooks charge the helper's CPU to the request; it must not also be other work.
    acct = Account(PROCESS_CPU)  # type: ignore[arg-type]
    token = CURRENT.set(acct)
    own0 = time.thread_time_ns()
    begin_segment(acct)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(burn_cpu, 10).result()
    finally:
        end_segment()
        CURRENT.reset(token)
    own = time.thread_time_ns() - own0
    assert own < 5 * MS  # the serving thread mostly waited
    assert acct.cpu_ns >= 10 * MS  # the helper's CPU is the request's interpreter time
    without_helpers = acct.queueing_candidate_ns() - own
    assert without_helpers >= 9 * MS  # what counting only the serving thread would say
    acct.loop_ns = request_cpu_ns(own, acct.cpu_ns)
    assert acct.queueing_candidate_ns() < 2 * MS, acct.queueing_candidate_ns() / MS


@pytest.mark.parametrize(
    ("own", "charged", "expected"),
    [
        (12, 10, 12),  # served by its own thread: its clock, waits (driver CPU) included
        (2, 11, 11),  # mostly in a helper thread: what was charged to it
        (0, 0, 0),
    ],
)
def test_request_cpu_ns(own: int, charged: int, expected: int) -> None:
    assert request_cpu_ns(own, charged) == expected
