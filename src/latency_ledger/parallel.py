"""``analyze --jobs N``: N worker processes, each analyzing the traces it owns.

Contract: :func:`analyze_parallel` returns the accumulation and reader counters one
process would have built. Every worker reads the whole input but keeps only the spans
of the traces it owns (``read.fast.owner``: by trace id), so no trace is split between
workers and no worker waits for another; the spans it does not own cost it a decode of
their line and an id check. Each worker runs ``analyze.analyze_share`` (streaming, or
spilling when the input is not in trace order) and sends back its
:class:`~latency_ledger.accumulate.Accumulation` and ``ReadStats``; they merge in worker
order (``Accumulation.merge``).

Counters: what the readers note about files and their regions (files, bytes, unreadable
or damaged stretches) every worker notes alike, so it is taken from worker 0; a line
read the reference way (a problem in it) is counted by the lowest worker that read it so
(``read.fast``); problems merge in reading order. What counts kept spans and traces
(spans, traces, late spans) is summed.

Workers are forked (the rules, which may be closures from plugins or ``--rules``, are
inherited, not pickled). Where ``fork`` does not exist the analysis runs in one process.
Progress: worker 0 reads every byte, so its count drives ``on_bytes``.
"""

from __future__ import annotations

import gc
import multiprocessing
import pickle
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latency_ledger.accumulate import Accumulation
from latency_ledger.plugins import ClassifyRule
from latency_ledger.read import ReadStats
from latency_ledger.read.stats import MAX_PROBLEMS

if TYPE_CHECKING:
    from latency_ledger.analyze import AnalyzeOptions

_POLL_S = 0.2
_SUMMED_SKIPS = ("late_span",)


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
    ctx = multiprocessing.get_context("fork")
    progress = ctx.Value("q", 0, lock=False)

    def run(index: int, conn: Connection) -> None:
        def count(n: int) -> None:
            progress.value += n

        try:
            result: Any = analyze_share(
                paths, options, rules, (index, jobs), count if index == 0 else None
            )
            payload = pickle.dumps(("ok", result), protocol=pickle.HIGHEST_PROTOCOL)
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
    results: list[tuple[Accumulation, ReadStats]] = []
    reported = 0
    try:
        for process, receive in workers:
            while not receive.poll(_POLL_S):
                reported = _progress(progress.value, reported, on_bytes)
                if not process.is_alive() and not receive.poll(0):
                    raise WorkerFailed(f"analysis worker exited with code {process.exitcode}")
            status, value = pickle.loads(receive.recv_bytes())
            if status != "ok":
                raise WorkerFailed(f"analysis worker failed:\n{value}")
            results.append(value)
        _progress(progress.value, reported, on_bytes)
    finally:
        for process, receive in workers:
            receive.close()
            if process.is_alive():
                process.terminate()
            process.join()
    acc = results[0][0]
    for other, _stats in results[1:]:
        acc.merge(other)
    return acc, merge_stats([stats for _acc, stats in results])


def _progress(value: int, reported: int, on_bytes: Callable[[int], None] | None) -> int:
    if on_bytes is not None and value > reported:
        on_bytes(value - reported)
    return max(value, reported)


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
