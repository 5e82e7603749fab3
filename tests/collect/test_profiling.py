"""``summarize_records``: pyinstrument's records -> the ``ledger.profile`` summary."""

from __future__ import annotations

import json
import sys
import threading
from time import thread_time_ns
from typing import Any

import pytest

from latency_ledger.collect.accounting import (
    Account,
    begin_segment,
    end_segment,
    pause_for_wait,
    resume_after_wait,
)
from latency_ledger.collect.profiling import (
    INTERVAL_S,
    ProfileSampler,
    cpu_profiler_class,
    summarize_records,
)


def _frame(function: str, file: str, line: int = 1) -> str:
    return f"{function}\x00{file}\x00{line}"


def test_time_in_a_builtin_is_named_by_its_python_caller() -> None:
    # Expected: 30 ms sampled inside time.thread_time_ns called from burn() and 10 ms in
    # burn() itself are all burn()'s; the builtin never appears on its own.
    app = "/srv/app/views.py"
    burn = [_frame("handler", app), _frame("burn", app, 7)]
    records = [
        ([*burn, _frame("thread_time_ns", "<built-in>", 0)], 0.030),
        (burn, 0.010),
    ]
    doc = json.loads(summarize_records(records, 40))
    assert doc["samples"] == 40
    assert doc["top"] == [["burn (views.py)", 0.04]]
    assert doc["buckets"] == {"application": 0.04}


def test_native_cpu_is_what_c_leaf_samples_used_beyond_one_interval() -> None:
    # Expected, per record (wall s, CPU ns; 1 ms interval):
    # - hashpw returned after 190 ms of CPU: at most 1 ms of it was Python before the
    #   call, so native 189 ms booked, 190 ms the upper bound;
    # - time.sleep returned after 50 ms asleep with 0.1 ms of CPU: nothing native;
    # - thread_time_ns returned 1.2 ms of CPU after the last sample: 0.2 ms booked;
    # - 20 ms of Python: not native;
    # - an [await] record (another task's CPU): not counted at all.
    app = "/srv/app/views.py"
    login = [_frame("handler", app), _frame("login", app, 9)]
    records = [
        ([*login, _frame("hashpw", "<built-in>", 0)], 0.190),
        ([*login, _frame("sleep", "<built-in>", 0)], 0.050),
        ([*login, _frame("thread_time_ns", "<built-in>", 0)], 0.0012),
        (login, 0.020),
        ([_frame("handler", app), "[await]\x00<await>\x000"], 0.3),
    ]
    cpu = [190_000_000, 100_000, 1_200_000, 20_000_000, 300_000_000]
    doc = json.loads(summarize_records(records, 100, cpu))
    assert doc["cpu"] == pytest.approx(0.2113)
    assert doc["native"] == pytest.approx(0.1892)
    assert doc["native_max"] == pytest.approx(0.1913)
    assert doc["native_top"] == [["hashpw", 0.189], ["thread_time_ns", 0.0002]]
    # the "top functions" view is unchanged: the builtins' time is login()'s
    assert doc["top"] == [["login (views.py)", pytest.approx(0.2612)]]


def test_without_cpu_readings_there_is_no_native_split() -> None:
    records = [([_frame("hashpw", "<built-in>", 0)], 0.190)]
    doc = json.loads(summarize_records(records, 1))
    assert "native" not in doc
    # misaligned readings (a pyinstrument that changed under us) are not guessed at
    assert "native" not in json.loads(summarize_records(records, 1, [1, 2]))


def _burn(ns: int) -> int:
    end = thread_time_ns() + ns
    total = 0
    while thread_time_ns() < end:
        total += sum(i * i for i in range(50))
    return total


def test_a_real_profile_books_bcrypt_native_and_python_interpreter() -> None:
    # Expected: a bcrypt hash (cost 10, tens of ms of CPU on one core) is >= 80% native
    # of the CPU measured around it with the thread's clock; a pure-Python burn of the
    # same run is <= 15% native (the loop calls a builtin, thread_time_ns, each turn).
    bcrypt = pytest.importorskip("bcrypt")
    salt = bcrypt.gensalt(10)
    results = {}
    for name, work in (
        ("bcrypt", lambda: bcrypt.hashpw(b"correct horse", salt)),
        ("python", lambda: _burn(40_000_000)),
    ):
        profiler = cpu_profiler_class()(interval=INTERVAL_S, async_mode="enabled")
        t0 = thread_time_ns()
        profiler.start()
        work()
        session = profiler.stop()
        cpu = thread_time_ns() - t0
        doc = json.loads(
            summarize_records(session.frame_records, session.sample_count, profiler.cpu_ns)
        )
        results[name] = doc["native"] * 1e9 / cpu
    assert results["bcrypt"] >= 0.8, results
    assert results["python"] <= 0.15, results


def test_native_cpu_inside_a_wait_span_is_the_waits_not_the_requests() -> None:
    # Expected: a bcrypt hash run while the request's account is inside a wait span (as
    # SQLite's engine runs inside a database span) is not the request's own CPU: the
    # account's cpu_ns leaves it out, so the profile books (almost) none of it native;
    # the same hash outside the wait is >= 80% native.
    bcrypt = pytest.importorskip("bcrypt")
    salt = bcrypt.gensalt(10)
    acct = Account(None)
    shares = {}
    for inside in (False, True):
        profiler = cpu_profiler_class()(interval=INTERVAL_S, async_mode="enabled")
        begin_segment(acct)
        t0 = thread_time_ns()
        profiler.start()
        if inside:
            pause_for_wait(acct)
        bcrypt.hashpw(b"correct horse", salt)
        if inside:
            resume_after_wait(acct)
        session = profiler.stop()
        cpu = thread_time_ns() - t0
        end_segment()
        doc = json.loads(
            summarize_records(session.frame_records, session.sample_count, profiler.cpu_ns)
        )
        shares[inside] = doc["native"] * 1e9 / cpu
    assert shares[False] >= 0.8, shares
    assert shares[True] <= 0.05, shares


def test_cpu_beyond_a_records_wall_time_is_not_native() -> None:
    # 1.4 ms of CPU read over a 1.0 ms record (the profiler's own start-up before the
    # first sample): capped at 1.0 ms, so nothing beyond the interval is native.
    records = [([_frame("thread_time_ns", "<built-in>", 0)], 0.001)]
    doc = json.loads(summarize_records(records, 1, [1_400_000]))
    assert (doc["cpu"], doc["native"], doc["native_max"]) == (0.001, 0.0, 0.001)


def _follow_run(
    func: Any, *, fail_start: bool = False
) -> tuple[Any, list[int], dict[str, Any] | None]:
    """``func`` run as a profiled request's worker-thread call; (result or exception,
    errors counted, the request's summary)."""
    sampler = ProfileSampler(rate=1.0, first_per_interval=False, interval_s=60)
    profiler = sampler.start("/x", 0)
    errors: list[int] = []
    run = sampler.follow(profiler, lambda: errors.append(1))
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(run(func))
        except Exception as exc:  # the app's own exception, passed through
            outcome.append(exc)

    if fail_start:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(
                "latency_ledger.collect.profiling.cpu_profiler_class", lambda: _FailingProfiler
            )
            _in_thread(target)
    else:
        _in_thread(target)
    summary = sampler.stop(profiler)
    return outcome[0], errors, json.loads(summary) if summary else None


class _FailingProfiler:
    def __init__(self, **_: Any) -> None:
        pass

    def start(self) -> None:
        raise RuntimeError("profiler unavailable")


def _in_thread(target: Any) -> None:
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()


def test_a_worker_thread_call_is_profiled_into_the_request() -> None:
    # Expected: the worker's 30 ms pure-Python burn appears in the request's summary
    # (its CPU seen, in application code), no native CPU, the result passed through.
    result, errors, doc = _follow_run(lambda: _burn(30_000_000))
    assert isinstance(result, int)
    assert errors == []
    assert doc is not None
    assert doc["cpu"] >= 0.025
    assert doc["native"] <= 0.1 * doc["cpu"]
    assert sys.getprofile() is None


def test_a_worker_call_that_raises_still_raises_and_its_profile_ends() -> None:
    def fail() -> None:
        raise ValueError("the app's error")

    result, errors, _ = _follow_run(fail)
    assert isinstance(result, ValueError)
    assert errors == []


def test_a_profiler_that_cannot_start_in_the_worker_is_counted_and_the_call_runs() -> None:
    result, errors, _ = _follow_run(lambda: 42, fail_start=True)
    assert (result, errors) == (42, [1])
