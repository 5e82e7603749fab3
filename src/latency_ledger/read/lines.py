"""A JSON text stream -> its units: JSON lines, or one document; past a damaged start.

Contract: :func:`json_units` yields ``(line, data)``: one pair per non-blank line in
JSON-lines mode, or a single ``(None, document)``. It never raises for bad input and
holds at most one line (``ReadLimits.max_line_bytes``) or one document in memory:

- A line longer than the limit is skipped unread and noted (``line_too_long``).
- Runs of blank space are skipped at C speed (a gigabyte of newlines costs seconds, not
  minutes), with line numbers kept.
- JSON lines when the first non-blank line is a whole JSON value; else the text is
  scanned for the first *record* (a whole line holding a JSON object with a top-level
  OTLP or Jaeger key): a file cut at the front, a text preamble or broken first lines
  do not lose what follows. The first lines of the damaged start are yielded as units
  (each is then noted with its line by the decoder); the rest of the region is noted as
  one skipped region with its line range.
- With no record anywhere: one document if the text starts with ``{`` or ``[``
  (pretty-printed JSON), else "not trace data". A Jaeger trace or span on a line of its
  own (a download written one element per line) is such a document's part, not a
  record, while the text up to it is a whole JSON value or the start of one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

import msgspec

from latency_ledger.read.limits import ReadLimits
from latency_ledger.read.sniff import BOM
from latency_ledger.read.stats import ReadStats, note

_CHUNK = 1 << 16
_NEWLINES = b"\n" * _CHUNK
_WHOLE = msgspec.json.Decoder(msgspec.Raw)  # checks a value is whole without building it
_KEYS = msgspec.json.Decoder(dict[str, msgspec.Raw])
# Top-level keys of a line worth reading: OTLP traces and wrappers, other OTLP signals
# (counted by the decoder), Jaeger.
_RECORD_KEYS = frozenset(
    {"resourceSpans", "batches", "result", "trace", "resourceLogs", "resourceMetrics"}
    | {"resourceProfiles", "data", "traceID"}
)
_REGION_UNITS = 16  # damaged-start lines reported one by one; the rest as one region
# Record keys that also start lines inside one document: a Jaeger trace or span.
_INNER_KEYS = frozenset({"traceID"})


def json_units(
    stream: IO[bytes], where: str, stats: ReadStats, limits: ReadLimits
) -> Iterator[tuple[int | None, bytes]]:
    """Yield the units of a JSON text: ``(line, bytes)`` per line or ``(None, document)``."""
    lines = _lines(stream, where, stats, limits.max_line_bytes)
    region: list[tuple[int, bytes]] = []  # the damaged start's first lines
    document: list[bytes] | None = None  # the text so far, while it may be one document
    # From the first record taken as part of that document on: its count and every line.
    inner_count = inner_last = 0
    inner: list[tuple[int, bytes]] = []
    first = last = 0  # the damaged start's line range
    for count, (number, line) in enumerate(lines):  # count: lines in the damaged start
        if not count:
            first = number
            if _complete(line):
                yield number, line
                break
            if line.lstrip()[:1] in (b"{", b"["):
                document = [b"\n" * (number - 1)]
        elif keys := _record_keys(line):
            if (
                document is not None
                and keys <= _INNER_KEYS
                and _document_start(b"".join(document) + line)
            ):
                # A Jaeger trace or span on a line of its own inside a document (a
                # download written one element per line) is part of it while the text so
                # far is a whole JSON value or the start of one.
                if not inner:
                    inner_count, inner_last = count, last
            else:
                if inner:  # not one document after all: its first record ends the damage
                    count, region, last = inner_count, region[:inner_count], inner_last
                yield from _damaged_start(region, count, first, last, where, stats)
                yield from inner
                yield number, line
                break
        if document is not None:
            document.append(b"\n" * (number - last - 1) if last else b"")
            document.append(line)
            if inner_count:
                inner.append((number, line))
        if len(region) < _REGION_UNITS:
            region.append((number, line))
        last = number
    else:
        if document is not None:
            yield None, b"".join(document)
        elif first:
            note(
                stats, "not_trace_data", f"{where}: not trace data (neither OTLP JSON nor protobuf)"
            )
        return
    yield from lines


def _damaged_start(
    region: list[tuple[int, bytes]],
    count: int,
    first: int,
    last: int,
    where: str,
    stats: ReadStats,
) -> Iterator[tuple[int, bytes]]:
    """The ``count`` lines of a damaged start: the first ones one by one, the rest noted."""
    yield from region
    if count > len(region):
        note(
            stats,
            "invalid_json_line",
            f"{where}:{first}: lines {first}-{last} hold no whole JSON record "
            f"(a damaged start); {count - len(region)} more lines skipped",
            count=count - len(region),
        )


def _lines(
    stream: IO[bytes], where: str, stats: ReadStats, max_line: int
) -> Iterator[tuple[int, bytes]]:
    """Non-blank lines and their numbers; over-long lines are noted and skipped unread."""
    readline = stream.readline
    number = 0
    while True:
        line = readline(max_line + 1)
        if not line:
            return
        number += 1
        if number == 1:
            line = line.removeprefix(BOM)
        if len(line) > max_line:
            size = len(line)
            while not line.endswith(b"\n"):
                line = readline(_CHUNK)
                if not line:
                    break
                size += len(line)
            note_too_long(stats, f"{where}:{number}", size, max_line)
            continue
        if len(line) < 8 and not line.strip():
            number += _skip_space(stream)
            continue
        yield number, line


def note_too_long(stats: ReadStats, place: str, size: int, max_line: int) -> None:
    """Note a line longer than ``max_line`` bytes, skipped unread."""
    note(
        stats,
        "line_too_long",
        f"{place}: line of {size:,} bytes skipped (longer than max_line_bytes={max_line:,})",
    )


def _skip_space(stream: IO[bytes]) -> int:
    """Consume a run of blank space; return the newlines in it."""
    peek = getattr(stream, "peek", None)
    if peek is None:
        return 0
    newlines = 0
    while True:
        buffered = peek(_CHUNK)
        # bytes.lstrip() is the fastest scan Python has (a regex is 4x slower); a run
        # of newlines only, the usual storm, is counted by one compare instead of count().
        end = len(buffered) - len(buffered.lstrip())
        if not end:
            return newlines
        if end <= len(_NEWLINES) and buffered.startswith(_NEWLINES[:end]):
            newlines += end
        else:
            newlines += buffered.count(b"\n", 0, end)
        stream.read(end)
        if end < len(buffered):
            return newlines


def _complete(line: bytes) -> bool:
    """Whether a line holds one whole JSON value (of any shape)."""
    try:
        _WHOLE.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return False
    except RecursionError:
        return True  # nested too deeply to check here; decoding it will say so
    return True


def _record_keys(line: bytes) -> frozenset[str]:
    """A line's top-level keys of trace data if it is a whole JSON object (else none)."""
    if line.lstrip()[:1] != b"{":
        return frozenset()
    try:
        keys = _KEYS.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return frozenset()
    return _RECORD_KEYS.intersection(keys)


def _document_start(text: bytes) -> bool:
    """Whether ``text`` is a whole JSON value or the beginning of one."""
    try:
        _WHOLE.decode(text)
    except msgspec.DecodeError as exc:
        return str(exc).startswith("Input data was truncated")
    except RecursionError:
        return True
    return True
