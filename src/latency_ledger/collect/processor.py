"""A request's record, and the span processor that buffers its SDK child spans.

Contract: a :class:`RequestRecord` is an :class:`~latency_ledger.collect.accounting.Account`
plus what the collector keeps for the request until its end (its SERVER span's identity,
its light and SDK children, whether they are kept). :class:`LedgerSpanProcessor` is the
collector's processor on the SDK provider: it buffers each request's SDK child spans
until the request's SERVER span ends, then forwards them with it (kept) or drops them;
it pauses the request's CPU clock for the length of each SDK wait (CLIENT/PRODUCER) span
and measures its tail (tails.py), which :func:`tail_attributes` and :func:`with_tail`
give the ledger and the export. Nothing here raises into the app: failures are counted
on the collector's stats.
"""

from __future__ import annotations

from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from latency_ledger.collect.accounting import (
    CURRENT,
    PER_THREAD,
    Account,
    LoopState,
    pause_for_wait,
    resume_after_wait,
)
from latency_ledger.collect.light import LightSpan
from latency_ledger.collect.light_booking import DELAY_NS, TAIL_MAX_NS, TAIL_NS
from latency_ledger.collect.scrub import replaced_span
from latency_ledger.collect.tails import run_delay_ns, span_key, wait_ended, wait_started

if TYPE_CHECKING:
    from latency_ledger.collect.collector import Collector

_WAIT_KINDS = frozenset({trace.SpanKind.CLIENT, trace.SpanKind.PRODUCER})
# An SDK span whose start (end) time is further than this from when the processor saw it
# start (end) was given its times by the app (a span recorded after the fact): the
# clocks read then say nothing about it, so it gets no tail.
_NOW_NS = 1_000_000
MAX_CHILDREN = 2_000  # per request; more are dropped and counted
MAX_OPEN_SPANS = 100_000


class RequestRecord(Account):
    """An :class:`Account` plus what the processor buffers for the request."""

    __slots__ = (
        "children",
        "context_span",
        "cpu_start",
        "finished",
        "joined",
        "kept",
        "light",
        "lights",
        "max_children",
        "otel_token",
        "plugin_ns",
        "sdk_tails",
        "server",
        "server_id",
    )

    def __init__(self, loop_state: LoopState | None, busy_start_ns: int | None = None) -> None:
        super().__init__(loop_state, busy_start_ns)
        self.server: Any = None
        self.server_id = 0
        # the span begin put in the OpenTelemetry context for it (children's parent)
        self.context_span: Any = None
        self.joined = False
        self.otel_token: Any = None
        self.children: list[Any] = []
        self.finished = False
        self.kept = False
        self.light = False  # child spans of this request may be LightSpans (light.py)
        self.lights: list[LightSpan] = []
        self.max_children = MAX_CHILDREN
        self.cpu_start: tuple[int, int, int, int] | None = None  # cpu.FlightClock.begin
        # SDK wait spans' tails (tails.py): span id -> wait_started's clocks, then at its
        # end (tail, delay, bound); None until the request has one
        self.sdk_tails: dict[int, Any] | None = None
        # each plugin's share of overhead_ns, made when one first charges (LightTracer)
        self.plugin_ns: dict[str, int] | None = None


class LedgerSpanProcessor(SpanProcessor):
    """Buffers a request's child spans until its SERVER span ends, then forwards or drops.

    Also pauses the request's CPU clock for the length of each wait (CLIENT/PRODUCER)
    span, on the thread that starts and ends it, so ``cpu_ns`` counts CPU outside waits.
    """

    def __init__(self, collector: Collector) -> None:
        self._collector = collector
        self.active = True
        # span id -> its request; on_end gets a ReadableSpan copy, so the id is the key
        self.owner: dict[int, RequestRecord] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        if not self.active:
            return
        try:  # the SDK does not guard processors: an error here would reach the app
            acct = CURRENT.get() or PER_THREAD.seg.acct
            if not isinstance(acct, RequestRecord) or acct.finished:
                return
            if span.kind in _WAIT_KINDS:
                # a tail only for a span that starts now; its run delay read next to the
                # start time, before our bookkeeping (tails.wait_ended_at)
                now = abs(time_ns() - (span.start_time or 0)) <= _NOW_NS
                delay0 = run_delay_ns() if now else -1
                pause_for_wait(acct)
                if acct.sdk_tails is None:
                    acct.sdk_tails = {}
                if now:
                    acct.sdk_tails[span.context.span_id] = wait_started(acct, -1, delay0)
            owner = self.owner
            if len(owner) >= MAX_OPEN_SPANS:  # spans started and never ended: forget them
                owner.clear()
                self._collector.stats.errors += 1
            owner[span.context.span_id] = acct
        except Exception:
            self._collector.stats.errors += 1

    def on_end(self, span: Any) -> None:
        if not self.active:
            return
        collector = self._collector
        try:
            acct = self.owner.pop(span.context.span_id, None)
            if acct is None:  # outside any request (start-up work, background jobs)
                if collector.config.keep_spans != "none":
                    collector.sink.put((span,))
                return
            if span.context.span_id == acct.server_id:
                collector.sink.put((span, *acct.children) if acct.kept else (span,))
                acct.children = []
                return
            if acct.finished:  # outlived its request
                if acct.kept:
                    collector.sink.put((span,))
                return
            if span.kind in _WAIT_KINDS:
                self._measure_tail(acct, span)
                resume_after_wait(acct)
            if len(acct.children) + len(acct.lights) < MAX_CHILDREN:
                acct.children.append(span)
            else:
                collector.stats.dropped_spans += 1
        except Exception:
            collector.stats.errors += 1

    def _measure_tail(self, acct: RequestRecord, span: Any) -> None:
        """An SDK wait span's tail, as a light span's (tails.py); kept beside it, since an
        ended SDK span cannot take attributes (``with_tail`` adds them)."""
        tails = acct.sdk_tails
        started = tails.pop(span.context.span_id, None) if tails is not None else None
        length = (span.end_time or 0) - (span.start_time or 0)
        if started is None or length <= 0 or tails is None:
            return
        if abs(time_ns() - (span.end_time or 0)) > _NOW_NS:
            return  # given an end time of its own: our clocks were not read at its end
        # read next to the end time, before the other clocks (tails.wait_ended_at); only
        # for a span whose tail is measured (one system call)
        delay_ns = run_delay_ns()
        key = span_key(span.name, dict(span.attributes or {}))
        typical = self._collector.typical_io
        tails[span.context.span_id] = wait_ended(acct, typical, key, length, started, delay_ns)

    def shutdown(self) -> None:
        self.active = False

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._collector.sink.flush(timeout_millis / 1000)


def tail_attributes(acct: RequestRecord, span: Any) -> dict[str, int] | None:
    """An SDK wait span's measured tail, bound and delay as the ledger reads them."""
    tails = acct.sdk_tails
    found = tails.get(span.context.span_id) if tails is not None else None
    if found is None or len(found) != 3:  # not measured (or still open)
        return None
    tail, delay, bound = found
    return {TAIL_NS: tail, TAIL_MAX_NS: bound, DELAY_NS: delay}


def with_tail(acct: RequestRecord, span: Any) -> Any:
    """``span`` with its measured tail among its attributes, for export (a copy)."""
    extra = tail_attributes(acct, span)
    if extra is None:
        return span
    return replaced_span(span, attributes={**(span.attributes or {}), **extra})
