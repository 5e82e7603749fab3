"""Grouping spans by trace id when the input is not in trace order, with bounded memory.

Contract: :func:`spilled_traces` reads every input (through ``read.fast.read_rows``),
writes each span row to one of ``partitions`` temporary files chosen by a hash of its
trace id, then reads the files back one at a time and yields each trace with ALL its
spans, whatever their distance in the input: nothing is late, nothing is lost. Memory is
one partition's rows (the caller sizes ``partitions`` from the input size:
:func:`partitions_for`) plus a write buffer per partition. Reader counters go to
``stats`` as with ``read_traces`` (``traces`` and ``max_in_flight`` counted per
partition). The files live in a temporary directory removed when the generator ends.

Within a trace, spans keep their reading order (one writer appends in order), so a
trace comes out exactly as a one-pass read of ordered input would have let it out.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from latency_ledger.model import Trace
from latency_ledger.read import ReadLimits, ReadStats, expand_paths
from latency_ledger.read.fast import read_rows, trace_hash
from latency_ledger.read.sniff import GZIP_MAGIC, ZSTD_MAGIC
from latency_ledger.read.values import SpanRow, to_spans

PARTITION_BYTES = 48 << 20  # input bytes per partition: ~100k spans of OTLP JSON
_FLUSH_ROWS = 4096  # rows buffered per partition before they are written


COMPRESSION_RATIO = 12  # what gzip/zstd typically shrink OTLP JSON to (an upper guess)


def partitions_for(input_bytes: int) -> int:
    """How many partitions keep each one near :data:`PARTITION_BYTES` of input."""
    return max(1, -(-input_bytes // PARTITION_BYTES))


def decompressed_bytes(paths: Sequence[str | Path]) -> int:
    """The inputs' size as read: compressed files (by magic bytes) count
    :data:`COMPRESSION_RATIO` times their size."""
    total = 0
    for path in expand_paths(paths):
        try:
            with open(path, "rb") as fh:
                head = fh.read(4)
                size = os.fstat(fh.fileno()).st_size
        except OSError:
            continue
        compressed = head.startswith((GZIP_MAGIC, ZSTD_MAGIC))
        total += size * COMPRESSION_RATIO if compressed else size
    return total


def _partition(trace_id: str, partitions: int, workers: int) -> int:
    # What is left of the hash after ``read.fast.owner`` took its part: within one
    # worker, the hash modulo the number of workers is the same for every trace.
    return trace_hash(trace_id) // workers % partitions


def spilled_traces(
    paths: Sequence[str | Path],
    *,
    stats: ReadStats,
    partitions: int,
    limits: ReadLimits,
    share: tuple[int, int] = (0, 1),
    on_bytes: Callable[[int], None] | None = None,
    directory: str | None = None,
) -> Iterator[Trace]:
    """Every trace of ``paths`` (of worker ``share``), whole; see the module docstring."""
    partitions = max(1, partitions)
    workers = max(1, share[1])
    with tempfile.TemporaryDirectory(prefix="ledger-spill-", dir=directory) as tmp:
        files = [Path(tmp, f"{p}.msgpack") for p in range(partitions)]
        buffers: list[list[SpanRow]] = [[] for _ in range(partitions)]
        outs = [path.open("wb") for path in files]
        try:
            for rows in read_rows(
                paths, stats=stats, on_bytes=on_bytes, limits=limits, share=share
            ):
                stats.spans += len(rows)
                for row in rows:
                    p = _partition(row.trace_id, partitions, workers) if partitions > 1 else 0
                    buffer = buffers[p]
                    buffer.append(row)
                    if len(buffer) >= _FLUSH_ROWS:
                        _write(outs[p], buffer)
            for p, buffer in enumerate(buffers):
                if buffer:
                    _write(outs[p], buffer)
        finally:
            for out in outs:
                out.close()
        del buffers
        for path in files:
            yield from _traces(path, stats)
            path.unlink()


def _write(out: object, buffer: list[SpanRow]) -> None:
    # pickle, not msgpack: attribute values keep their types (tuples stay tuples), and
    # an attribute dict shared by several rows is written once and shared again on load
    # (so the classification memo still sees one dict per distinct set).
    data = pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    write = out.write  # type: ignore[attr-defined]
    write(len(data).to_bytes(8, "little"))
    write(data)
    buffer.clear()


def _traces(path: Path, stats: ReadStats) -> Iterator[Trace]:
    """One partition's traces, in the order their first span was read."""
    grouped: dict[str, list[SpanRow]] = {}
    with path.open("rb") as fh:
        while header := fh.read(8):
            chunk: list[SpanRow] = pickle.loads(fh.read(int.from_bytes(header, "little")))
            for row in chunk:
                rows = grouped.get(row.trace_id)
                if rows is None:
                    grouped[row.trace_id] = [row]
                else:
                    rows.append(row)
    stats.max_in_flight = max(stats.max_in_flight, len(grouped))
    for tid, rows in grouped.items():
        stats.traces += 1
        yield Trace(trace_id=tid, spans=to_spans(rows))
