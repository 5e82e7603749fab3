"""Tails of I/O spans: the typical I/O time, the tail it leaves, and the clocks bounding it.

Hand-built numbers; the known answers on real servers are in ``test_busy_io.py``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import pytest

from latency_ledger.collect.accounting import (
    ACTIVITY,
    PER_THREAD,
    Account,
    Activity,
    begin_segment,
    end_segment,
    enter_python,
    leave_python,
    pause_for_wait,
    resume_after_wait,
)
from latency_ledger.collect.finishing import export_share_ns
from latency_ledger.collect.tails import MAX_KEYS, TypicalIo, read_run_delay_ns, span_key
from latency_ledger.ledger import tail_overlap

MS = 1_000_000

try:  # the compiled clocks (plugins/speedups) are held to the pure-Python ones' tests
    import latency_ledger_speedups as speedups
except ImportError:  # pragma: no cover - the dev environment installs it
    speedups = None  # type: ignore[assignment]
ACTIVITIES = [Activity] + ([speedups.Activity] if speedups is not None else [])
RUN_DELAYS = [read_run_delay_ns] + ([speedups.run_delay_ns] if speedups is not None else [])


@pytest.mark.skipif(
    bool(os.environ.get("LATENCY_LEDGER_PURE_PYTHON")), reason="the pure-Python run, asked for"
)
def test_the_compiled_clocks_are_the_ones_the_collector_runs() -> None:
    # installed in the dev environment, so the known-answer tests run them
    from latency_ledger.collect import tails

    assert speedups is not None
    from latency_ledger.collect import hooks, light, steps

    assert type(ACTIVITY) is speedups.Activity
    assert tails.run_delay_ns is speedups.run_delay_ns
    assert steps.TimedCoroutine is speedups.TimedCoroutine
    assert hooks._ThreadCall is speedups.ThreadCall
    assert (light.wait_begins, light.wait_ends) == (
        speedups.pause_and_start,
        speedups.resume_and_end,
    )


KEY = ("SELECT", "SELECT 1")


def test_a_contended_span_with_no_clean_sample_books_its_whole_bound() -> None:
    # never a guess as database: with nothing known, all that others ran is the tail
    assert TypicalIo().tail(KEY, 10 * MS, 6 * MS) == (6 * MS, 0, 6 * MS)


def test_a_clean_span_books_no_tail_and_teaches_the_typical_time() -> None:
    typical = TypicalIo()
    assert typical.tail(KEY, 2 * MS, MS // 10) == (0, 0, MS // 10)  # others ran 5%: clean
    assert typical.typical[KEY] == 2 * MS
    # contended: the I/O took its typical 2 ms, the rest (within the bound) is the tail
    assert typical.tail(KEY, 30 * MS, 25 * MS) == (25 * MS, 0, 25 * MS)
    assert typical.tail(KEY, 30 * MS, 29 * MS) == (28 * MS, 0, 29 * MS)
    # the bound caps it: what others did not run is not queueing
    assert typical.tail(KEY, 30 * MS, 10 * MS) == (10 * MS, 0, 10 * MS)
    # a span shorter than the typical time has no tail
    assert typical.tail(KEY, MS, 900_000) == (0, 0, 900_000)
    # the OS kept the thread off the CPU 20 ms: not I/O, not queueing; of the other 10,
    # the I/O's typical 2 ms and 8 ms of the 9 others ran
    assert typical.tail(KEY, 30 * MS, 9 * MS, 20 * MS) == (8 * MS, 20 * MS, 9 * MS)


def test_the_typical_time_is_the_trimmed_mean_of_recent_clean_spans() -> None:
    typical = TypicalIo()
    for ms in (1, 1, 1, 1, 100):  # one cold call is trimmed away
        typical.tail(KEY, ms * MS, 0)
    assert typical.typical[KEY] == MS
    for ms in (1, 1, 4, 4, 1, 1, 4, 4, 1, 100):  # skewed: the mean, not the median (1)
        typical.tail(KEY, ms * MS, 0)
    # all 15: nine 1s, four 4s, two 100s; less 3 off each end: six 1s and three 4s
    assert typical.typical[KEY] == 2 * MS
    for _ in range(20):  # the statement became slower: only the last 15 count
        typical.tail(KEY, 5 * MS, 0)
    assert typical.typical[KEY] == 5 * MS
    assert ("SELECT", "SELECT 2") not in typical.typical


def test_bounds_are_clipped_and_memory_is_bounded() -> None:
    typical = TypicalIo()
    assert typical.tail(KEY, 5 * MS, -3) == (0, 0, 0)
    assert typical.tail(KEY, 5 * MS, 9 * MS)[2] == 5 * MS
    assert typical.tail(KEY, 5 * MS, 0, 9 * MS) == (0, 5 * MS, 0)
    for i in range(MAX_KEYS + 5):
        typical.tail(("SELECT", str(i)), MS, 0)
    assert len(typical.typical) <= MAX_KEYS


def test_span_key_reads_the_statement_or_the_url() -> None:
    assert span_key("SELECT", {"db.statement": "SELECT 1"}) == ("SELECT", "SELECT 1")
    assert span_key("q", {"db.query.text": "SELECT 2", "db.statement": "x"}) == ("q", "SELECT 2")
    assert span_key("GET", {"url.full": "http://x/y"}) == ("GET", "http://x/y")
    assert span_key("op", {}) == ("op", "")


def test_tail_overlap_counts_only_what_the_span_booked() -> None:
    # a span 0..100 whose last 30 were the tail, booked whole
    assert tail_overlap(30, 0, 100, 100) == 30
    # booked only up to 80 (a sibling finishing later won 80..100): 70..80 of the tail
    assert tail_overlap(30, 0, 80, 100) == 10
    # booked 0..50: the tail (70..100) is all outside
    assert tail_overlap(30, 0, 50, 100) == 0
    # a tail longer than the booked part is clipped to it
    assert tail_overlap(500, 20, 100, 100) == 80
    assert tail_overlap(0, 0, 100, 100) == 0


@pytest.mark.parametrize("make", ACTIVITIES)
def test_activity_counts_wall_time_any_request_thread_runs_python(make: Any) -> None:
    clock = make()
    assert clock.read() == 0
    clock.enter()
    clock.enter()
    time.sleep(0.002)
    clock.leave()
    time.sleep(0.002)
    clock.leave()
    busy = clock.read()
    assert 4 * MS <= busy < 60 * MS  # both threads' overlap counted once
    time.sleep(0.002)
    assert clock.read() == busy  # idle: the clock stands still
    clock.leave()  # unbalanced: ignored
    assert clock.count == 0


@pytest.mark.parametrize("make", ACTIVITIES)
def test_a_requests_own_threads_are_left_out_of_its_activity_bound(make: Any) -> None:
    """A request's helper thread blocked on the request's own statement (Django's
    async_to_sync loop thread) is not another request holding the lock; another
    request's thread is."""
    clock = make()
    mine, theirs = Account(None), Account(None)
    clock.enter(mine)  # the request's helper thread, for the whole span
    time.sleep(0.003)
    assert clock.read() >= 3 * MS
    assert clock.read_others(mine) == 0
    assert clock.read_others(theirs) >= 3 * MS
    clock.enter(theirs)  # another request's thread runs Python meanwhile
    time.sleep(0.003)
    clock.leave(theirs)
    clock.leave(mine)
    others = clock.read_others(mine)
    assert 3 * MS <= others <= clock.read() - 3 * MS  # theirs' stretch, not mine's alone
    assert clock.read_others(theirs) >= 6 * MS  # mine was in Python all along
    assert (clock.count, clock.active, clock.solo) == (0, {}, None)
    time.sleep(0.002)
    assert clock.read_others(mine) == others  # idle: the clock stands still


def test_a_wait_span_takes_the_thread_out_of_python_until_it_ends() -> None:
    acct = Account(None)
    seen: list[int] = []

    def request_thread() -> None:
        begin_segment(acct)
        enter_python()
        try:
            seen.append(ACTIVITY.count)
            pause_for_wait(acct)  # the thread waits on I/O: not in Python
            seen.append(ACTIVITY.count)
            resume_after_wait(acct)
            seen.append(ACTIVITY.count)
        finally:
            leave_python()
            end_segment()
        seen.append(ACTIVITY.count)
        seen.append(int(PER_THREAD.seg.active))

    before = ACTIVITY.count
    thread = threading.Thread(target=request_thread)
    thread.start()
    thread.join()
    assert [n - before for n in seen[:4]] == [1, 0, 1, 0]
    assert seen[4] == 0


@pytest.mark.parametrize("run_delay_ns", RUN_DELAYS)
def test_run_delay_is_this_threads_wait_for_a_cpu(run_delay_ns: Any) -> None:
    first = run_delay_ns()
    assert first >= 0
    assert run_delay_ns() >= first  # a counter: never goes down


@pytest.mark.parametrize("run_delay_ns", RUN_DELAYS)
def test_run_delay_is_the_kernels_figure_read_in_each_thread(run_delay_ns: Any) -> None:
    # The truth: the second field of the calling thread's own schedstat, read plainly
    # before and after; a thread's first read opens its own file (not the main thread's).

    def kernel() -> int:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])

    seen: list[tuple[int, int, int]] = []

    def read_three() -> None:
        for _ in range(3):
            before = kernel()
            ours = run_delay_ns()
            seen.append((before, ours, kernel()))

    read_three()
    worker = threading.Thread(target=read_three)
    worker.start()
    worker.join()
    assert len(seen) == 6
    for before, ours, after in seen:
        assert before <= ours <= after


@pytest.mark.parametrize("run_delay_ns", RUN_DELAYS)
def test_a_forked_child_reads_its_own_run_delay_not_its_parents(run_delay_ns: Any) -> None:
    # The truth: the child's own schedstat, read plainly around our read (a new process's
    # thread starts near 0; the parent's, which opened its file first, has run all along).

    run_delay_ns()  # the parent's thread has its file open now
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if our read lies between the kernel's two
        try:
            with open("/proc/thread-self/schedstat") as f:
                before = int(f.read().split()[1])
            ours = run_delay_ns()
            with open("/proc/thread-self/schedstat") as f:
                after = int(f.read().split()[1])
            os._exit(0 if before <= ours <= after else 1)
        finally:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_export_threads_cpu_is_spread_over_requests(make_collector: Any) -> None:
    # a stand-in export thread that burns 20 ms of CPU between two reads 64 requests apart
    collector, _ = make_collector()
    go, done = threading.Event(), threading.Event()

    def export() -> None:
        go.wait(10)
        end = time.thread_time_ns() + 20 * MS
        while time.thread_time_ns() < end:
            pass
        done.set()
        time.sleep(0.5)

    thread = threading.Thread(target=export)
    thread.start()

    class Sink:
        _thread = thread

    real_sink, collector.sink = collector.sink, Sink()
    try:
        assert export_share_ns(collector, 64) == 0  # first read: nothing to spread yet
        go.set()
        assert done.wait(10)
        share = export_share_ns(collector, 128)
        assert export_share_ns(collector, 129) == share  # kept between reads
    finally:
        collector.sink = real_sink
        thread.join()
    assert 20 * MS // 64 <= share <= 40 * MS // 64


def test_typical_time_is_the_trimmed_mean_of_the_last_clean_spans() -> None:
    # reference computed another way: sort the last 15 clean lengths, drop a fifth each end
    rng = random.Random(14)
    typical = TypicalIo()
    seen: dict[tuple[str, str], list[int]] = {}
    for _ in range(3_000):
        key = ("SELECT", str(rng.randrange(4)))
        length = rng.choice((rng.randrange(1, 50) * MS, rng.randrange(1, 5) * MS))
        typical.tail(key, length, 0)
        last = seen.setdefault(key, [])
        last.append(length)
        window = sorted(last[-15:])
        trim = len(window) // 5
        kept = window[trim : len(window) - trim]
        assert typical.typical[key] == sum(kept) // len(kept)
