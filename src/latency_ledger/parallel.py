"""``analyze --jobs N``: N worker processes, each decoding its own share of the input.

Contract: :func:`analyze_parallel` returns the accumulation and reader counters one
process would have built.

First way, byte ranges (``split``): when every input is a plain JSON-lines file
(``read.ranges.plan_ranges``), worker k reads only range k of the bytes, books the
traces whole in it and hands back the ones that may continue past its edges; the
parent books those joined and merges (``split.join_shares``). Nothing is decoded twice
but a scan of trace ids next to each cut. When that way cannot vouch for one process's
answer (out-of-order input, see ``split``), or the input is not all plain JSON lines,
the second way runs.

Second way, by trace id: every worker reads the whole input but keeps only the spans
of the traces it owns (``read.fast.owner``), so no trace is split between workers; the
spans it does not own cost it a decode of their line and an id check. Each worker runs
``analyze.analyze_share`` (streaming, or spilling when the input is not in trace order)
and sends back its :class:`~latency_ledger.accumulate.Accumulation` and ``ReadStats``;
they merge in worker order (``Accumulation.merge``). Counters: what the readers note
about files and their regions (files, bytes, unreadable or damaged stretches) every
worker notes alike, so it is taken from worker 0; a line read the reference way (a
problem in it) is counted by the lowest worker that read it so (``read.fast``);
problems merge in reading order. What counts kept spans and traces (spans, traces, late
spans) is summed.

Workers are forked (the rules, which may be closures from plugins or ``--rules``, are
inherited, not pickled). Where ``fork`` does not exist the analysis runs in one process.
Progress: the sum of the workers' byte counts drives ``on_bytes``; a second way reports
only past what the first did.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from latency_ledger.accumulate import Accumulation
from latency_ledger.plugins import ClassifyRule
from latency_ledger.read import ReadStats
from latency_ledger.read.ranges import plan_ranges
from latency_ledger.read.stats import MAX_PROBLEMS
from latency_ledger.split import Share, analyze_range, join_shares

if TYPE_CHECKING:
    from latency_ledger.analyze import AnalyzeOptions

_POLL_S = 0.2
_SUMMED_SKIPS = ("late_span",)
T = TypeVar("T")


class WorkerFailed(RuntimeError):
    """A worker process died or raised (a bug, never bad input: that is noted, not raised)."""


def analyze_parallel(
    paths: Sequence[str | Path],
    options: AnalyzeOptions,
    rules: Sequence[ClassifyRule],
    jobs: int,
    on_bytes: Callable[[int], None] | None = None,
) -> tuple[Accumulation, ReadStats]:
    from latency_ledger.analyze import analyze_share

    if "fork" not in multiprocessing.get_all_start_methods():
        return analyze_share(paths, options, rules, (0, 1), on_bytes)
    progress = _Progress(on_bytes)
    plan = plan_ranges(paths, jobs, options.limits)
    if plan is not None and len(plan) > 1:
        ranges = plan

        def by_range(index: int, count: Callable[[int], None]) -> Share:
            return analyze_range(ranges, index, options, rules, count)

        shares = _run(len(plan), by_range, progress, stop=lambda share: not share.ok)
        joined = join_shares(plan, shares, options, rules) if shares is not None else None
        if joined is not None:
            return joined
        del shares

    def by_owner(index: int, count: Callable[[int], None]) -> tuple[Accumulation, ReadStats]:
        # every worker reads every byte: worker 0's count is the progress
        return analyze_share(paths, options, rules, (index, jobs), count if index == 0 else None)

    results = _run(jobs, by_owner, progress)
    assert results is not None
    acc = results[0][0]
    for other, _stats in results[1:]:
        acc.merge(other)
    return acc, merge_stats([stats for _acc, stats in results])


class _Progress:
    """The workers' byte counts (one slot each) as ``on_bytes`` calls; a second pass
    over the input reports only past what the first one did."""

    def __init__(self, on_bytes: Callable[[int], None] | None) -> None:
        self.on_bytes = on_bytes
        self.reported = 0

    def report(self, value: int) -> None:
        if self.on_bytes is not None and value > self.reported:
            self.on_bytes(value - self.reported)
        self.reported = max(value, self.reported)


def _run(
    jobs: int,
    work: Callable[[int, Callable[[int], None]], T],
    progress: _Progress,
    stop: Callable[[T], bool] | None = None,
) -> list[T] | None:
    """``work(index, count_bytes)`` in ``jobs`` forked workers; their results in index
    order, or None as soon as one result is one ``stop`` says ends the run."""
    ctx = multiprocessing.get_context("fork")
    counts = ctx.Array("q", jobs, lock=False)

    def run(index: int, conn: Connection) -> None:
        def count(n: int) -> None:
            counts[index] += n

        try:
            payload = pickle.dumps(("ok", work(index, count)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:  # report it to the parent, which raises it
            payload = pickle.dumps(("error", traceback.format_exc()))
        conn.send_bytes(payload)
        conn.close()

    workers = []
    # What exists now is shared with the forked workers page by page; frozen, their
    # garbage collector does not touch (and so copy) it (the gc module's advice for fork).
    gc.freeze()
    try:
        for index in range(jobs):
            receive, send = ctx.Pipe(duplex=False)
            process = ctx.Process(target=run, args=(index, send), daemon=True)
            process.start()
            send.close()
            workers.append((process, receive))
    finally:
        gc.unfreeze()
    results: dict[int, T] = {}
    waiting = {receive: index for index, (_process, receive) in enumerate(workers)}
    try:
        while waiting:
            for ready in wait(list(waiting), _POLL_S):
                index = waiting.pop(ready)  # type: ignore[call-overload]
                try:
                    status, value = pickle.loads(ready.recv_bytes())  # type: ignore[union-attr]
                except EOFError:
                    code = workers[index][0].exitcode
                    raise WorkerFailed(f"analysis worker exited with code {code}") from None
                if status != "ok":
                    raise WorkerFailed(f"analysis worker failed:\n{value}")
                if stop is not None and stop(value):
                    return None
                results[index] = value
            progress.report(sum(counts))
    finally:
        for process, receive in workers:
            receive.close()
            if process.is_alive():
                process.terminate()
            process.join()
    return [results[index] for index in range(jobs)]


def merge_stats(parts: Sequence[ReadStats]) -> ReadStats:
    """One reader's counters from the workers' (see the module docstring)."""
    first = parts[0]
    skipped = Counter(first.skipped)
    placed = list(zip(first.places, first.problems, strict=False))
    count = first.problem_count
    for part in parts[1:]:
        skipped.update(part.kept.skipped)
        count += part.kept.count
        placed.extend(part.kept.problems)
    placed.sort(key=lambda item: item[0])
    for reason in _SUMMED_SKIPS:
        total = sum(part.skipped.get(reason, 0) for part in parts)
        skipped.pop(reason, None)
        if total:
            skipped[reason] = total
    return ReadStats(
        files=first.files,
        spans=sum(part.spans for part in parts),
        traces=sum(part.traces for part in parts),
        bytes_read=first.bytes_read,
        skipped=skipped,
        problems=[text for _place, text in placed[:MAX_PROBLEMS]],
        problem_count=count,
        max_in_flight=sum(part.max_in_flight for part in parts),
        fallback_units=first.fallback_units,
        regrouped=any(part.regrouped for part in parts),
    )


__all__ = ["WorkerFailed", "analyze_parallel", "merge_stats"]
