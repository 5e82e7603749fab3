"""Queueing for thread-per-request servers: the process's CPU clock as the busy counter.

Contract: an :class:`~latency_ledger.collect.accounting.Account` computes its queueing
candidate as ``loop_state.busy_ns - busy_start_ns - loop_ns``. Any object with an int
``busy_ns`` (attribute or property) that never goes down can be its ``loop_state``
(``accounting.LoopState`` is one). Under an event loop that is the loop's wall time in
task steps and ``loop_ns`` the request's own steps. A thread-per-request server (gunicorn
``gthread``, waitress, mod_wsgi, Django's runserver) has no loop: what keeps a runnable
request thread off the CPU is the other threads of the process holding the GIL. So
:data:`PROCESS_CPU` (:class:`ProcessCpu`) reads the process's CPU clock, and the caller
keeps in ``loop_ns`` the CPU its request spent in every thread; the candidate is then
what the rest of the process burned during the request's life. The ledger clips it to
the request's otherwise unexplained waiting (see ``Collector.finish``).

The caller's side, per request (``latency_ledger_django.middleware`` does this)::

    t0 = thread_time_ns()                       # read next to begin's process clock
    acct, token = collector.begin(scope, PROCESS_CPU, time_ns())
    charged0 = acct.cpu_ns
    begin_segment(acct); seg_t0 = PER_THREAD.seg.t0    # the app runs, charged to acct
    ...
    end_segment(); seg_ns = PER_THREAD.seg.t0 - seg_t0
    in_app = request_cpu_ns(seg_ns, acct.cpu_ns - charged0)
    acct.loop_ns += thread_time_ns() - t0 - seg_ns + in_app
    collector.finish(acct, ...)

That is: all this thread's CPU outside the app (the collector's own, a first profile's
import included), and inside it the request's CPU in every thread (see
:func:`request_cpu_ns`); each later stretch (a streaming body's chunk) the same way.

Not measured: other processes on the same cores (a thread clock does not advance while
the kernel runs someone else, so they never inflate CPU; their delay stays
``unattributed`` waiting, not queueing).
"""

from __future__ import annotations

from time import process_time_ns

__all__ = ["PROCESS_CPU", "ProcessCpu", "request_cpu_ns"]


class ProcessCpu:
    """The process's CPU time (all threads, user + system; exited threads included).

    Stateless, so one instance serves every request and thread; one ``clock_gettime``
    per read (the account reads it at begin and at finish).
    """

    __slots__ = ()

    @property
    def busy_ns(self) -> int:
        return process_time_ns()


PROCESS_CPU = ProcessCpu()


def request_cpu_ns(own_thread_ns: int, charged_ns: int) -> int:
    """All the CPU a request spent over one stretch of its serving thread, in that thread
    and in helper threads: what goes into its ``loop_ns``.

    ``own_thread_ns``: the serving thread's clock over the stretch, waits included.
    ``charged_ns``: what the account's ``cpu_ns`` grew by meanwhile: the request's CPU
    outside wait spans in every thread (its own, plus worker threads the collector's
    hooks charge to it, e.g. the event-loop thread ``async_to_sync`` starts for an async
    view under WSGI).
    The truth is ``charged_ns`` plus the serving thread's CPU inside wait spans (driver
    work), which no clock isolates; the maximum of the two is off by at most the smaller
    of the helpers' CPU and that in-wait CPU: exact for a request served by its own
    thread alone, and microseconds for one whose CPU is mostly in a helper thread.
    Without the helpers' share, their CPU would count both as the request's interpreter
    time and as other work it queued behind.
    """
    return max(own_thread_ns, charged_ns)
