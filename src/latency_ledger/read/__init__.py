"""Read trace files into :class:`~latency_ledger.model.Trace` records.

Contract: this package alone knows file shapes. :func:`read_traces` takes files,
directories and globs and yields one ``Trace`` per trace id (joined across lines and
files), holding only the traces in flight in memory. It never raises for bad input: each
unit it skips is counted in :class:`ReadStats` under a reason, with a one-line
``"path:line: problem"`` message, and reading goes on.

Reads OTLP JSON lines and documents (``otlp_json``), OTLP protobuf messages, the
Collector's length-prefixed stream and text format (``otlp_proto``), Jaeger JSON
(``jaeger``) and Zipkin v2 JSON (``zipkin``) into the same rows (shared checks in
``foreign``), gzip or zstd around any of them (``files``, by magic bytes); refuses
Zipkin v1 (``sniff``).
Skip reasons: ``invalid_json_line``, ``invalid_json``, ``not_trace_data``,
``non_trace_line``, ``unsupported_format``, ``span_without_end_time``,
``span_without_start_time``, ``end_before_start``, ``invalid_id``, ``invalid_span``,
``truncated_message``, ``empty_file``, ``unreadable_file``, ``line_too_long``,
``file_too_large``, ``time_out_of_range``, ``implausible_duration``, ``implausible_time``
(limits and time checks: ``limits``); ``late_span`` counts spans
that arrived after their trace was let out (they are still yielded, in a new partial
trace).

Flow: expand_paths -> read_file (sniff, decompress, decode) -> Assembler -> Trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from latency_ledger.model import Trace
from latency_ledger.read.assemble import Assembler
from latency_ledger.read.files import DEFAULT_LIMITS, expand_paths, read_file, total_input_bytes
from latency_ledger.read.limits import ReadLimits
from latency_ledger.read.stats import ReadStats
from latency_ledger.read.values import IdDecoder

__all__ = ["ReadLimits", "ReadStats", "expand_paths", "read_traces", "total_input_bytes"]


def read_traces(
    paths: Sequence[str | Path],
    *,
    stats: ReadStats,
    idle_spans: int = 200_000,
    on_bytes: Callable[[int], None] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Iterator[Trace]:
    """Yield the traces in ``paths``; fill ``stats`` as reading goes.

    A trace is let out once ``idle_spans`` spans have been read (across files, in
    :func:`expand_paths` order) without one of its own, and at the end. ``on_bytes(n)``
    is called as input bytes are consumed; over a whole run the calls add up to
    :func:`total_input_bytes`. ``limits`` bounds line length, decompressed size and span
    length; what they cut is counted and noted like any other skip.
    """
    assembler = Assembler(stats, idle_spans=idle_spans)
    ids = IdDecoder()
    for path in expand_paths(paths):
        for spans in read_file(path, stats, ids, on_bytes, limits):
            done = assembler.add(spans)
            if done:
                yield from done
    yield from assembler.finish()
