"""Task steps on an event loop, each timed and charged to the request it runs for.

Contract: :class:`TimedCoroutine` wraps a task's coroutine (the loop's task factory,
:class:`TaskFactory`, installed by ``hooks.Hooks.ensure_loop``); each step's CPU is
charged to the account in the step's context (``accounting.CURRENT``) and its wall time
added to the loop's ``busy_ns``. :func:`request_start` tells the middleware when its
request began. One step in ``STEPS.every`` is measured for the collector's own cost
(``STEPS``, ``selfcost.py``), and so is the wrapping of one task in ``TASKS.every``.

``time.thread_time_ns`` is a real system call here (~0.57 us, several us on a loaded
machine): a step reads it at its end unless it was shorter than ``SHORT_NS`` (then its
CPU is its wall time, to within that), and at its start only when the last read (or
estimate) on its thread is older than ``BURST_NS`` (else the start is that plus the wall
time since, exact to within the time the thread did not run meanwhile); plus two
``perf_counter_ns`` reads (no system call); nothing else runs per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from time import perf_counter_ns, thread_time_ns, time_ns
from types import CoroutineType
from typing import Any

from latency_ledger.collect.accounting import (
    CHARGED,
    CURRENT,
    PER_THREAD,
    Account,
    LoopState,
    Segment,
)
from latency_ledger.collect.compiled import SPEEDUPS
from latency_ledger.collect.selfcost import Meter

# Steps closer than this (perf_counter ns) belong to one busy stretch of the loop: the
# loop's own work between two steps (a poll, I/O callbacks) or the OS taking the CPU
# away for a moment, not the loop waiting for I/O.
STREAK_GAP_NS = 2_000_000
# A step starting within this (perf_counter ns) of the last read of its thread's CPU
# clock (a step's end) takes its starting CPU from that read plus the wall time since:
# in a burst of steps the loop thread runs between them, so this is the clock to within
# the time it did not run meanwhile (at most this), and it saves a system call a step.
BURST_NS = 50_000
# A step shorter than this (perf_counter ns, its whole wall time) that was charged to one
# account from its start to its end is charged its wall time, without reading the CPU
# clock at its end: a thread cannot run longer than the wall time that passed, so the
# CPU it ran is within this of its wall time, and what keeps a thread off its CPU for
# longer (the OS running something else, a blocking call, the interpreter lock) makes
# the step longer than this, and read. Most steps of a request are this short (a
# middleware's await, a response message), so most steps read no clock at all.
SHORT_NS = 20_000


def _end_step(seg: Segment, wall_ns: int, end_ns: int, acct: Account | None, t0: int) -> None:
    """Charge the step that just ended (``wall_ns`` long, ending at ``end_ns``) to the
    account this thread is charging (set at the step's start, ``acct`` from ``t0``, or
    mid-step by ``accounting.begin_segment``) and stop charging it."""
    charged = seg.acct
    assert charged is not None
    if wall_ns < SHORT_NS and charged is acct and seg.t0 == t0:
        # short, and charged from its start to its end (no segment began or wait paused
        # mid-step): its CPU is its wall time to within SHORT_NS, no clock read
        spent = wall_ns
        seg.clock_ns = t0 + wall_ns
        seg.clock_at_ns = end_ns
    else:
        now = seg.clock_ns = thread_time_ns()
        seg.clock_at_ns = perf_counter_ns()  # after the read: the system call took a while
        spent = now - seg.t0
        if spent < 0:  # the start was estimated (BURST_NS) past what the thread ran
            spent = 0
    charged.loop_ns += wall_ns
    charged.steps += 1
    CHARGED.ns += spent
    charged.charged_ns += spent
    if charged.depth == 0:
        charged.cpu_ns += spent
    seg.acct = None


class PyTimedCoroutine(Coroutine[Any, Any, Any]):
    """A task's coroutine, each step timed and charged to the account in its context.

    Also usable with ``await`` (``__await__`` returns itself) so the middleware can time a
    request task that was created before the task factory was installed.

    The reference: :data:`TimedCoroutine` is its compiled twin where
    ``latency-ledger-speedups`` is installed (``compiled.py``): the same steps in C,
    ~1,500 instructions a step against ~11,000 here (most of them the task's C code
    calling into Python), which the tests hold to the same answers.
    """

    __slots__ = ("_coro", "_state", "busy_at_create_ns", "claimed", "created_ns")

    def __init__(self, coro: Coroutine[Any, Any, Any], state: LoopState) -> None:
        self._coro = coro
        self._state = state
        # when the server handed us the request: queueing before the first step counts too
        self.created_ns = time_ns()
        self.busy_at_create_ns = state.busy_ns
        self.claimed = False  # by the first request served in this task (the middleware)

    def send(self, value: Any = None, measured: bool = False) -> Any:
        # also the task's ``__next__`` (below): one frame per step, not two
        if not measured and _STEP_DUE():
            return self._measured_step(value)
        seg = PER_THREAD.seg
        acct = seg.acct = CURRENT.get()
        state = self._state
        w0 = perf_counter_ns()
        if w0 - state.last_end_ns > STREAK_GAP_NS:
            state.streak_start_ns = w0
        t0 = 0
        if acct is not None:  # a step of no request needs no CPU clock (a system call)
            gap = w0 - seg.clock_at_ns
            if gap < BURST_NS:
                t0 = seg.t0 = seg.clock_ns + gap
            else:
                t0 = seg.t0 = thread_time_ns()
                acct.clock_starts += 1
        try:
            return self._coro.send(value)
        finally:
            end = state.last_end_ns = perf_counter_ns()
            wall = end - w0
            state.busy_ns += wall
            if seg.acct is not None:
                _end_step(seg, wall, end, acct, t0)
            else:  # our wrapping of a step no request is charged: LoopState.free_steps
                state.free_steps += 1

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        seg = PER_THREAD.seg
        acct = seg.acct = CURRENT.get()
        state = self._state
        w0 = perf_counter_ns()
        if w0 - state.last_end_ns > STREAK_GAP_NS:
            state.streak_start_ns = w0
        t0 = seg.t0 = thread_time_ns() if acct is not None else seg.t0
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            end = state.last_end_ns = perf_counter_ns()
            wall = end - w0
            state.busy_ns += wall
            if seg.acct is not None:
                _end_step(seg, wall, end, acct, t0)
            else:  # our wrapping of a step no request is charged: LoopState.free_steps
                state.free_steps += 1

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> PyTimedCoroutine:
        return self

    # how a C Task steps a coroutine that is not native (PyIter_Send with None)
    __next__ = send

    def _measured_step(self, value: Any) -> Any:
        return _measured_step(self, value)

    def __getattr__(self, name: str) -> Any:
        # cr_frame, cr_code, __qualname__... for asyncio's repr and debuggers
        return getattr(object.__getattribute__(self, "_coro"), name)


def _measured_step(timed: Any, value: Any) -> Any:
    """One step of ``timed`` (either kind) with our part of it timed on the thread's CPU
    clock: the whole step less what the task's own coroutine ran (:class:`_Probe` times
    that)."""
    c0 = thread_time_ns()
    probe = timed._coro = _Probe(timed._coro)
    try:
        return timed.send(value, True)
    finally:
        c1 = thread_time_ns()
        timed._coro = probe.coro
        STEPS.record(c1 - c0 - probe.ns)


def _timed_coroutine() -> type[PyTimedCoroutine]:
    if SPEEDUPS is None:
        return PyTimedCoroutine
    SPEEDUPS.configure_steps(globals(), _measured_step, STREAK_GAP_NS, BURST_NS, SHORT_NS)
    compiled: Any = SPEEDUPS.TimedCoroutine
    Coroutine.register(compiled)  # what asyncio.Task asks of a coroutine not native
    return compiled  # type: ignore[no-any-return]


TimedCoroutine = _timed_coroutine()


def request_start() -> tuple[PyTimedCoroutine | None, int, int | None]:
    """For a request starting in the current task: (the task's ``TimedCoroutine`` or None
    when its steps are not timed, when the request started, the loop's ``busy_ns`` then
    or None for now).

    The first request served in a timed task claims the task's creation as its start: the
    server made the task for it, so queueing before its first step counts too. A later
    request in the same task (a server serving requests in turn in one task), or one in a
    task made before our factory, starts now.
    """
    task = asyncio.current_task()
    coro = task.get_coro() if task is not None else None
    if type(coro) is not TimedCoroutine:
        return None, time_ns(), None
    if coro.claimed:
        return coro, time_ns(), None
    coro.claimed = True
    return coro, coro.created_ns, coro.busy_at_create_ns


class _Probe:
    """Stands in for a task's coroutine during one measured step (``STEPS``) and times
    the coroutine's own work, so that what is left of the step is ours."""

    __slots__ = ("coro", "ns")

    def __init__(self, coro: Any) -> None:
        self.coro = coro
        self.ns = 0

    def send(self, value: Any) -> Any:
        t0 = thread_time_ns()
        try:
            return self.coro.send(value)
        finally:
            self.ns = thread_time_ns() - t0

    def __getattr__(self, name: str) -> Any:  # cr_frame... if anything asks mid-step
        return getattr(object.__getattribute__(self, "coro"), name)


# What a task step costs us, measured in the server 1 in N steps (selfcost.py): the step
# calibrated at start-up (spans.calibrate_step_cost) runs in a hot loop, and measured
# so it read a quarter of what the same code costs between a server's other work (cold
# caches: 1.2 against ~5 us a step, uvicorn on this machine). The measured step's two
# clock reads around the coroutine are taken off (stretches).
STEPS = Meter(stretches=2)
_STEP_DUE = STEPS.due
# What wrapping a task's coroutine costs (the check and TimedCoroutine's making; the
# factory's own call from the loop's C code is outside what a clock inside it can see)
TASKS = Meter(stretches=1)
_TASK_DUE = TASKS.due


class TaskFactory:
    """A loop's task factory: each new task's coroutine wrapped in a
    :class:`TimedCoroutine`, then the previous factory (or a plain Task) makes the task."""

    __slots__ = ("previous", "state")

    def __init__(self, state: LoopState, previous: Any) -> None:
        self.state = state
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        self.state.tasks_made += 1  # charged by the next request to finish (LoopState)
        if _TASK_DUE():
            c0 = thread_time_ns()
            coro = self._wrap(coro)
            TASKS.record(thread_time_ns() - c0)
        else:
            coro = self._wrap(coro)
        if self.previous is not None:
            return self.previous(loop, coro, **kwargs)
        return asyncio.Task(coro, loop=loop, **kwargs)

    def _wrap(self, coro: Any) -> Any:
        kind = type(coro)  # a native coroutine, the usual case, without iscoroutine's call
        if kind is CoroutineType or (kind is not TimedCoroutine and asyncio.iscoroutine(coro)):
            return TimedCoroutine(coro, self.state)
        return coro
