"""What :meth:`~latency_ledger.collect.collector.Collector.finish` books with, besides
the light spans' direct ledger (``light_booking.py``).

Contract: module-level functions the collector calls as it ends a request, each taking
what it needs. :func:`book_through_the_ledger` books a request with child spans the
direct rule cannot take (nested, overlapping or SDK ones) by the offline ledger's own
rule; :func:`whole_cpu` adds the request's tail bounds (tails.py) and the CPU that native
libraries' threads ran for it (cpu.py) as SERVER span attributes, and the process's CPU
window when one ends; :func:`export_share_ns` spreads the export thread's CPU over the
requests; :func:`steps_cost_ns` is what wrapping its task steps and tasks cost (and
those of no request since the last one finished, counted on its loop's state);
:func:`recorded_path` is what ``url.path`` records; :func:`address` the server's
address. Each is called as often as the method it was (``whole_cpu`` and ``address``
once per request, the others less) and keeps no state of its own: what persists lives
on the collector (or the loop's state) and is passed in. Nothing here imports the collector
(it is named for typing only); a failure goes up through ``finish``, whose callers (the
middleware) count it and write the request without its ledger (``Collector.abandon``).
"""

from __future__ import annotations

from collections.abc import Mapping
from time import clock_gettime_ns, pthread_getcpuclockid
from typing import TYPE_CHECKING, Any

from latency_ledger.collect.accounting import LoopState
from latency_ledger.collect.booking import (
    book_request_record,
    book_without_children,
    to_model_span,
)
from latency_ledger.collect.cpu import FlightClock, ProcessWindow
from latency_ledger.collect.light_booking import model_spans
from latency_ledger.collect.processor import RequestRecord, tail_attributes
from latency_ledger.collect.scrub import scrub_path
from latency_ledger.collect.steps import STEPS, TASKS
from latency_ledger.model import Span, SpanKind

if TYPE_CHECKING:
    from latency_ledger.collect.collector import Collector

EXPORT_EVERY = 64  # requests between two reads of the export thread's CPU clock
# a request's tail bounds (tails.py), written when not zero
_BOUND_ATTRIBUTES = (
    "ledger.database_wait_max_ns",
    "ledger.network_wait_max_ns",
    "ledger.unbounded_io_ns",
)


def address(scope: Mapping[str, Any]) -> str | None:
    address = scope.get("server")
    return str(address[0]) if address and address[0] is not None else None


def whole_cpu(
    flight: FlightClock,
    cpu_window: ProcessWindow,
    acct: RequestRecord,
    parts: tuple[int, ...],
    cpu: int,
) -> tuple[tuple[int, ...], tuple[tuple[str, int], ...]]:
    """The request's bounds (tails.py) and native libraries' threads' CPU charged to
    it (cpu.py), as SERVER span attributes, and the process's CPU window when one
    ends; ``parts`` with its queueing less that CPU where the process's CPU clock was
    the busy counter (threads.py: there those threads' CPU looked like others' work)."""
    waiting, queueing = parts[3], parts[4]
    process_cpu = not isinstance(acct.loop_state, LoopState)
    idle = waiting if process_cpu else waiting - queueing
    threads, bound, process_now = flight.native_threads(
        acct.cpu_start, idle, acct.overhead_ns, sum(parts[:4]), cpu
    )
    more = (
        [
            (name, value)
            for name, value in zip(_BOUND_ATTRIBUTES, parts[5:8], strict=True)
            if value > 0
        ]
        if parts[5] or parts[6] or parts[7]
        else []
    )
    if threads > 0:
        more.append(("ledger.native_threads_ns", threads))
        more.append(("ledger.native_threads_max_ns", bound))
        if process_cpu and queueing > 0:
            queueing = max(0, queueing - threads)
            parts = (*parts[:4], queueing, *parts[5:])
    # booked: all the CPU its threads ran, inside wait spans too (SQLite's engine runs
    # on the calling thread and is booked as database time, not left unbooked)
    charged = acct.charged_ns if acct.charged_ns > cpu else cpu
    window = cpu_window.add(charged + threads, process_now)
    if window is not None:
        more.append(("ledger.process_cpu_ns", window[0]))
        more.append(("ledger.booked_cpu_ns", window[1]))
    return parts, tuple(more) if more else ()


def export_share_ns(collector: Collector, requests: int) -> int:
    """The export thread's CPU per request (encoding, writing), re-measured every
    ``EXPORT_EVERY`` requests from its own CPU clock and spread evenly: the
    collector's cost too, though no request waits for it. The last reading is kept on
    the collector (``_export_seen``, ``_export_per_request``)."""
    if requests % EXPORT_EVERY:
        return collector._export_per_request
    thread = getattr(collector.sink, "_thread", None)
    ident = getattr(thread, "ident", None)
    if ident is None:
        return collector._export_per_request
    try:
        cpu = clock_gettime_ns(pthread_getcpuclockid(ident))
    except OSError:  # the thread just ended
        return collector._export_per_request
    seen_ident, seen_cpu, seen_requests = collector._export_seen
    if seen_ident == ident and requests > seen_requests:
        collector._export_per_request = max(0, cpu - seen_cpu) // (requests - seen_requests)
    collector._export_seen = (ident, cpu, requests)
    return collector._export_per_request


def steps_cost_ns(acct: RequestRecord) -> int:
    """What our wrapping of task steps and tasks cost for this request: its own steps,
    and on an event loop also the steps and tasks wrapped there since the last request
    finished that no request was charged (``LoopState.free_steps``, ``tasks_made``: tasks
    of no request, a background task's steps), each at its kind's measured mean
    (``STEPS``, ``TASKS``; selfcost.py). So every step and task we wrap is charged once,
    to the request it ran for or else to the next one to finish. Before, the steps of no
    request were charged to none: in-process, four concurrent clients each awaiting its
    requests' tasks left a third of the steps we wrapped out of the figure."""
    state = acct.loop_state
    if type(state) is not LoopState:
        return acct.steps * STEPS.mean_ns + TASKS.mean_ns if acct.steps else 0
    # the step the request ends in is in acct.steps: the middleware takes it off
    # free_steps after this, before the step ends and counts it there
    steps = acct.steps + state.free_steps
    tasks = state.tasks_made
    state.free_steps = state.tasks_made = 0
    return steps * STEPS.mean_ns + tasks * TASKS.mean_ns


def book_through_the_ledger(
    acct: RequestRecord,
    name: str,
    start_ns: int,
    end_ns: int,
    failed: bool,
    cpu: int,
    queueing: int,
    service: str,
    rules: tuple[Any, ...],
) -> tuple[Any, tuple[Any, ...]]:
    """The request's ledger by the offline ledger's own rule (nested, overlapping or
    SDK child spans), and its booked calls (``model.Call``)."""
    server = acct.server
    model_server = Span(
        trace_id=f"{server.context.trace_id:032x}",
        span_id=f"{server.context.span_id:016x}",
        parent_span_id="",
        name=name,
        kind=SpanKind.SERVER,
        start_ns=start_ns,
        end_ns=end_ns,
        is_error=failed,
        attributes={"ledger.cpu_ns": cpu, "ledger.queueing_ns": queueing},
        service=service,
    )
    request = book_request_record(
        model_server,
        [
            *model_spans(acct.lights, model_server),
            *(
                to_model_span(child, service, extra=tail_attributes(acct, child))
                for child in acct.children
            ),
        ],
        rules,
    )
    if request is None:
        return book_without_children(max(0, end_ns - start_ns), cpu, queueing), ()
    return request.ledger, request.calls


def recorded_path(
    route: str, scope: Mapping[str, Any], record_raw_path: bool, paths: dict[str, str]
) -> str:
    """``url.path``: the route template (a raw path may hold a token or an e-mail),
    else the path scrubbed (``paths``: the collector's cache of raw path -> scrubbed);
    the raw path only when ``record_raw_path`` is set."""
    raw = str(scope.get("path", ""))
    if record_raw_path:
        return raw
    if route:
        return route
    cached = paths.get(raw)
    if cached is None:
        if len(paths) >= 10_000:  # raw paths are attacker-chosen: stay bounded
            paths.clear()
        cached = paths[raw] = scrub_path(raw)
    return cached
