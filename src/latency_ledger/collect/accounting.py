"""Per-request CPU and queueing accounting: the process-wide hooks behind one object.

Contract: while :class:`Hooks` is installed, every step of every asyncio task on a loop
passed to :meth:`Hooks.ensure_loop` is timed, and so is every call a request hands to a
worker thread (``anyio.to_thread.run_sync``, hence Starlette/FastAPI ``def`` endpoints and
dependencies; ``ThreadPoolExecutor.submit``, hence ``loop.run_in_executor`` and
``asyncio.to_thread``). The time is charged to the :class:`Account` found in the context
the code runs in (``CURRENT``, set by the middleware; tasks copy it), never to another
request. A *segment* is a stretch of one thread charged to one account; wait spans (DB,
network clients) pause it so ``cpu_ns`` holds CPU outside waits only, as the ledger needs.

Queueing: each loop keeps ``busy_ns``, the wall time spent in task steps. A request's
candidate queueing is the loop's busy time during its life minus its own steps; the
middleware clips it to the request's unexplained waiting once the ledger is booked.

``time.thread_time_ns`` is a real system call here (~0.57 us, several us on a loaded
machine): a step reads it at its end, and at its start only when the last read on its
thread is older than ``BURST_NS`` (else the start is that read plus the wall time since,
exact to within the time the thread did not run meanwhile); plus two ``perf_counter_ns``
reads (no system call); nothing else runs per step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import weakref
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from time import perf_counter_ns, thread_time_ns, time_ns
from types import CoroutineType
from typing import Any, ClassVar

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


class LoopState:
    """One event loop's busy counter, its current busy stretch and the task factory we
    replaced on it."""

    __slots__ = ("busy_ns", "factory", "last_end_ns", "previous_factory", "streak_start_ns")

    def __init__(self, previous_factory: Any) -> None:
        self.busy_ns = 0
        # the current stretch of back-to-back steps: where it began and where the last
        # step ended (perf_counter ns); a step that runs more than STREAK_GAP_NS after
        # the previous one ended begins a new stretch
        self.streak_start_ns = self.last_end_ns = 0
        self.previous_factory = previous_factory
        self.factory: _TaskFactory | None = None


class Account:
    """One in-flight request's measured time (mutable, owned by the middleware)."""

    __slots__ = (
        "busy_start_ns",
        "charged_ns",
        "clock_starts",
        "cpu_ns",
        "depth",
        "loop_ns",
        "loop_state",
        "overhead_ns",
        "solo_ns",
        "steps",
        "thread_wrapper",
    )

    def __init__(self, loop_state: LoopState | None, busy_start_ns: int | None = None) -> None:
        self.cpu_ns = 0  # on-CPU outside wait spans, all threads
        # on-CPU including inside wait spans (SQLite's engine, a driver's own code): the
        # request's share of the process's CPU (cpu.ProcessWindow), booked as its parts
        self.charged_ns = 0
        self.loop_ns = 0  # wall time of this request's own steps on the loop
        self.depth = 0  # open wait spans
        self.steps = 0
        self.clock_starts = 0  # steps that read the CPU clock at their start (BURST_NS)
        self.overhead_ns = 0
        # wall time only its own threads were in Python (Activity: left out of its
        # spans' bounds)
        self.solo_ns = 0
        self.loop_state = loop_state
        # runs each of the request's worker-thread calls, when set (a profiled request's
        # sampler follows it into the thread: ``ProfileSampler.follow``)
        self.thread_wrapper: Callable[..., Any] | None = None
        if busy_start_ns is None:
            busy_start_ns = loop_state.busy_ns if loop_state is not None else 0
        self.busy_start_ns = busy_start_ns

    def queueing_candidate_ns(self) -> int:
        """Other work the loop ran during this request's life so far."""
        if self.loop_state is None:
            return 0
        return max(0, self.loop_state.busy_ns - self.busy_start_ns - self.loop_ns)


CURRENT: ContextVar[Account | None] = ContextVar("latency_ledger_account", default=None)


class _Charged:
    """All the CPU the hooks read from Python threads' clocks for requests, their wait
    spans included (a driver's or SQLite's work): process-wide, only ever growing (a
    lost update under a thread switch is possible and harmless). The process's CPU
    clock less this is what no request thread ran: the export thread, the server's own
    work outside requests, and threads native libraries start (collect/cpu.py)."""

    __slots__ = ("ns",)

    def __init__(self) -> None:
        self.ns = 0


CHARGED = _Charged()


class Segment:
    """One thread's charging state (each thread has its own: :data:`PER_THREAD`)."""

    __slots__ = (
        "acct",
        "active",
        "active_acct",
        "clock_at_ns",
        "clock_ns",
        "pooled",
        "t0",
        "waiting",
    )

    def __init__(self) -> None:
        self.acct: Account | None = None
        self.t0 = 0
        # this thread's CPU clock when a step's end last read it, and the perf_counter then
        # (a step starting soon after starts from it: TimedCoroutine.send)
        self.clock_ns = 0
        self.clock_at_ns = -(2**62)
        # counted in ACTIVITY (a request's worker thread running Python), and whether a
        # wait span took it out (to put it back when the wait ends)
        self.active = False
        self.active_acct: Account | None = None  # whose own activity clock it counts in
        self.waiting = False
        self.pooled = False  # inside a server pool's call (_InPython): its cost is ours


class _PerThread(threading.local):
    """Holds each thread's :class:`Segment`. Read once per call (``PER_THREAD.seg``),
    then plain slots: every attribute of a ``threading.local`` costs a lookup of the
    thread's dict (~600 instructions here, against ~40 for a slot), and the hooks read
    the segment ~10 times per task step and per worker-thread call."""

    def __init__(self) -> None:
        self.seg = Segment()


PER_THREAD = _PerThread()


def segment() -> Segment:
    """This thread's segment."""
    return PER_THREAD.seg


class Activity:
    """The interpreter lock's busy clock for thread-per-request serving: wall time during
    which at least one request thread was running Python (outside its wait spans).

    A thread waiting to get the lock back after its I/O cannot run while another holds
    it, and a thread in Python holds it or queues for it; so, read at a wait span's start
    and end by a thread that is itself out of Python meanwhile, the difference bounds
    the stretch the span's end spent waiting for the lock (collect/tails.py). Wall time,
    not CPU: a lock holder the OS has preempted still holds it. Worker threads the
    collector charges (``_ThreadCall``) and the Django WSGI middleware enter and leave;
    event-loop threads never do (their busy clock is the loop's, ``LoopState``).

    Each account also keeps how long only its own threads were in Python
    (``Account.solo_ns``), and :meth:`read_others` leaves those stretches out: a
    request's helper thread that waits for the very statement its request runs
    (Django's ``async_to_sync`` loop thread, blocked in its poll while the WSGI thread
    runs the view's query) is counted "in Python" for its whole call, and booked a slow
    ``pg_sleep`` on a loaded machine as 24 ms of queueing with nothing else running.
    What a request's own threads really ran meanwhile is in
    the CPU clock of the process's other threads, the bound's other half.
    """

    __slots__ = ("active", "count", "lock", "since_ns", "solo", "solo_since_ns", "total_ns")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.since_ns = 0
        self.total_ns = 0
        # threads in Python per account (None: pool threads with no request), and the
        # account whose threads alone are in Python, if one is, since when
        self.active: dict[Account | None, int] = {}
        self.solo: Account | None = None
        self.solo_since_ns = 0

    # acquire()/release() rather than ``with self.lock``: the with statement's
    # __enter__/__exit__ calls cost as much again (~1,000 instructions a section here),
    # and these run several times per worker-thread call and per wait span
    def read(self) -> int:
        lock = self.lock
        lock.acquire()
        try:
            if self.count:
                return self.total_ns + perf_counter_ns() - self.since_ns
            return self.total_ns
        finally:
            lock.release()

    def read_others(self, acct: Account) -> int:
        """The clock less the stretches when only ``acct``'s own threads were in Python:
        wall time some other request's (or pool) thread was in Python."""
        lock = self.lock
        lock.acquire()
        try:
            total = self.total_ns - acct.solo_ns
            if self.count:
                now = perf_counter_ns()
                total += now - self.since_ns
                if self.solo is acct:
                    total -= now - self.solo_since_ns
            return total
        finally:
            lock.release()

    def enter(self, acct: Account | None = None) -> None:
        lock = self.lock
        lock.acquire()
        try:
            now = perf_counter_ns()
            if not self.count:
                self.since_ns = now
            self.count += 1
            active = self.active
            active[acct] = active.get(acct, 0) + 1
            self._solo(now)
        finally:
            lock.release()

    def leave(self, acct: Account | None = None) -> None:
        lock = self.lock
        lock.acquire()
        try:
            if not self.count:
                return
            now = perf_counter_ns()
            self.count -= 1
            if not self.count:
                self.total_ns += now - self.since_ns
            active = self.active
            left = active.get(acct, 0) - 1
            if left > 0:
                active[acct] = left
            else:
                active.pop(acct, None)
            self._solo(now)
        finally:
            lock.release()

    def _solo(self, now: int) -> None:
        """Close the solo stretch if its account is no longer alone; open one if an
        account now is (under the lock)."""
        active = self.active
        solo = next(iter(active)) if len(active) == 1 else None
        if solo is self.solo:
            return
        if self.solo is not None:
            self.solo.solo_ns += now - self.solo_since_ns
        self.solo = solo
        self.solo_since_ns = now


ACTIVITY = Activity()


def enter_python() -> None:
    """This request thread runs Python from now (see :class:`Activity`), counted for the
    account it charges, if any."""
    seg = PER_THREAD.seg
    if not seg.active:
        seg.active = True
        seg.active_acct = acct = seg.acct
        ACTIVITY.enter(acct)


def leave_python() -> None:
    """This request thread stops running Python for its request."""
    seg = PER_THREAD.seg
    seg.waiting = False
    if seg.active:
        seg.active = False
        ACTIVITY.leave(seg.active_acct)
        seg.active_acct = None


def begin_segment(acct: Account) -> None:
    """Charge this thread's CPU to ``acct`` from now (the middleware, mid-step)."""
    seg = PER_THREAD.seg
    seg.acct = acct
    seg.t0 = thread_time_ns()


def end_segment() -> None:
    """Charge what this thread ran since the segment began and stop charging."""
    seg = PER_THREAD.seg
    acct = seg.acct
    if acct is not None:
        now = thread_time_ns()
        spent = max(0, now - seg.t0)  # 0 if the step's start was estimated past it
        CHARGED.ns += spent
        acct.charged_ns += spent
        if acct.depth == 0:
            acct.cpu_ns += spent
        seg.t0 = now
        seg.acct = None


def pause_for_wait(acct: Account) -> int:
    """A wait span of ``acct`` starts: CPU from here until it ends is not interpreter.
    Returns this thread's CPU clock as read here (-1 when not read), which the wait's
    tail measurement reuses (a read is a system call)."""
    seg = PER_THREAD.seg
    now = -1
    if seg.acct is acct:
        now = thread_time_ns()
        spent = max(0, now - seg.t0)  # 0 if the step's start was estimated past it
        CHARGED.ns += spent
        acct.charged_ns += spent
        if acct.depth == 0:
            acct.cpu_ns += spent
            if seg.active:  # out of Python until the wait ends
                leave_python()
                seg.waiting = True
        seg.t0 = now
    acct.depth += 1
    return now


def resume_after_wait(acct: Account, now: int = -1) -> None:
    """The wait span ends; ``now``: this thread's CPU clock if just read, else -1."""
    seg = PER_THREAD.seg
    if seg.acct is acct:
        if now < 0:
            now = thread_time_ns()
        spent = max(0, now - seg.t0)  # the wait's own CPU (driver code) is a request's too
        CHARGED.ns += spent
        acct.charged_ns += spent
        seg.t0 = now
    if acct.depth > 0:
        acct.depth -= 1
    if seg.waiting and acct.depth == 0:
        seg.waiting = False
        enter_python()


def _end_step(seg: Segment, wall_ns: int) -> None:
    """Charge the step that just ended to the account this thread is charging (set at
    the step's start, or mid-step by :func:`begin_segment`) and stop charging it."""
    acct = seg.acct
    assert acct is not None
    now = seg.clock_ns = thread_time_ns()
    seg.clock_at_ns = perf_counter_ns()  # after the read: the system call took a while
    spent = now - seg.t0
    if spent < 0:  # the start was estimated (BURST_NS) past what the thread ran
        spent = 0
    acct.loop_ns += wall_ns
    acct.steps += 1
    CHARGED.ns += spent
    acct.charged_ns += spent
    if acct.depth == 0:
        acct.cpu_ns += spent
    seg.acct = None


class TimedCoroutine(Coroutine[Any, Any, Any]):
    """A task's coroutine, each step timed and charged to the account in its context.

    Also usable with ``await`` (``__await__`` returns itself) so the middleware can time a
    request task that was created before the task factory was installed.
    """

    __slots__ = ("_coro", "_state", "busy_at_create_ns", "claimed", "created_ns")

    def __init__(self, coro: Coroutine[Any, Any, Any], state: LoopState) -> None:
        self._coro = coro
        self._state = state
        # when the server handed us the request: queueing before the first step counts too
        self.created_ns = time_ns()
        self.busy_at_create_ns = state.busy_ns
        self.claimed = False  # by the first request served in this task (the middleware)

    def send(self, value: Any) -> Any:
        seg = PER_THREAD.seg
        acct = seg.acct = CURRENT.get()
        state = self._state
        w0 = perf_counter_ns()
        if w0 - state.last_end_ns > STREAK_GAP_NS:
            state.streak_start_ns = w0
        if acct is not None:  # a step of no request needs no CPU clock (a system call)
            gap = w0 - seg.clock_at_ns
            if gap < BURST_NS:
                seg.t0 = seg.clock_ns + gap
            else:
                seg.t0 = thread_time_ns()
                acct.clock_starts += 1
        try:
            return self._coro.send(value)
        finally:
            end = state.last_end_ns = perf_counter_ns()
            wall = end - w0
            state.busy_ns += wall
            if seg.acct is not None:
                _end_step(seg, wall)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        seg = PER_THREAD.seg
        acct = seg.acct = CURRENT.get()
        state = self._state
        w0 = perf_counter_ns()
        if w0 - state.last_end_ns > STREAK_GAP_NS:
            state.streak_start_ns = w0
        if acct is not None:
            seg.t0 = thread_time_ns()
        try:
            if val is None and tb is None:
                return self._coro.throw(typ)
            return self._coro.throw(typ, val, tb)
        finally:
            end = state.last_end_ns = perf_counter_ns()
            wall = end - w0
            state.busy_ns += wall
            if seg.acct is not None:
                _end_step(seg, wall)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self

    def __iter__(self) -> TimedCoroutine:
        return self

    def __next__(self) -> Any:  # how a C Task steps a coroutine that is not native
        if _STEP_DUE():
            return self._measured_step()
        return self.send(None)

    def _measured_step(self) -> Any:
        """One step with our part of it timed on the thread's CPU clock: the whole step
        less what the task's own coroutine ran (:class:`_Probe` times that)."""
        c0 = thread_time_ns()
        probe = self._coro = _Probe(self._coro)
        try:
            return self.send(None)
        finally:
            c1 = thread_time_ns()
            self._coro = probe.coro
            STEPS.record(c1 - c0 - probe.ns)

    def __getattr__(self, name: str) -> Any:
        # cr_frame, cr_code, __qualname__... for asyncio's repr and debuggers
        return getattr(object.__getattribute__(self, "_coro"), name)


def request_start() -> tuple[TimedCoroutine | None, int, int | None]:
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
# What wrapping a task's coroutine costs (the factory's call and TimedCoroutine's making)
TASKS = Meter(stretches=1)
_TASK_DUE = TASKS.due


class _TaskFactory:
    __slots__ = ("previous", "state")

    def __init__(self, state: LoopState, previous: Any) -> None:
        self.state = state
        self.previous = previous

    def __call__(self, loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
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


# one worker-thread call's wrapping (the thread's CPU clock and activity around it)
THREAD_CALLS = Meter(stretches=2)


class _ThreadCall:
    """A callable run in a worker thread with its CPU charged to the submitter's account."""

    __slots__ = ("_acct", "_func")

    def __init__(self, func: Callable[..., Any], acct: Account) -> None:
        self._func = func
        self._acct = acct

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # our CPU around the call is the collector's cost (1 in N measured, selfcost.py)
        sampled = THREAD_CALLS.due()
        c0 = thread_time_ns() if sampled else 0
        seg = PER_THREAD.seg
        outer, outer_t0 = seg.acct, seg.t0
        seg.acct = self._acct
        was_active = seg.active
        enter_python()
        seg.t0 = c1 = thread_time_ns()
        try:
            wrapper = self._acct.thread_wrapper
            if wrapper is not None:
                return wrapper(self._func, *args, **kwargs)
            return self._func(*args, **kwargs)
        finally:
            now = thread_time_ns()
            if not was_active:
                leave_python()
            acct = seg.acct
            if acct is not None:
                CHARGED.ns += now - seg.t0
                acct.charged_ns += now - seg.t0
            if acct is not None and acct.depth == 0:
                acct.cpu_ns += now - seg.t0
            # a nested call (from_thread back into a worker) resumes the outer segment
            seg.acct = outer
            seg.t0 = now if outer is not None else outer_t0
            if sampled:
                THREAD_CALLS.record(c1 - c0 + thread_time_ns() - now)
            self._acct.overhead_ns += THREAD_CALLS.mean_ns


# one call of a server's pool with no request yet (gunicorn gthread's handling of a
# connection): its wrapping, charged to the request served in it
POOL_CALLS = Meter(stretches=2)


class _InPython:
    """A callable run in a pool thread with no request: counted in :data:`ACTIVITY`."""

    __slots__ = ("_func",)

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        seg = PER_THREAD.seg
        if seg.active:  # nested (a pool run inline): already counted
            return self._func(*args, **kwargs)
        # our CPU around the call is the collector's cost, charged to the request served
        # in it, if any (1 in N measured, selfcost.py)
        sampled = POOL_CALLS.due()
        c0 = thread_time_ns() if sampled else 0
        enter_python()
        seg.pooled = True
        c1 = thread_time_ns() if sampled else 0
        try:
            return self._func(*args, **kwargs)
        finally:
            c2 = thread_time_ns() if sampled else 0
            seg.pooled = False
            leave_python()
            if sampled:
                POOL_CALLS.record(c1 - c0 + thread_time_ns() - c2)


class Hooks:
    """The process-wide patches: installed once by the collector, removed on shutdown.

    Holds the task factories it set (per loop) and the thread-pool entry points it
    replaced, so :meth:`uninstall` restores exactly what was there before.
    """

    def __init__(self) -> None:
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopState] = (
            weakref.WeakKeyDictionary()
        )
        # the loop seen last (almost always the only one): a strong reference, dropped
        # by release_loop/uninstall, so a closed loop is not kept past its lifespan
        self._last: tuple[asyncio.AbstractEventLoop, LoopState] | None = None
        self.installed = False

    # The thread-pool patches are process-wide: shared by every Hooks, applied by the
    # first to install and removed by the last to uninstall, so two collectors (tests,
    # an app mounted twice) never wrap a call twice.
    _users = 0
    _patches: ClassVar[list[tuple[Any, str, Any]]] = []

    def install(self) -> None:
        if self.installed:
            return
        self.installed = True
        Hooks._users += 1
        if Hooks._users == 1:
            self._patch_thread_pools()

    def _patch_thread_pools(self) -> None:
        original_submit = concurrent.futures.ThreadPoolExecutor.submit

        def submit(self: Any, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            acct = CURRENT.get()
            if acct is not None:
                if not isinstance(fn, _ThreadCall):
                    fn = _ThreadCall(fn, acct)
            elif not isinstance(fn, _ThreadCall | _InPython):
                # a server's own pool (gunicorn gthread serves each connection in one):
                # its Python holds the interpreter lock as much as a request's does
                fn = _InPython(fn)
            return original_submit(self, fn, *args, **kwargs)

        self._patch(concurrent.futures.ThreadPoolExecutor, "submit", submit)
        try:
            import anyio.to_thread
        except ImportError:  # pragma: no cover - anyio comes with Starlette
            return
        original_run_sync = anyio.to_thread.run_sync

        # a plain function returning anyio's coroutine: an ``async def`` wrapper would add
        # a frame to every resumption of it
        def run_sync(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            acct = CURRENT.get()
            if acct is not None:
                func = _ThreadCall(func, acct)
            return original_run_sync(func, *args, **kwargs)

        self._patch(anyio.to_thread, "run_sync", run_sync)

    @staticmethod
    def _patch(owner: Any, name: str, replacement: Any) -> None:
        Hooks._patches.append((owner, name, owner.__dict__[name]))
        setattr(owner, name, replacement)

    def ensure_loop(self, loop: asyncio.AbstractEventLoop) -> LoopState:
        """This loop's state, installing our task factory on first sight."""
        last = self._last
        if last is not None and last[0] is loop:
            return last[1]
        state = self._loops.get(loop)
        if state is None:
            previous = loop.get_task_factory()
            state = LoopState(previous)
            state.factory = _TaskFactory(state, previous)
            loop.set_task_factory(state.factory)
            self._loops[loop] = state
        self._last = (loop, state)
        return state

    def release_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give ``loop`` its previous task factory back (lifespan shutdown)."""
        state = self._loops.pop(loop, None)
        self._last = None
        if state is not None and loop.get_task_factory() is state.factory:
            loop.set_task_factory(state.previous_factory)

    def uninstall(self) -> None:
        for loop in list(self._loops):
            if not loop.is_closed():
                self.release_loop(loop)
        self._loops.clear()
        self._last = None
        if not self.installed:
            return
        self.installed = False
        Hooks._users -= 1
        if Hooks._users == 0:
            for owner, name, original in reversed(Hooks._patches):
                setattr(owner, name, original)
            Hooks._patches.clear()
