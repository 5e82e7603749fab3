"""``analyze --jobs N`` by byte ranges: each worker decodes only its share of the bytes.

Contract: :func:`analyze_range` is worker ``k``'s part: it reads range ``k`` of a
``read.ranges.plan_ranges`` plan in one streaming pass and books every trace it lets
out, except the EDGES: traces whose id also occurs in the ``window`` spans just before
its range (they may have begun in an earlier range), or, still open at its end, in the
``window`` spans just after (they may go on in a later one). Those come back unbooked.
:func:`join_shares` books each edge id's parts together, in range order, as one trace,
and merges the workers' accumulations and counters into what one process would have
built, or returns None when it cannot vouch for that (then the caller analyzes the
input another way, e.g. ``parallel``'s split by trace id, which also regroups
out-of-order input).

Why the result is one process's. One process (``analyze.analyze_share``) joins the
spans of a trace while no more than ``idle_spans`` spans pass between them, and raises
``OutOfOrder`` on a span of a trace it let out among the last ``REMEMBER`` (then
regroups the whole input by trace id). ``window`` is more than ``idle_spans``, so a
trace one process would join across a cut is an edge on both sides of it. What a
worker cannot see, it reports: the ids it opened before its ``REMEMBER``-th let-out and
in its first ``window`` spans (``early``) and the last ``REMEMBER`` it let out
(``done``). The join returns None when a range opened early an id the ranges before
let out lately (one process: a late span, then regrouping), when an id a range booked
itself is another range's edge, when one range has two traces of an id among its
edges, when a range cannot say what the time floor before it was (``PieceNotes``),
and when a worker met out-of-order input or a file it cannot read in pieces.

Counters are one process's: files and bytes from the pieces (a file counted by the
piece at its start), spans summed, traces summed less one per join, problems in range
order, the per-file note of logs/metrics lines after the file's last piece.
``max_in_flight`` is summed (a bound, as with ``parallel``).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from latency_ledger.accumulate import Accumulation
from latency_ledger.ledger import ClassifyMemo
from latency_ledger.model import Trace
from latency_ledger.plugins import ClassifyRule
from latency_ledger.read import ReadStats
from latency_ledger.read.assemble import Assembler, OutOfOrder
from latency_ledger.read.ranges import Caches, Piece, PieceNotes, Unsplittable, piece_rows, scan_ids
from latency_ledger.read.stats import MAX_PROBLEMS
from latency_ledger.read.values import IdDecoder

if TYPE_CHECKING:
    from latency_ledger.analyze import AnalyzeOptions

REMEMBER = 100_000  # let-out trace ids an assembler remembers (Assembler's default)

Plan = Sequence[tuple[Piece, ...]]


def window(idle_spans: int) -> int:
    """Spans scanned on each side of a cut: ``idle_spans`` and a margin for spans a
    scan counts that the reader rejects."""
    return max(1, idle_spans) + max(1000, idle_spans // 4)


@dataclass(slots=True)
class Share:
    """What worker ``k`` sends back (see the module docstring)."""

    ok: bool
    acc: Accumulation | None = None
    stats: ReadStats = field(default_factory=ReadStats)
    notes: list[PieceNotes] = field(default_factory=list)
    marks: list[tuple[int, int]] = field(default_factory=list)  # per piece: problems, count
    edges: list[Trace] = field(default_factory=list)
    early: set[str] = field(default_factory=set)
    done: list[str] = field(default_factory=list)


def analyze_range(
    plan: Plan,
    k: int,
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
    on_bytes: Callable[[int], None] | None = None,
) -> Share:
    """Worker ``k``'s share (module docstring)."""
    from latency_ledger.analyze import _add

    span_window = window(options.idle_spans)
    ids = IdDecoder()
    earlier = [p for pieces in reversed(plan[:k]) for p in reversed(pieces)]
    later = [p for pieces in plan[k + 1 :] for p in pieces]
    before = scan_ids(earlier, span_window, backward=True, ids=ids)
    after = scan_ids(later, span_window, backward=False, ids=ids)
    stats = ReadStats()
    acc = Accumulation(options.thresholds, options.max_endpoints)
    share = Share(ok=True, acc=acc, stats=stats)
    assembler = Assembler(
        stats,
        idle_spans=options.idle_spans,
        remember=REMEMBER,
        strict=True,
        max_buffered=options.max_buffered_spans or 2 * options.idle_spans,
        rows_as_spans=True,
    )
    memo = ClassifyMemo()
    early = share.early
    opening = True  # still noting the ids let out as early
    let_out = 0

    def take(traces: list[Trace]) -> None:
        nonlocal let_out
        for trace in traces:
            let_out += 1
            if opening:
                early.add(trace.trace_id)
            if trace.trace_id in before:
                share.edges.append(trace)
            else:
                _add(acc, trace, options, rules, memo)

    caches = Caches()
    try:
        for piece in plan[k]:
            notes = PieceNotes()
            for rows in piece_rows(
                piece,
                stats=stats,
                ids=ids,
                limits=options.limits,
                notes=notes,
                caches=caches,
                on_bytes=on_bytes,
            ):
                take(assembler.add(rows))
                if opening and let_out >= REMEMBER and stats.spans > span_window:
                    early.update(assembler.pending_ids())
                    opening = False
            stats.fallback_units += notes.fallback_lines
            share.notes.append(notes)
            share.marks.append((len(stats.problems), stats.problem_count))
        if opening:
            early.update(assembler.pending_ids())
        tails = set()
        for trace in assembler.finish():
            if trace.trace_id in after:
                tails.add(trace.trace_id)
                if trace.trace_id not in before:
                    let_out += 1
                    share.edges.append(trace)
                    continue
            take([trace])
    except (OutOfOrder, Unsplittable):
        return Share(ok=False)
    share.done = [tid for tid in assembler.done_ids() if tid not in tails]
    return share


def join_shares(
    plan: Plan,
    shares: Sequence[Share],
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
) -> tuple[Accumulation, ReadStats] | None:
    """The workers' shares as one accumulation and one reader's counters, or None
    (module docstring)."""
    from latency_ledger.analyze import _add

    if not shares or not all(share.ok for share in shares) or not _floors_agree(shares):
        return None
    parts: dict[str, list[tuple[int, Trace]]] = {}
    for k, share in enumerate(shares):
        for trace in share.edges:
            found = parts.setdefault(trace.trace_id, [])
            if found and found[-1][0] == k:
                return None
            found.append((k, trace))
    recent: deque[str] = deque(maxlen=REMEMBER)
    for k, share in enumerate(shares):
        for tid in share.early:
            held = parts.get(tid)
            if held is not None and all(j != k for j, _trace in held):
                return None  # booked here, an edge elsewhere
        if k:
            let_out = set(recent)
            if not let_out.isdisjoint(share.early):
                return None  # one process: a late span
            for trace in share.edges:
                tid = trace.trace_id
                if parts[tid][0][0] == k and tid in let_out:
                    return None
        recent.extend(share.done)
    acc = shares[0].acc
    assert acc is not None
    for share in shares[1:]:
        assert share.acc is not None
        acc.merge(share.acc)
    memo = ClassifyMemo()
    joins = 0
    for tid, found in parts.items():
        if len(found) == 1:
            trace = found[0][1]
        else:
            joins += len(found) - 1
            trace = Trace(trace_id=tid, spans=tuple(s for _k, t in found for s in t.spans))
        _add(acc, trace, options, rules, memo)
    return acc, _merge_stats(plan, shares, joins)


def _floors_agree(shares: Sequence[Share]) -> bool:
    """No piece accepted an early time that an earlier piece's risen floor refuses."""
    risen: set[str] = set()
    for share in shares:
        for notes in share.notes:
            if notes.early and notes.where in risen:
                return False
            if notes.risen:
                risen.add(notes.where)
    return True


def _merge_stats(plan: Plan, shares: Sequence[Share], joins: int) -> ReadStats:
    out = ReadStats()
    skipped: Counter[str] = Counter()
    problems: list[str] = []
    count = 0
    non_trace: Counter[int] = Counter()
    for pieces, share in zip(plan, shares, strict=True):
        part = share.stats
        out.files += part.files
        out.spans += part.spans
        out.traces += part.traces
        out.bytes_read += part.bytes_read
        out.max_in_flight += part.max_in_flight
        out.fallback_units += part.fallback_units
        skipped.update(part.skipped)
        kept = counted = 0
        for piece, notes, (upto, total) in zip(pieces, share.notes, share.marks, strict=True):
            problems.extend(part.problems[kept:upto])
            count += total - counted
            kept, counted = upto, total
            non_trace[piece.file] += notes.non_trace
            if piece.end == piece.size and non_trace[piece.file]:
                # read_json's note at the end of a file
                problems.append(
                    f"{notes.where}: skipped {non_trace[piece.file]} lines of logs/metrics "
                    "(not traces)"
                )
                count += 1
    out.traces -= joins
    out.ranges = len(shares)
    out.skipped = skipped
    out.problems = problems[:MAX_PROBLEMS]
    out.problem_count = count
    return out


__all__ = ["REMEMBER", "Share", "analyze_range", "join_shares", "window"]
