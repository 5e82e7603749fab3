"""Byte ranges of JSON-lines input, cut at line boundaries, each read on its own.

Contract: :func:`plan_ranges` cuts the inputs (in ``expand_paths`` order) into ``parts``
consecutive ranges of about equal size, each a tuple of :class:`Piece` (a file's
``[start, end)``, cut just after a newline), or returns None unless every input is a
plain JSON-lines file (not compressed, not protobuf, not one document, no damaged
start, not empty): other shapes are read whole, by ``read.fast.read_rows``.

:func:`piece_rows` reads one piece to the span rows, counters and problem lines
``read_rows`` produces for those lines of the whole file, with the same line numbers
(counted, up to the piece's start, only when a problem needs one). What it cannot
know in the middle of a file is the time floor (``limits.TimeCheck``) the lines before
it raised: it starts low, and :class:`PieceNotes` says whether a span was accepted
while it was low (``early``) and whether it rose (``risen``), so a caller can tell
whether the lines before could have changed anything. A piece whose first line is a
format the reader refuses outright stops with :class:`Unsplittable`.

:func:`scan_ids` reads only the trace ids of the spans nearest a cut (the first
``count`` spans of some pieces, or the last): how a worker learns which of its traces
may continue in a neighbour's range without decoding that range.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, pairwise
from pathlib import Path

import msgspec

from latency_ledger.model import AttributeValue
from latency_ledger.read.fast import FastJsonReader, _Irregular
from latency_ledger.read.files import expand_paths
from latency_ledger.read.limits import WALL_CLOCK_NS, ReadLimits
from latency_ledger.read.lines import _complete, _lines, note_too_long
from latency_ledger.read.otlp_json import _Refused
from latency_ledger.read.sniff import BOM, Shape, sniff
from latency_ledger.read.stats import ReadStats
from latency_ledger.read.values import IdDecoder, SpanRow

_BLOCK = 1 << 20  # bytes read at a time when scanning or counting
_PEEK = 1 << 16
_SPACE = b" \t\r\n\f\v"


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[start, end)`` of input file number ``file`` (``path``)."""

    file: int
    path: Path
    start: int
    end: int
    size: int  # the whole file's


@dataclass(slots=True)
class PieceNotes:
    """What reading one piece left to say (see the module docstring)."""

    non_trace: int = 0  # lines of logs/metrics, noted once per file by the caller
    fallback_lines: int = 0
    early: bool = False
    risen: bool = False
    where: str = ""


@dataclass(slots=True)
class Caches:
    """Decoded attribute sets and resources, shared by the pieces one worker reads."""

    attributes: dict[bytes, dict[str, AttributeValue]] = field(default_factory=dict)
    resources: dict[bytes, tuple[str, dict[str, AttributeValue]]] = field(default_factory=dict)


class Unsplittable(Exception):
    """The piece cannot be read on its own the way the whole file would be."""


def plan_ranges(
    paths: Sequence[str | Path], parts: int, limits: ReadLimits
) -> list[tuple[Piece, ...]] | None:
    """``parts`` consecutive ranges of the inputs, or None (module docstring)."""
    files = expand_paths(paths)
    sizes = []
    for path in files:
        size = _json_lines_size(path, limits)
        if size is None:
            return None
        sizes.append(size)
    total = sum(sizes)
    starts = [0, *accumulate(sizes)][:-1]
    bounds = [0]
    for k in range(1, parts):
        target = max(bounds[-1], total * k // parts)
        index = max(i for i, s in enumerate(starts) if s <= target) if target < total else -1
        if index < 0:
            bounds.append(total)
            continue
        cut = _line_start(files[index], target - starts[index], sizes[index])
        bounds.append(max(bounds[-1], starts[index] + cut))
    bounds.append(total)
    ranges = []
    for low, high in pairwise(bounds):
        pieces = []
        for i, path in enumerate(files):
            start, end = max(low, starts[i]), min(high, starts[i] + sizes[i])
            if start < end:
                pieces.append(Piece(i, path, start - starts[i], end - starts[i], sizes[i]))
        ranges.append(tuple(pieces))
    return ranges


def _json_lines_size(path: Path, limits: ReadLimits) -> int | None:
    """The size of a plain JSON-lines file (its first line whole JSON), else None."""
    try:
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if not size or sniff(fh.peek(_PEEK)) is not Shape.JSON:
                return None
            for _number, line in _lines(fh, "", ReadStats(), limits.max_line_bytes):
                return size if _complete(line) else None
    except OSError:
        return None
    return None


def _line_start(path: Path, offset: int, size: int) -> int:
    """The first line start at or after ``offset`` whose line begins with neither blank
    space nor a byte-order mark: a reader of the whole file starts a line there too
    (a run of blank space is skipped whole, ``lines._skip_space``)."""
    if offset <= 0:
        return 0
    with open(path, "rb") as fh:
        at = offset - 1
        fh.seek(at)
        while at < size:
            block = fh.read(_BLOCK)
            if not block:
                return size
            newline = block.find(b"\n")
            if newline < 0:
                at += len(block)
                continue
            at += newline + 1
            fh.seek(at)
            head = fh.read(len(BOM))
            if head and head[:1] not in _SPACE and not head.startswith(BOM):
                return at
            fh.seek(at)
    return size


def _newlines_before(path: Path, offset: int) -> int:
    count = 0
    with open(path, "rb") as fh:
        left = offset
        while left > 0:
            block = fh.read(min(_BLOCK, left))
            if not block:
                break
            left -= len(block)
            count += block.count(b"\n")
    return count


class _PieceReader(FastJsonReader):
    """``FastJsonReader`` for one piece: line numbers made absolute when noted."""

    def __init__(
        self,
        piece: Piece,
        stats: ReadStats,
        ids: IdDecoder,
        limits: ReadLimits,
        caches: Caches,
    ) -> None:
        super().__init__(
            piece.path,
            stats,
            ids,
            limits,
            attributes=caches.attributes,
            resources=caches.resources,
            file_index=piece.file,
        )
        self.piece = piece
        self._base: int | None = 0 if piece.start == 0 else None
        if piece.start:
            self.units = 1  # not the file's first unit: never refused as a whole file

    def number(self, relative: int) -> int:
        if self._base is None:
            self._base = _newlines_before(self.piece.path, self.piece.start)
        return self._base + relative

    def unit(self, data: bytes, line: int | None) -> list[SpanRow]:
        floor = self.times.floor
        try:
            rows = self._fast(data)
        except (_Irregular, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            self.times.floor = floor
            if floor < WALL_CLOCK_NS:
                self.early = True  # what the reference way accepts is not tracked: assume
            return super().unit(data, None if line is None else self.number(line))
        self.units += 1
        return rows


def piece_rows(
    piece: Piece,
    *,
    stats: ReadStats,
    ids: IdDecoder,
    limits: ReadLimits,
    notes: PieceNotes,
    caches: Caches,
    on_bytes: Callable[[int], None] | None = None,
) -> Iterator[list[SpanRow]]:
    """One piece's span rows, a list per line (module docstring); ``notes`` filled."""
    reader = _PieceReader(piece, stats, ids, limits, caches)
    notes.where = reader.where
    max_line = limits.max_line_bytes
    if piece.start == 0:
        stats.files += 1
    try:
        with open(piece.path, "rb") as fh:
            fh.seek(piece.start)
            left = told = piece.end - piece.start  # told: left when progress was told
            stats.bytes_read += left
            number = 0
            while left > 0:
                line = fh.readline(min(max_line + 1, left))
                if not line:
                    raise Unsplittable(f"{reader.where} shrank while read")
                left -= len(line)
                number += 1
                if number == 1 and piece.start == 0:
                    line = line.removeprefix(BOM)
                if len(line) > max_line:
                    size = len(line)
                    while not line.endswith(b"\n") and left > 0:
                        line = fh.readline(min(_PEEK, left))
                        left -= len(line)
                        size += len(line)
                        if not line:
                            break
                    note_too_long(stats, f"{reader.where}:{reader.number(number)}", size, max_line)
                    continue
                if len(line) < 8 and not line.strip():
                    skipped, newlines = _skip_space(fh, left)
                    left -= skipped
                    number += newlines
                    continue
                rows = reader.unit(line, number)
                if on_bytes is not None and told - left >= _BLOCK:
                    on_bytes(told - left)
                    told = left
                if rows:
                    yield rows
            if on_bytes is not None and told:
                on_bytes(told)
    except _Refused as exc:
        raise Unsplittable(str(exc)) from exc
    except OSError as exc:
        raise Unsplittable(f"{reader.where}: {exc}") from exc
    notes.non_trace = reader.non_trace
    notes.fallback_lines = reader.fallback_lines
    notes.early = reader.early
    notes.risen = reader.times.floor >= WALL_CLOCK_NS


def _skip_space(fh: object, left: int) -> tuple[int, int]:
    """``lines._skip_space`` within the piece: (bytes skipped, newlines in them)."""
    peek = fh.peek  # type: ignore[attr-defined]
    read = fh.read  # type: ignore[attr-defined]
    skipped = newlines = 0
    while left > skipped:
        buffered = peek(_PEEK)[: left - skipped]
        end = len(buffered) - len(buffered.lstrip())
        if not end:
            break
        newlines += buffered.count(b"\n", 0, end)
        read(end)
        skipped += end
        if end < len(buffered):
            break
    return skipped, newlines


class _IdSpan(msgspec.Struct, rename="camel", gc=False):
    trace_id: str = ""


class _IdScope(msgspec.Struct, rename="camel", gc=False):
    spans: list[_IdSpan] = []


class _IdGroup(msgspec.Struct, rename="camel", gc=False):
    scope_spans: list[_IdScope] = []
    instrumentation_library_spans: list[_IdScope] = []


class _IdLine(msgspec.Struct, rename="camel", gc=False):
    resource_spans: list[_IdGroup] | None = None


_IDS = msgspec.json.Decoder(_IdLine, strict=False)


def scan_ids(pieces: Sequence[Piece], count: int, *, backward: bool, ids: IdDecoder) -> set[str]:
    """The trace ids of the first ``count`` spans of ``pieces`` in reading order, or
    with ``backward`` of the last ``count`` (``pieces`` then given last first). A line
    that does not decode is passed over (its spans are not counted)."""
    found: set[str] = set()
    seen = 0
    for piece in pieces:
        lines = _lines_backward(piece) if backward else _lines_forward(piece)
        for line in lines:
            try:
                groups = _IDS.decode(line).resource_spans
            except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
                continue
            for group in groups or ():
                for scopes in (group.scope_spans, group.instrumentation_library_spans):
                    for scope in scopes:
                        for span in scope.spans:
                            tid = ids.trace(span.trace_id)
                            if tid is not None:
                                found.add(tid)
                        seen += len(scope.spans)
            if seen >= count:
                return found
    return found


def _lines_forward(piece: Piece) -> Iterator[bytes]:
    with open(piece.path, "rb") as fh:
        fh.seek(piece.start)
        left = piece.end - piece.start
        rest = b""
        while left > 0:
            block = fh.read(min(_BLOCK, left))
            if not block:
                break
            left -= len(block)
            lines = (rest + block).split(b"\n")
            rest = lines.pop()
            yield from (line for line in lines if line.strip())
        if rest.strip():
            yield rest


def _lines_backward(piece: Piece) -> Iterator[bytes]:
    with open(piece.path, "rb") as fh:
        at = piece.end
        rest = b""
        while at > piece.start:
            size = min(_BLOCK, at - piece.start)
            at -= size
            fh.seek(at)
            lines = (fh.read(size) + rest).split(b"\n")
            rest = lines.pop(0) if at > piece.start else b""
            yield from (line for line in reversed(lines) if line.strip())
