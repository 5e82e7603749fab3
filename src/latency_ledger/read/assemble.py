"""Join spans into traces with memory bounded by the traces in flight.

Contract: span rows go in, in reading order, through :meth:`Assembler.add`; a
:class:`~latency_ledger.model.Trace` comes out once no span of its trace id has arrived
for ``idle_spans`` spans, and :meth:`Assembler.finish` returns everything left. A span
whose trace was already let out starts a new partial trace and is counted as
``late_span``: it is still analyzed, never dropped.

Traces wait in an insertion-ordered dict, moved to the end when touched, so the least
recently touched one is always first and eviction is O(1) per span. The ids of traces
already let out are remembered for late-span counting in a window of ``remember``
traces (oldest forgotten first), so that memory too stays bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import cast

from latency_ledger.model import Span, Trace
from latency_ledger.read.stats import ReadStats
from latency_ledger.read.values import SpanRow, to_spans


class _Pending:
    __slots__ = ("last", "late", "spans")

    def __init__(self, last: int, late: bool = False) -> None:
        self.last = last  # the span counter when this trace was last touched
        self.late = late  # its trace id was already let out: every span here is late
        self.spans: list[SpanRow] = []


class OutOfOrder(Exception):
    """A strict assembler met a span it cannot join in one pass (see :class:`Assembler`)."""


class Assembler:
    """Buffers spans per trace id and lets traces out when they go idle.

    ``rows_as_spans``: traces hold the rows themselves as their spans (for callers
    that only read them, such as ``analyze``), not ``Span`` copies.

    ``strict``: instead of letting a late span start a partial trace, raise
    :class:`OutOfOrder`; also raise it when more than ``max_buffered`` spans wait at once
    (input whose traces are spread this far apart is for a caller that groups spans by
    trace id another way, with bounded memory: ``analysis.spill``).
    """

    def __init__(
        self,
        stats: ReadStats,
        *,
        idle_spans: int,
        remember: int = 100_000,
        strict: bool = False,
        max_buffered: int = 0,
        rows_as_spans: bool = False,
    ) -> None:
        self._stats = stats
        self._rows_as_spans = rows_as_spans
        self._idle = max(1, idle_spans)
        self._remember = max(0, remember)
        self._strict = strict
        self._max_buffered = max_buffered or (1 << 62)
        self._buffered = 0  # spans waiting in _pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._done: OrderedDict[str, None] = OrderedDict()  # ids of let-out traces
        self._count = 0  # spans added so far
        self._check_at = 0  # no pending trace can be idle before the counter reaches this

    def add(self, spans: Iterable[SpanRow]) -> list[Trace]:
        """Take spans in reading order; return the traces that went idle meanwhile."""
        out: list[Trace] = []
        pending = self._pending
        count = first = self._count
        last_id = ""
        last = _Pending(0)  # stands for "no span before", so the hot loop has no None check
        for span in spans:
            count += 1
            tid = span.trace_id
            if tid == last_id:
                # Same trace as the span before: it is already last in the order, and
                # eviction never takes a trace touched within the last idle_spans spans.
                last.last = count
                last.spans.append(span)
            else:
                entry = pending.get(tid)
                if entry is None:
                    entry = self._open(tid, count)
                else:
                    pending.move_to_end(tid)
                    entry.last = count
                entry.spans.append(span)
                last_id, last = tid, entry
            if count >= self._check_at:
                self._count = count
                self._evict(out)
        self._count = count
        self._stats.spans += count - first
        self._buffered += count - first
        if self._buffered > self._max_buffered and self._strict:
            raise OutOfOrder(f"more than {self._max_buffered:,} spans of open traces")
        return out

    def _open(self, tid: str, count: int) -> _Pending:
        pending = self._pending
        entry = _Pending(count, tid in self._done)
        if entry.late and self._strict:
            raise OutOfOrder(f"a span of trace {tid} came after the trace was complete")
        if not pending:
            self._check_at = count + self._idle
        pending[tid] = entry
        if len(pending) > self._stats.max_in_flight:
            self._stats.max_in_flight = len(pending)
        return entry

    def _evict(self, out: list[Trace]) -> None:
        pending = self._pending
        limit = self._count - self._idle
        while pending:
            tid, entry = next(iter(pending.items()))
            if entry.last > limit:
                self._check_at = entry.last + self._idle
                return
            del pending[tid]
            out.append(self._let_out(tid, entry))
        self._check_at = self._count + self._idle

    def _let_out(self, tid: str, entry: _Pending) -> Trace:
        done = self._done
        if self._remember:
            done[tid] = None
            done.move_to_end(tid)
            if len(done) > self._remember:
                done.popitem(last=False)
        self._stats.traces += 1
        self._buffered -= len(entry.spans)
        if entry.late:
            self._stats.skipped["late_span"] += len(entry.spans)
        if self._rows_as_spans:
            # A SpanRow has Span's fields (and duration_ns) and reads the same, so a
            # caller that only reads spans takes the rows as they are: a Span copy of
            # every span was ~5% of the analysis.
            return Trace(trace_id=tid, spans=cast("tuple[Span, ...]", tuple(entry.spans)))
        return Trace(trace_id=tid, spans=to_spans(entry.spans))

    def pending_ids(self) -> list[str]:
        """The ids of the traces buffered now."""
        return list(self._pending)

    def done_ids(self) -> list[str]:
        """The ids of the last ``remember`` traces let out, oldest first."""
        return list(self._done)

    def finish(self) -> Iterator[Trace]:
        """Every trace still buffered, oldest first, made one at a time as asked for."""
        pending = self._pending
        while pending:
            tid, entry = pending.popitem(last=False)
            yield self._let_out(tid, entry)
