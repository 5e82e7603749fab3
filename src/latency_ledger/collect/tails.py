"""The end of an I/O span that was waiting for Python, not for the I/O.

A wait span (a database statement, an HTTP call) ends when Python resumes, not when the
I/O finished: after the reply arrives, the request still needs the event loop (busy with
other tasks' steps) or the interpreter lock (held by other threads). That stretch, the
span's *tail*, is queueing (a faster runtime shrinks it), not database or network.

Contract:

- :func:`others_clock` reads clocks of the work other than the calling request's that
  can keep it from resuming: the CPU of the process's other threads plus, on an
  event-loop thread, the wall time of other tasks' steps (``LoopState.busy_ns`` minus the
  account's own steps); and the wall time request and pool threads spent in Python
  (``accounting.ACTIVITY``: holding the interpreter lock or queueing for it). Read at a
  wait span's start and end, the larger difference is the span's ``bound``; on an event
  loop, :func:`loop_streak_ns` can widen it. The tail cannot be longer (it is time others
  ran while the request could not), nor longer than the span. A bound, not a
  measurement: where in the span the I/O finished is not visible from Python (the I/O
  completes in C or in the kernel, without the lock).
- :func:`run_delay_ns` reads how long this thread waited for a CPU (the kernel's
  scheduler statistics): within a span, that stretch was not the thread waiting on the
  I/O (it was runnable) and not queueing behind this process's other requests either
  (the OS ran someone else); it is booked as unattributed waiting. Off a loop it may
  still overlap the I/O in flight (the thread preempted just after it sent the
  statement; measured against PostgreSQL's own clock of a ``pg_sleep``: up to ~0.7 ms),
  so the I/O part can come out short by that overlap, never long. Read on an event
  loop's thread too: on a loaded machine a loop idle in its poll wakes for the reply
  and then waits for a CPU (measured at load ~11 on 2 cores: a ``SELECT 1`` alone read
  3-30 ms of span for 0.6 ms of I/O), and without the delay that wait would be learnt
  as the statement's typical I/O time and booked as database ever after. There the delay may
  also fall while the I/O is still in flight (the OS preempting another task's step),
  so the I/O part can come out short by up to that overlap, never long: a delay during
  another task's step is also inside that step's wall time, and the bound below is
  clipped to what is left of the span once the delay is taken out. The two reads sit
  next to the span's start and end times, before our other bookkeeping at each edge
  (:func:`wait_ended_at` says why).
- :class:`TypicalIo` turns (span, delay, bound) into the tail the ledger books. A span
  during which others barely ran (``bound <= rest / 10``, ``rest`` being the span minus
  its delay) is *clean*: it books no tail (a tenth of contention is noise, not worth a
  guess) and teaches the statement's (or call's) typical I/O time, the mean of its last
  15 clean spans less the fastest and slowest fifth (a mean, not a median: a request's
  I/O is a sum of such calls, and a mean keeps the sum near unbiased where call times
  are skewed; trimmed, so one cold first call does not move it). A contended span's I/O
  is estimated as that typical time, so its tail is ``rest - typical`` clipped to
  ``[0, bound]``. With no clean sample yet the whole bound is the tail (the I/O part is
  then its lower bound: an uncertain stretch is never booked as database).

So the truth lies in ``[rest - bound, rest]`` for the I/O part and the booked figure
``rest - tail`` is inside it; ``tail``, ``bound`` and ``delay`` travel on the span
(``ledger.queueing_ns``, ``ledger.queueing_max_ns``, ``ledger.unattributed_ns``) and
the ledger moves ``tail`` (the span's last part) and ``delay`` (just before it) out of
the span's category into own time, the tail as queueing.

Cost per wait span: off a loop, two reads of the process CPU clock (system calls, ~0.6
us each here; the thread's CPU clock is the one the request's accounting reads at the
span's edges anyway, passed in), two reads of the scheduler statistics (~2-3 us each,
4-6 us in a busy server), and a dict lookup at its end. The scheduler statistics and
``accounting.ACTIVITY`` are read by compiled code where ``latency-ledger-speedups`` is
installed (``compiled.py``: ~600 instructions a read against ~7,400 through ctypes).
"""

from __future__ import annotations

import contextlib
import os
import threading
from asyncio import _get_running_loop
from bisect import bisect_left, insort
from collections.abc import Callable
from time import perf_counter_ns, process_time_ns, thread_time_ns
from typing import Any

from latency_ledger.collect.accounting import (
    ACTIVITY,
    LoopState,
    pause_for_wait,
    resume_after_wait,
)
from latency_ledger.collect.compiled import SPEEDUPS

__all__ = [
    "MAX_KEYS",
    "TypicalIo",
    "ended_clocks",
    "loop_streak_ns",
    "others_clock",
    "pause_and_start",
    "read_run_delay_ns",
    "resume_and_end",
    "run_delay_ns",
    "span_key",
    "wait_begins",
    "wait_ended",
    "wait_ended_at",
    "wait_ends",
    "wait_started",
]

MAX_KEYS = 4_096  # statements/calls remembered; more (unbounded raw SQL) start over
_CLEAN_DIVISOR = 10  # clean: others ran for at most a tenth of the span
_WINDOW = 15  # clean spans per statement whose trimmed mean is its typical I/O time


def others_clock(acct: Any) -> tuple[int, int]:
    """Two clocks of others' work that could delay ``acct``'s resumption, in ns; a span's
    bound is the larger difference.

    - off an event loop, the CPU of the process's other threads (not this thread's own:
      inside the span it runs the request's own driver code); on an event-loop thread,
      the wall time of other tasks' steps (a step the OS preempted still held the loop).
      Not other threads' CPU there: the loop idles in its poll without the interpreter
      lock, so a thread running meanwhile (the collector's own export thread) delays it
      only if it still holds the lock when the reply comes; ``ACTIVITY`` counts request
      and pool threads.
    - request and pool threads' wall time in Python, ``accounting.ACTIVITY`` (a lock
      holder the OS preempted still holds the lock; a CPU clock misses it), less the
      request's own threads' (one may be blocked waiting for this very span).

    Not seen: the loop's own work between steps (polls, I/O callbacks) and time it sat
    idle; :func:`loop_streak_ns` covers the former when steps come back to back.
    """
    state = acct.loop_state
    if type(state) is LoopState and _get_running_loop() is not None:
        return state.busy_ns - acct.loop_ns, ACTIVITY.read_others(acct)
    return process_time_ns() - thread_time_ns(), ACTIVITY.read_others(acct)


def loop_streak_ns(acct: Any) -> int:
    """On ``acct``'s event-loop thread: how long the loop has been busy without a break
    (steps back to back, see ``steps.STREAK_GAP_NS``) up to now; else 0.

    A second bound on a span's tail, for the loop: it also covers the loop's own work
    between steps (I/O callbacks) and moments the OS took the CPU away, which
    :func:`others_clock` does not see; it would also cover I/O still in flight when the
    stretch began, which is why the typical I/O time is kept out of the tail anyway. It
    is used only when other tasks' steps fill at least half of it: a fast reply on an
    idle loop also resumes within the gap, and its stretch is the request's own.
    """
    state = acct.loop_state
    if type(state) is not LoopState or _get_running_loop() is None:
        return 0
    return perf_counter_ns() - state.streak_start_ns


def wait_started(acct: Any, thread_ns: int = -1, delay_ns: int = -1) -> tuple[tuple[int, int], int]:
    """At a wait span's start (after pausing the request's CPU): :func:`others_clock`
    and this thread's :func:`run_delay_ns`. ``thread_ns``: this thread's CPU clock if
    the caller just read it (``pause_for_wait`` does; -1: read here). ``delay_ns``: the
    run delay if the caller read it next to the span's start time (-1: read here; see
    :func:`wait_ended_at` for why it should). Written out, as :func:`wait_ended_at`: both
    run at every wait span."""
    if delay_ns < 0:
        delay_ns = run_delay_ns()
    state = acct.loop_state
    if type(state) is LoopState and _get_running_loop() is not None:
        return (state.busy_ns - acct.loop_ns, ACTIVITY.read_others(acct)), delay_ns
    process = process_time_ns()
    if thread_ns < 0:
        thread_ns = thread_time_ns()
    return (process - thread_ns, ACTIVITY.read_others(acct)), delay_ns


def wait_ended(
    acct: Any,
    typical: TypicalIo,
    key: tuple[str, str],
    length_ns: int,
    started: tuple[tuple[int, int], int],
    delay_ns: int = -1,
) -> tuple[int, int, int]:
    """At its end: (tail, delay, bound) of a wait span ``length_ns`` long that
    :func:`wait_started` read ``started`` for (:meth:`TypicalIo.tail`); ``delay_ns`` as
    :func:`wait_ended_at` takes it."""
    tail, delay, bound, _ = wait_ended_at(acct, typical, key, length_ns, started, delay_ns)
    return tail, delay, bound


def wait_ended_at(
    acct: Any,
    typical: TypicalIo,
    key: tuple[str, str],
    length_ns: int,
    started: tuple[tuple[int, int], int],
    delay_ns: int = -1,
) -> tuple[int, int, int, int]:
    """:func:`wait_ended`, and this thread's CPU clock as read for it (-1 on a loop),
    which ``resume_after_wait`` takes instead of reading it again.

    ``delay_ns``: this thread's run delay read right after the span's end time (-1:
    read here, after the other clocks). The two run-delay reads must sit next to the
    span's start and end times: our bookkeeping between a time and its read runs on the
    CPU, and on a loaded machine the OS preempts a thread there for a whole time slice.
    Read after the bookkeeping at the start, such a wait fell inside the span and
    outside the delay, and was booked as I/O (measured under gunicorn gthread with 3 CPU
    burners on 2 cores: 10 ``SELECT 1`` the view timed at 0.7-7 ms, CPU waits aside,
    booked 2-22 ms of database in 14 of 45 requests alone)."""
    bound, delay, thread_ns = ended_clocks(acct, length_ns, started, delay_ns)
    tail, delay, bound = typical.tail(key, length_ns, bound, delay)
    return tail, delay, bound, thread_ns


def ended_clocks(
    acct: Any, length_ns: int, started: tuple[tuple[int, int], int], delay_ns: int = -1
) -> tuple[int, int, int]:
    """:func:`wait_ended_at`'s clocks: (bound, delay, this thread's CPU clock as read
    for them or -1), before :meth:`TypicalIo.tail` makes the tail of them."""
    (cpu0, activity0), delay0 = started
    state = acct.loop_state
    thread_ns = -1
    streak = 0
    if type(state) is LoopState and _get_running_loop() is not None:
        cpu, activity = state.busy_ns - acct.loop_ns, ACTIVITY.read_others(acct)
        # the loop's busy stretch up to now also covers its gaps between steps (its own
        # callbacks, the OS's preemptions), when other tasks' steps fill most of it
        streak = perf_counter_ns() - state.streak_start_ns
        if streak > length_ns:
            streak = length_ns
    else:
        process = process_time_ns()
        thread_ns = thread_time_ns()
        cpu, activity = process - thread_ns, ACTIVITY.read_others(acct)
    others = cpu - cpu0  # the larger (not max(): it parses keywords, at every span)
    if activity - activity0 > others:
        others = activity - activity0
    bound = streak if streak > others and others * 2 >= streak else others
    # the OS kept this thread waiting for a CPU (mostly before the statement went out
    # or after its reply came; either way, see run_delay_ns in the module's contract)
    if delay_ns < 0:
        delay_ns = run_delay_ns()
    delay = delay_ns - delay0 if delay0 >= 0 else 0
    return bound, delay, thread_ns


def pause_and_start(acct: Any, delay_ns: int) -> tuple[tuple[int, int], int]:
    """A wait span of ``acct`` starts (its run delay ``delay_ns`` read next to its start
    time): the request's CPU paused (``accounting.pause_for_wait``) and the clocks its
    end compares with (:func:`wait_started`). :func:`wait_begins` is this, or its
    compiled twin."""
    return wait_started(acct, pause_for_wait(acct), delay_ns)


def resume_and_end(
    acct: Any, length_ns: int, started: tuple[tuple[int, int], int], delay_ns: int = -1
) -> tuple[int, int] | None:
    """The wait span :func:`pause_and_start` began ends, ``length_ns`` long (0: not
    measured, its times were the caller's): (bound, delay) from :func:`ended_clocks`
    when measured, else None; the request's CPU resumes (``accounting.resume_after_wait``,
    with the thread's CPU clock read for the clocks). :func:`wait_ends` is this, or
    its compiled twin."""
    if length_ns <= 0:
        resume_after_wait(acct)
        return None
    bound, delay, thread_ns = ended_clocks(acct, length_ns, started, delay_ns)
    resume_after_wait(acct, thread_ns)
    return bound, delay


def span_key(name: str, attributes: dict[str, Any]) -> tuple[str, str]:
    """What makes two wait spans the same I/O: their name and statement (or URL)."""
    get = attributes.get
    what = (
        get("db.query.text")
        or get("db.statement")
        or get("url.full")
        or get("http.url")
        or get("server.address")
        or ""
    )
    return name, what if type(what) is str else str(what)


class TypicalIo:
    """Each statement's typical I/O time: the trimmed mean of its last clean spans
    (thread-safe enough: a lost update under a thread switch only delays it).

    Runs at every wait span's end, so each statement keeps its window twice: in
    arrival order (``recent``, which one leaves next) and sorted (``ordered``, kept so
    with a bisect per span rather than a sort), and the arithmetic is written out."""

    __slots__ = ("ordered", "recent", "typical")

    def __init__(self) -> None:
        self.recent: dict[tuple[str, str], list[int]] = {}
        self.ordered: dict[tuple[str, str], list[int]] = {}
        self.typical: dict[tuple[str, str], int] = {}

    def tail(
        self, key: tuple[str, str], length_ns: int, bound_ns: int, delay_ns: int = 0
    ) -> tuple[int, int, int]:
        """(tail, delay, bound) in ns of a span ``length_ns`` long during which others ran
        ``bound_ns`` and the OS kept its thread off the CPU ``delay_ns``: the tail to book
        as queueing, the delay as unattributed waiting, the bound on the tail."""
        length = length_ns if length_ns > 0 else 0
        delay = delay_ns if delay_ns > 0 else 0
        if delay > length:
            delay = length
        rest = length - delay  # the I/O and waiting for the loop or the lock
        bound = bound_ns if bound_ns > 0 else 0
        if bound > rest:
            bound = rest
        if bound * _CLEAN_DIVISOR <= rest:  # clean: its own I/O time, no tail
            self._learn(key, rest)
            return 0, delay, bound
        typical = self.typical.get(key)
        if typical is None:
            return bound, delay, bound
        tail = rest - typical
        return (0 if tail < 0 else (bound if tail > bound else tail)), delay, bound

    def _learn(self, key: tuple[str, str], length: int) -> None:
        recent = self.recent.get(key)
        if recent is None:
            if len(self.recent) >= MAX_KEYS:
                self.recent.clear()
                self.ordered.clear()
                self.typical.clear()
            recent = self.recent[key] = []
        recent.append(length)
        ordered = self.ordered.get(key)
        if ordered is not None:
            insort(ordered, length)
            if len(recent) > _WINDOW:
                gone = recent.pop(0)
                at = bisect_left(ordered, gone)
                if at < len(ordered) and ordered[at] == gone:
                    del ordered[at]
        elif len(recent) > _WINDOW:
            del recent[0]
        if ordered is None or len(ordered) != len(recent):
            # new, or a thread switch mid-update left the two apart: sorted afresh
            ordered = self.ordered[key] = sorted(recent)
        size = len(ordered)
        trim = size // 5  # a fifth off each end: one cold or odd call moves nothing
        self.typical[key] = sum(ordered[trim : size - trim]) // (size - 2 * trim)


def _pread_holding_the_lock() -> Any:
    """libc's ``pread`` called with the interpreter lock held (``ctypes.PyDLL``), or None.

    Why not ``os.pread``: it lets go of the lock around the read, and on a busy server
    another thread takes it; this thread then waits to get it back in the middle of our
    bookkeeping around the span: at its start that wait falls inside the span, off the
    CPU, where only the bound tells it from I/O; at its end it delays the request. Measured
    in uvicorn on the realistic endpoint (a ``def`` view, 8 worker threads): 94 us of wall
    time per read for 3.8 us of CPU, ten reads a request; held, the read's CPU is the same
    (side by side, same run) and the wall time is its CPU."""
    try:
        import ctypes

        pread = ctypes.PyDLL(None).pread
    except (ImportError, OSError, AttributeError):  # no ctypes, or no libc to find
        return None
    # no argtypes: each thread passes ctypes objects made once (_SchedStat), where
    # argtypes would convert four Python values per read (~4,000 instructions of ~10,000)
    pread.restype = ctypes.c_ssize_t
    return pread


_PREAD = _pread_holding_the_lock()


class _SchedStat(threading.local):
    """This thread's ``/proc/thread-self/schedstat``, opened on the thread's first read
    (closed when the thread ends and its local goes), and ``args``: what ``_PREAD`` reads
    it with (the descriptor, the buffer, its size, offset 0, as ctypes objects), or None
    (``os.pread`` then)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.args: tuple[Any, ...] | None = None
        try:
            self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        if _PREAD is not None:
            import ctypes

            self.args = (
                ctypes.c_int(self.fd),
                ctypes.create_string_buffer(64),
                ctypes.c_size_t(64),
                ctypes.c_long(0),
            )

    def __del__(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)


_SCHEDSTAT = _SchedStat()


def _schedstat_in_child() -> None:
    # the descriptor names the thread that opened it: a forked child (gunicorn --preload
    # imports us in the master) would read its parent's thread ever after
    global _SCHEDSTAT
    _SCHEDSTAT = _SchedStat()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_schedstat_in_child)


def read_run_delay_ns() -> int:
    """How long this thread has been runnable but not running (waiting for a CPU), in ns,
    from the kernel's scheduler statistics; 0 where they are not available.
    :func:`run_delay_ns` is this, or its compiled twin (``compiled.py``)."""
    stat = _SCHEDSTAT
    args = stat.args
    try:
        if args is not None:
            size = _PREAD(*args)
            # the first two fields are rewritten by every read (stale bytes could only
            # follow them): ``value`` stops at the buffer's first NUL, one copy, no slice
            return int(args[1].value.split(None, 2)[1]) if size > 0 else 0
        fd = stat.fd
        return int(os.pread(fd, 64, 0).split()[1]) if fd is not None else 0
    except (OSError, IndexError, ValueError):
        return 0


def _run_delay_reader() -> Any:
    if SPEEDUPS is None:
        return read_run_delay_ns
    return SPEEDUPS.run_delay_ns  # its package re-opens the file in a forked child too


run_delay_ns: Callable[[], int] = _run_delay_reader()
# a light wait span's two edges (light.py): compiled where installed, the same steps
wait_begins: Callable[[Any, int], tuple[tuple[int, int], int]] = (
    SPEEDUPS.pause_and_start if SPEEDUPS is not None else pause_and_start
)
wait_ends: Callable[[Any, int, tuple[tuple[int, int], int], int], tuple[int, int] | None] = (
    SPEEDUPS.resume_and_end if SPEEDUPS is not None else resume_and_end
)
