"""All the process's CPU: what threads native libraries start for a request, and what no
request was charged.

Contract:

- :class:`FlightClock` is read when a request begins (:meth:`FlightClock.begin`) and ends
  (:meth:`FlightClock.native_threads`): the process's CPU clock, ``accounting.CHARGED``
  (every CPU nanosecond the hooks read from a Python thread's clock for a request, wait
  spans included) and how many requests were in flight. Over the request's life, the
  process's CPU less ``CHARGED`` is CPU no request thread ran: threads a native library
  started (argon2-cffi hashes in ``parallelism`` threads of its own; the caller's thread
  clock sees ~5% of it), the export thread, the server's work outside requests (its
  protocol callbacks), the app's own background threads. It is charged to the request
  when it looks like threads working for it:

  - at least ``MIN_NS``, and at least ``OWN_RATIO`` times the request's own CPU (the
    case this is for: a call whose threads do most of the work, argon2's 4 lanes burn
    ~12x the caller's CPU; other Python threads' work, an in-process stub server's or
    the server's own for other requests, came to 0.6-0.94x the request's CPU in the
    known answers' contended runs; a native call smaller than that is left as waiting,
    a known gap);
  - the request sat off its CPU with nothing instrumented (a native call waits for its
    threads there) for at least ``MIN_NS`` and at most ``IDLE_RATIO`` times that CPU
    (threads working for a waiting caller burn CPU for most of the wait, though on a
    loaded machine they wait for a core too: 4 lanes got ~1 core, 4x, here);
  - that CPU is at least a ``WALL_RATIO``-th of the request's life (a request queued
    for long behind others does not collect their servers' work).

  Then all of it when no other request was in flight meanwhile, else an even share among
  the requests that were, with the whole as the bound (it may all be another request's,
  or the server's).
- :class:`ProcessWindow` compares the process's CPU with the CPU booked to requests (their
  own CPU plus native threads' CPU charged to them) over windows of at least
  ``WINDOW_NS``: at the first request after a window ends it returns both deltas, which
  the collector writes on that request's SERVER span (``ledger.process_cpu_ns``,
  ``ledger.booked_cpu_ns``); the analyzer sums them over spans (deltas, not cumulative
  counters, so several processes and lost spans add up the same way on both sides).

Not seen: the process's CPU before the collector started (imports, start-up) and after
the last window.
"""

from __future__ import annotations

from time import perf_counter_ns, process_time_ns

from latency_ledger.collect.accounting import CHARGED

__all__ = ["MIN_NS", "WINDOW_NS", "FlightClock", "ProcessWindow"]

MIN_NS = 1_000_000  # below a millisecond, native threads are not told apart from noise
IDLE_RATIO = 10  # the request's idle time at most this many times the unclaimed CPU
WALL_RATIO = 40  # the unclaimed CPU at least this share (1/40) of the request's life
OWN_RATIO = 2  # the unclaimed CPU at least this many times the request's own CPU
WINDOW_NS = 1_000_000_000


class FlightClock:
    """Requests in flight, and the clocks each one's native-thread share is read from
    (thread-safe enough: a lost update under a thread switch shifts one share)."""

    __slots__ = ("begun", "in_flight")

    def __init__(self) -> None:
        self.in_flight = 0
        self.begun = 0

    def begin(self, process_ns: int | None = None) -> tuple[int, int, int, int]:
        """A request begins: (process CPU, charged CPU, in flight with it, begun so far).
        ``process_ns``: the process's CPU clock if the caller just read it."""
        self.in_flight += 1
        self.begun += 1
        if process_ns is None:
            process_ns = process_time_ns()
        return process_ns, CHARGED.ns, self.in_flight, self.begun

    def native_threads(
        self,
        start: tuple[int, int, int, int] | None,
        idle_ns: int,
        own_ns: int = 0,
        wall_ns: int = 0,
        cpu_ns: int = 0,
    ) -> tuple[int, int, int | None]:
        """A request ends: (native threads' CPU charged to it, its bound, the process's
        CPU clock now or None when it was not read); ``idle_ns``: its time off CPU with
        nothing instrumented; ``wall_ns``: its life; ``cpu_ns``: its own CPU;
        ``own_ns``: the collector's own work for it (``overhead_ns``: no request's CPU
        clock counts it, and a first profile's import can take tens of ms).

        The process's clock is a system call: a request idle for less than ``MIN_NS``
        (nearly all) is charged none whatever it reads, so it is not read then."""
        flying = self.in_flight  # not max(): it parses keywords, for every request
        self.in_flight = flying - 1 if flying > 0 else 0
        if start is None or idle_ns < MIN_NS:
            return 0, 0, None
        now = process_time_ns()
        process0, charged0, flying, begun0 = start
        unclaimed = (now - process0) - (CHARGED.ns - charged0) - own_ns
        if (
            idle_ns < MIN_NS
            or unclaimed < MIN_NS
            or idle_ns > IDLE_RATIO * unclaimed
            or wall_ns > WALL_RATIO * unclaimed
            or cpu_ns * OWN_RATIO > unclaimed
        ):
            return 0, 0, now
        # itself, the others in flight when it began, and those begun since
        sharing = max(1, flying + self.begun - begun0)
        return unclaimed // sharing, unclaimed, now


class ProcessWindow:
    """The process's CPU and the CPU booked to requests, in windows (module docstring)."""

    __slots__ = ("booked", "last_ns", "process0")

    def __init__(self) -> None:
        self.process0 = process_time_ns()
        self.last_ns = perf_counter_ns()
        self.booked = 0

    def add(self, booked_ns: int, process_ns: int | None = None) -> tuple[int, int] | None:
        """One request's booked CPU; at a window's end (process CPU, booked CPU) over it.
        ``process_ns``: the process's CPU clock if just read, else read here when needed."""
        self.booked += booked_ns
        now = perf_counter_ns()
        if now - self.last_ns < WINDOW_NS:
            return None
        if process_ns is None:
            process_ns = process_time_ns()
        out = (max(0, process_ns - self.process0), self.booked)
        self.process0, self.last_ns, self.booked = process_ns, now, 0
        return out
