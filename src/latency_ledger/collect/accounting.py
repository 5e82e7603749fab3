"""Per-request CPU and queueing accounting: accounts, each thread's segment, the
interpreter's busy clock, and wait spans' pause and resume.

Contract: while :class:`~latency_ledger.collect.hooks.Hooks` is installed, every step of
every asyncio task on a loop passed to its ``ensure_loop`` is timed (``steps.py``), and
so is every call a request hands to a worker thread (``anyio.to_thread.run_sync``, hence
Starlette/FastAPI ``def`` endpoints and dependencies; ``ThreadPoolExecutor.submit``,
hence ``loop.run_in_executor`` and ``asyncio.to_thread``; ``hooks.py``). The time is
charged to the :class:`Account` found in the context the code runs in (``CURRENT``, set
by the middleware; tasks copy it), never to another request. A *segment* is a stretch
of one thread charged to one account; wait spans (DB, network clients) pause it so
``cpu_ns`` holds CPU outside waits only, as the ledger needs.

Queueing: each loop keeps ``busy_ns``, the wall time spent in task steps. A request's
candidate queueing is the loop's busy time during its life minus its own steps; the
middleware clips it to the request's unexplained waiting once the ledger is booked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from time import perf_counter_ns, thread_time_ns
from typing import TYPE_CHECKING, Any

from latency_ledger.collect.compiled import SPEEDUPS

if TYPE_CHECKING:
    from latency_ledger.collect.steps import TaskFactory


class LoopState:
    """One event loop's busy counter, its current busy stretch, the task factory we
    replaced on it, and the steps and tasks we wrapped that no request was charged yet."""

    __slots__ = (
        "busy_ns",
        "factory",
        "free_steps",
        "last_end_ns",
        "previous_factory",
        "streak_start_ns",
        "tasks_made",
    )

    def __init__(self, previous_factory: Any) -> None:
        self.busy_ns = 0
        # the current stretch of back-to-back steps: where it began and where the last
        # step ended (perf_counter ns); a step that runs more than STREAK_GAP_NS after
        # the previous one ended begins a new stretch
        self.streak_start_ns = self.last_end_ns = 0
        self.previous_factory = previous_factory
        self.factory: TaskFactory | None = None
        # Our wrapping of these costs CPU too (selfcost.py), charged by the next request
        # to finish on this loop (Collector.finish): steps that ended with no request's
        # segment open (tasks of no request: an app's background tasks, a client's; and
        # the step a request ends in, which the middleware takes off again as the
        # request's own), and tasks our factory wrapped.
        self.free_steps = 0
        self.tasks_made = 0


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
        "pool_cost_ns",
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
        # inside a server pool's call (hooks._InPython): what its wrapping costs, charged
        # to the request served in it (begin_segment); 0 outside one
        self.pool_cost_ns = 0


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

    # The reference; the process's clock (ACTIVITY) is its compiled twin where
    # latency-ledger-speedups is installed (compiled.py), the same steps in C, lock-free
    # as C code holding the interpreter lock runs to its end.
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
        self.move(acct, 1)

    def leave(self, acct: Account | None = None) -> None:
        self.move(acct, -1)

    def move(self, acct: Account | None, step: int) -> None:
        """A thread of ``acct`` enters Python (``step`` 1) or leaves it (-1). One method
        for both, the solo stretch's update written out (close it if its account is no
        longer alone, open one if an account now is): the hooks call it directly at
        every wait span's edges and around every worker-thread call."""
        lock = self.lock
        lock.acquire()
        try:
            count = self.count
            if step < 0 and not count:
                return
            now = perf_counter_ns()
            if not count:
                self.since_ns = now
            self.count = count = count + step
            if not count:
                self.total_ns += now - self.since_ns
            active = self.active
            left = active.get(acct, 0) + step
            if left > 0:
                active[acct] = left
            else:
                active.pop(acct, None)
            solo = next(iter(active)) if len(active) == 1 else None
            was = self.solo
            if solo is not was:
                if was is not None:
                    was.solo_ns += now - self.solo_since_ns
                self.solo = solo
                self.solo_since_ns = now
        finally:
            lock.release()


def _activity() -> Activity:
    """The process's clock: compiled (``compiled.py``) when installed, the same
    behaviour at a tenth of the cost, else this module's."""
    if SPEEDUPS is not None:
        return SPEEDUPS.Activity()  # type: ignore[no-any-return]
    return Activity()


ACTIVITY = _activity()


def enter_python() -> None:
    """This request thread runs Python from now (see :class:`Activity`), counted for the
    account it charges, if any."""
    seg = PER_THREAD.seg
    if not seg.active:
        seg.active = True
        seg.active_acct = acct = seg.acct
        ACTIVITY.move(acct, 1)


def leave_python() -> None:
    """This request thread stops running Python for its request."""
    seg = PER_THREAD.seg
    seg.waiting = False
    if seg.active:
        seg.active = False
        ACTIVITY.move(seg.active_acct, -1)
        seg.active_acct = None


def begin_segment(acct: Account) -> None:
    """Charge this thread's CPU to ``acct`` from now (the middleware, mid-step), and the
    server pool's call the request is served in, if any, to its overhead."""
    seg = PER_THREAD.seg
    seg.acct = acct
    acct.overhead_ns += seg.pool_cost_ns
    seg.t0 = thread_time_ns()


def end_segment() -> None:
    """Charge what this thread ran since the segment began and stop charging."""
    seg = PER_THREAD.seg
    acct = seg.acct
    if acct is not None:
        now = thread_time_ns()
        spent = now - seg.t0
        if spent < 0:  # the step's start was estimated past it (not max(): see steps.py)
            spent = 0
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
        spent = now - seg.t0
        if spent < 0:  # the step's start was estimated past it
            spent = 0
        CHARGED.ns += spent
        acct.charged_ns += spent
        if acct.depth == 0:
            acct.cpu_ns += spent
            if seg.active:  # out of Python until the wait ends (leave_python, inline)
                seg.active = False
                ACTIVITY.move(seg.active_acct, -1)
                seg.active_acct = None
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
        spent = now - seg.t0  # the wait's own CPU (driver code) is a request's too
        if spent < 0:
            spent = 0
        CHARGED.ns += spent
        acct.charged_ns += spent
        seg.t0 = now
    if acct.depth > 0:
        acct.depth -= 1
    if seg.waiting and acct.depth == 0:  # back in Python (enter_python, inline)
        seg.waiting = False
        if not seg.active:
            seg.active = True
            seg.active_acct = active = seg.acct
            ACTIVITY.move(active, 1)


if SPEEDUPS is not None:
    # what the compiled step timer and wait edges read and write (steps.py, tails.py):
    # the classes' slots in place, at their offsets; anything else through getattr
    from asyncio import _get_running_loop

    SPEEDUPS.configure_accounting(
        PER_THREAD,
        CURRENT,
        CHARGED,
        ACTIVITY,
        _get_running_loop,
        Segment,
        LoopState,
        Account,
        _Charged,
    )
