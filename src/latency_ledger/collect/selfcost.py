"""The collector's own cost, measured on the CPU clock of 1 in N of its events.

Contract: a :class:`Meter` stands for one kind of event of the collector (a request's
bookkeeping around the app, a plugin's wrapper around one statement, one worker-thread
call, one server-pool call, one light span, one task step, one task's wrapping).
:meth:`Meter.due` says whether this event is measured (the first few, then every
``every``-th); a measured event reads this thread's CPU clock at the edges of the
collector's stretches of work and hands their sum to :meth:`Meter.record`; every event,
measured or not, is charged :attr:`Meter.mean_ns` (to its request, and to its plugin,
see ``LightTracer.charge``).

Why the thread's CPU clock and not the wall clock: under a thread-per-request server or
anyio's worker threads, a stretch of our code timed by the wall clock also holds the
time its thread waited for the interpreter lock while other threads ran (about the
number of runnable threads times the code's own time): measured so on a 16-connection
load, the plugins' wrappers read ~0.9 ms per request where the worker's CPU rose by 0.6
ms for everything. A thread's CPU clock advances only while it runs. Why 1 in N: the
clock is a system call here (~0.55 us), as expensive as the wrapper it would time.

Bound: the mean is a moving average over the last ~32 measured events (``_WINDOW``;
the very first measured event seeds it and the second replaces it), so a request is
charged its kind's typical cost, not its own: a request whose statements were all
first seen (described and sanitized, ~30 us each) is charged less than it cost, later
ones slightly more, and the sum over many requests converges to the total. The clock
read at each edge of a stretch is partly inside it: one read (``CLOCK_READ_NS``,
measured at import) is taken off per stretch.

What the figure left out, and how that was found: side by side (bench_collect.py,
bench_django.py) the figure was 0.60-0.78 of what the worker's CPU per request rose by
on FastAPI and 0.57-0.81 on Django. That was put down to the app's own code running
slower beside ours (shared CPU caches, the garbage collector, thread switches); tested,
it was not that. Under callgrind (bench_instructions.py), where an instruction costs the
same whatever the caches hold, the same shortfall showed: driven in-process by four
clients, FastAPI's /hello spent 19-21% of its CPU in what the figure reported while ours
added 30% of its instructions (0.64-0.69), /one 16% against 24% (0.68); and the cyclic
garbage collector ran no collection in 800 /hello requests, bare or ours. So it was
work of ours that no meter covered. Found since: the steps of tasks no request owns (a
client's, an app's background tasks) and the tasks our factory wraps for them, charged
to none; they are counted on the loop and charged to the next request to finish
(``finishing.steps_cost_ns``). With the step hook compiled (speedups) and those charged,
the same check read 1.06 on /hello and 0.98 on /one. A measured step still runs
Python around the compiled one (``_measured_step`` and its probe), so ``STEPS`` may
read above a compiled step's cost. Also not measured: the code of OpenTelemetry
instrumentations a plugin switches on outside the spans they record. Why measured in
the server and not calibrated at start-up: the same code costs 3-5x more between a
server's other work than in a hot loop (cold caches; a task step read 1.2 us
calibrated, ~5 us in uvicorn, a schedstat read 0.6 against 4 us), so a calibration is
only the seed until the first measured event (``spans.calibrate_step_cost``); a hot
loop timing a whole wrapped task step against a bare one (0.9-1.4 us a step) read no
more than the step meter did in the same process (1.1-1.8 us).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain, cycle, repeat
from time import thread_time_ns

__all__ = ["CLOCK_READ_NS", "NULL_METER", "Meter"]

_WINDOW = 32  # the moving average's horizon, in measured events
EVERY = 16  # measure 1 in EVERY events
_FIRST = 3  # and each of the first _FIRST


def _clock_read_ns(rounds: int = 64) -> int:
    """What one ``thread_time_ns`` read adds to a stretch it bounds (the fastest of
    ``rounds`` back-to-back pairs: the part of a read between its two clock samples)."""
    best = None
    for _ in range(rounds):
        a = thread_time_ns()
        b = thread_time_ns()
        if best is None or b - a < best:
            best = b - a
    return max(0, best or 0)


CLOCK_READ_NS = _clock_read_ns()


class Meter:
    """One kind of the collector's events: how many, and their mean CPU cost."""

    __slots__ = ("due", "every", "mean_ns", "samples", "stretches")

    due: Callable[[], bool]
    """Count an event; True when this one is to be measured: the first ``_FIRST`` (so
    the first requests are charged a measured cost, not none), then every ``every``-th.
    The ``__next__`` of an iterator of those answers: it runs for every statement, and a
    call into C costs a tenth of a Python method's."""

    def __init__(self, every: int = EVERY, stretches: int = 1) -> None:
        self.every = every
        head = -(-_FIRST // every) * every  # the first events, up to a whole period
        self.due = chain(
            [n <= _FIRST or n % every == 0 for n in range(1, head + 1)],
            cycle([n % every == 0 for n in range(1, every + 1)]),
        ).__next__
        self.samples = 0
        self.mean_ns = 0
        # how many stretches of our work one event's record() sums (one clock read off each)
        self.stretches = stretches

    def record(self, ns: int) -> None:
        """A measured event's CPU ns (the sum of its stretches, clock reads included).
        The first sample is replaced by the second (a first event's one-off work, imports
        and first-seen caches, is not typical); then a moving average."""
        ns -= CLOCK_READ_NS * self.stretches
        if ns < 0:
            ns = 0
        samples = self.samples + 1
        self.samples = samples
        if samples <= 2:
            self.mean_ns = ns
            return
        samples -= 1
        self.mean_ns += (ns - self.mean_ns) // (samples if samples < _WINDOW else _WINDOW)


class _NullMeter(Meter):
    """Never measures, charges nothing: for spans and wrappers outside a collector."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__()
        self.due = repeat(False).__next__

    def record(self, ns: int) -> None:
        return None


NULL_METER: Meter = _NullMeter()
