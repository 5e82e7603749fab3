"""CPU accounting without a server: task steps, spawned tasks, threads, wait spans."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import anyio.to_thread
import pytest
import uvloop

from latency_ledger.collect import steps
from latency_ledger.collect.accounting import (
    CURRENT,
    Account,
    begin_segment,
    end_segment,
    pause_for_wait,
    resume_after_wait,
)
from latency_ledger.collect.hooks import Hooks
from latency_ledger.collect.selfcost import Meter
from latency_ledger.collect.steps import PyTimedCoroutine, TimedCoroutine

MS = 1_000_000


@pytest.fixture(
    autouse=True,
    params=["compiled", "python"] if TimedCoroutine is not PyTimedCoroutine else ["python"],
)
def step_timer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> type:
    """Every test here runs with the compiled step timer and worker-thread call
    (plugins/speedups) and with their pure-Python reference, which runs where no
    compiler built the former."""
    from latency_ledger.collect import hooks

    kind: type = TimedCoroutine if request.param == "compiled" else PyTimedCoroutine
    monkeypatch.setattr(steps, "TimedCoroutine", kind)
    if request.param == "python":  # and the worker-thread call's wrapper
        monkeypatch.setattr(hooks, "_ThreadCall", hooks.PyThreadCall)
    return kind


def burn_cpu(ms: float) -> None:
    """Pure-Python work until this thread has run ``ms`` milliseconds of CPU."""
    end = time.thread_time_ns() + int(ms * MS)
    x = 0
    while time.thread_time_ns() < end:
        x += 1


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    h = Hooks()
    h.install()
    yield h
    h.uninstall()


def close_to(value_ns: int, expected_ms: float, *, rel: float = 0.15, abs_ms: float = 2.0) -> bool:
    return abs(value_ns / MS - expected_ms) <= max(rel * expected_ms, abs_ms)


def run(main: object, loop_kind: str) -> object:
    if loop_kind == "uvloop":
        return uvloop.run(main)  # type: ignore[arg-type]
    return asyncio.run(main)  # type: ignore[arg-type]


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_spawned_tasks_charge_their_own_request(hooks: Hooks, loop_kind: str) -> None:
    # expected: A 6 + 4 ms in two spawned tasks, B 3 ms; neither charged with the other's
    accounts: dict[str, Account] = {}

    async def request(name: str, parts: tuple[float, ...]) -> None:
        state = hooks.ensure_loop(asyncio.get_running_loop())
        acct = Account(state)
        accounts[name] = acct
        CURRENT.set(acct)

        async def part(ms: float) -> None:
            await asyncio.sleep(0)
            burn_cpu(ms)
            await asyncio.sleep(0)

        await asyncio.gather(*(part(ms) for ms in parts))

    async def main() -> None:
        hooks.ensure_loop(asyncio.get_running_loop())
        await asyncio.gather(
            asyncio.create_task(request("a", (6.0, 4.0))),
            asyncio.create_task(request("b", (3.0,))),
        )
        hooks.release_loop(asyncio.get_running_loop())

    run(main(), loop_kind)
    assert close_to(accounts["a"].cpu_ns, 10.0, abs_ms=1.0)
    assert close_to(accounts["b"].cpu_ns, 3.0, abs_ms=1.0)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_worker_threads_charge_the_submitting_request(hooks: Hooks, loop_kind: str) -> None:
    # expected: 4 ms through anyio, 3 through run_in_executor, 2 through asyncio.to_thread
    seen: list[Account] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        hooks.ensure_loop(loop)
        acct = Account(hooks.ensure_loop(loop))
        seen.append(acct)
        CURRENT.set(acct)
        await anyio.to_thread.run_sync(burn_cpu, 4.0)
        await loop.run_in_executor(None, burn_cpu, 3.0)
        await asyncio.to_thread(burn_cpu, 2.0)
        hooks.release_loop(loop)

    run(main(), loop_kind)
    assert close_to(seen[0].cpu_ns, 9.0, abs_ms=1.0)


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_steps_in_a_burst_read_the_clock_once_and_still_charge_their_cpu(
    hooks: Hooks, loop_kind: str
) -> None:
    # Expected: 20 steps back to back, each burning 0.5 ms, then one that blocks 30 ms
    # off CPU (a sleep in the step) and burns 1 ms: 11 ms of CPU, the sleep not CPU. Only
    # the first step reads the CPU clock at its start (the others start within BURST_NS
    # of the previous step's end, unless the OS preempted the loop between them); the
    # blocked step started in the burst too, and its
    # sleep still is not charged: its end reads the clock.
    seen: list[Account] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        acct = Account(hooks.ensure_loop(loop))
        seen.append(acct)

        async def request() -> None:
            for _ in range(20):
                burn_cpu(0.5)
                await asyncio.sleep(0)
            time.sleep(0.03)
            burn_cpu(1.0)

        CURRENT.set(acct)  # the task copies it: its first step is the request's too
        await asyncio.create_task(request())
        hooks.release_loop(loop)

    run(main(), loop_kind)
    acct = seen[0]
    assert acct.steps == 21
    assert close_to(acct.cpu_ns, 11.0, abs_ms=1.0), acct.cpu_ns / MS
    # a loaded machine's preemptions break a burst now and then (9 of 21 at load 11)
    assert acct.clock_starts < acct.steps, acct.clock_starts


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_a_measured_step_times_our_part_of_it_not_the_coroutines(
    hooks: Hooks, loop_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Expected: 10 steps, each burning 2 ms in the task's own coroutine, every one
    # measured: our part of a step is microseconds, nowhere near the 2 ms the coroutine
    # ran; the request is still charged its 20 ms; the task sees its coroutine as before
    # (its frame, its result) while a probe stands in for it.
    meter = Meter(every=1, stretches=2)
    monkeypatch.setattr(steps, "STEPS", meter)
    monkeypatch.setattr(steps, "_STEP_DUE", meter.due)
    seen: list[Account] = []
    frames: list[bool] = []

    async def main() -> str:
        loop = asyncio.get_running_loop()
        acct = Account(hooks.ensure_loop(loop))
        seen.append(acct)

        async def request() -> str:
            for _ in range(10):
                burn_cpu(2.0)
                task = asyncio.current_task()
                assert task is not None
                frames.append(task.get_coro().cr_frame is not None)
                await asyncio.sleep(0)
            return "done"

        CURRENT.set(acct)
        result = await asyncio.create_task(request())
        hooks.release_loop(loop)
        return result

    assert run(main(), loop_kind) == "done"
    assert frames == [True] * 10
    assert meter.samples >= 10
    assert meter.mean_ns < 0.2 * MS, meter.mean_ns
    assert close_to(seen[0].cpu_ns, 20.0, abs_ms=1.0), seen[0].cpu_ns / MS


def test_cpu_inside_wait_spans_is_not_charged() -> None:
    # expected: 3 ms before the wait + 2 after = 5; the 4 ms inside the wait is the wait's
    acct = Account(None)
    begin_segment(acct)
    burn_cpu(3.0)
    pause_for_wait(acct)
    burn_cpu(4.0)
    resume_after_wait(acct)
    burn_cpu(2.0)
    end_segment()
    assert close_to(acct.cpu_ns, 5.0, abs_ms=0.5)
    assert acct.depth == 0


def test_queueing_candidate_is_other_steps_during_the_request(hooks: Hooks) -> None:
    # expected: while "mine" waits on sleep(0) three times, "other" runs three steps of
    # ~4 ms; the candidate is their wall time (the loop was busy), measured around them
    result: dict[str, int] = {"other_wall": 0}

    async def other() -> None:
        for _ in range(3):
            t0 = time.perf_counter_ns()
            burn_cpu(4.0)
            result["other_wall"] += time.perf_counter_ns() - t0
            await asyncio.sleep(0)

    async def mine() -> None:
        acct = Account(hooks.ensure_loop(asyncio.get_running_loop()))
        CURRENT.set(acct)
        for _ in range(3):
            await asyncio.sleep(0)
        result["queueing"] = acct.queueing_candidate_ns()
        result["cpu"] = acct.cpu_ns

    async def main() -> None:
        hooks.ensure_loop(asyncio.get_running_loop())
        await asyncio.gather(asyncio.create_task(mine()), asyncio.create_task(other()))
        hooks.release_loop(asyncio.get_running_loop())

    asyncio.run(main())
    assert close_to(result["queueing"], result["other_wall"] / MS, rel=0.0, abs_ms=1.0)
    assert result["queueing"] >= 12 * MS
    assert result["cpu"] < MS


def test_task_factory_is_restored_and_chains_a_previous_one(hooks: Hooks, step_timer: type) -> None:
    created: list[object] = []

    def previous(
        loop: asyncio.AbstractEventLoop, coro: object, **kw: object
    ) -> asyncio.Task[object]:
        created.append(coro)
        return asyncio.Task(coro, loop=loop, **kw)  # type: ignore[arg-type]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(previous)  # type: ignore[arg-type]
        hooks.ensure_loop(loop)
        assert await asyncio.create_task(asyncio.sleep(0, result=7)) == 7
        hooks.release_loop(loop)
        assert loop.get_task_factory() is previous
        loop.set_task_factory(None)

    asyncio.run(main())
    assert len(created) == 1
    assert type(created[0]) is step_timer


def test_timed_coroutine_passes_exceptions_and_cancellation(hooks: Hooks) -> None:
    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("x")

    async def main() -> None:
        hooks.ensure_loop(asyncio.get_running_loop())
        with pytest.raises(KeyError):
            await asyncio.create_task(fails())
        blocked = asyncio.create_task(asyncio.sleep(10))
        await asyncio.sleep(0)
        blocked.cancel()
        with pytest.raises(asyncio.CancelledError):
            await blocked
        hooks.release_loop(asyncio.get_running_loop())

    asyncio.run(main())


def test_uninstall_restores_thread_pool_entry_points() -> None:
    import concurrent.futures

    submit = concurrent.futures.ThreadPoolExecutor.submit
    run_sync = anyio.to_thread.run_sync
    h = Hooks()
    h.install()
    assert concurrent.futures.ThreadPoolExecutor.submit is not submit
    assert anyio.to_thread.run_sync is not run_sync
    h.uninstall()
    assert concurrent.futures.ThreadPoolExecutor.submit is submit
    assert anyio.to_thread.run_sync is run_sync
