"""Paths -> files in write order, and one file -> its spans, whatever its shape.

Contract: :func:`expand_paths` turns arguments (files, directories, globs) into a sorted,
de-duplicated file list; an argument that matches nothing is kept as given so that
reading it produces the problem line. :func:`read_file` opens one path, counts the bytes
it consumes, undoes gzip/zstd (by magic bytes), picks the reader by content and yields
its span lists. It never raises for bad input or unreadable files: it notes them in the
stats and returns.
"""

from __future__ import annotations

import glob
import gzip
import io
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import zstandard

from latency_ledger.read.limits import ReadLimits
from latency_ledger.read.otlp_json import JsonReaderFactory, read_json
from latency_ledger.read.otlp_proto import read_proto, read_proto_stream, read_proto_text
from latency_ledger.read.sniff import Shape, sniff
from latency_ledger.read.stats import ReadStats, note, show_path
from latency_ledger.read.values import IdDecoder, SpanRow

_CHUNK = 1 << 16
DEFAULT_LIMITS = ReadLimits()
_GLOB_MAGIC = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")
_ROTATED = re.compile(r"\A(.*)\.(\d+)\Z", re.DOTALL)
_COMPRESSED = (".gz", ".zst", ".zstd")

_NaturalKey = tuple[str | int, ...]


def _natural(text: str) -> _NaturalKey:
    """``part-2`` before ``part-10``: digit runs compare as numbers."""
    return tuple(int(p) if i % 2 else p for i, p in enumerate(_DIGITS.split(text)))


def _write_order(path: Path) -> tuple[_NaturalKey, _NaturalKey, int, int, _NaturalKey]:
    # logrotate numbering: x.jsonl.2 was written before x.jsonl.1, which was written
    # before x.jsonl. The Collector's rotation (lumberjack) names backups
    # x-<timestamp>.jsonl, which natural order already puts before x.jsonl.
    name = path.name
    core = name
    for suffix in _COMPRESSED:
        if core.endswith(suffix):
            core = core[: -len(suffix)]
            break
    rotated = _ROTATED.match(core)
    if rotated:
        return (_natural(str(path.parent)), _natural(rotated[1]), 0, -int(rotated[2]), ())
    return (_natural(str(path.parent)), _natural(core), 1, 0, _natural(name))


def _walk(directory: Path) -> list[Path]:
    found: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = [d for d in dirs if not d.startswith(".")]  # .git, editor state
        found.extend(Path(root, f) for f in files if not f.startswith("."))
    return found


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Files as given, directories walked recursively, globs expanded; in write order."""
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        # os.path's checks answer False for any OSError (a name too long, a NUL byte...);
        # reading the path later reports the real problem.
        if os.path.isdir(path):
            files = _walk(path)
            found.extend(files or [path])
        elif os.path.exists(path) or not _GLOB_MAGIC.search(str(given)):
            found.append(path)
        else:
            matches = [Path(m) for m in glob.glob(str(given), recursive=True)]
            files = [f for m in matches for f in (_walk(m) if os.path.isdir(m) else [m])]
            found.extend(files or [path])
    unique = dict.fromkeys(found)
    return sorted(unique, key=_write_order)


def total_input_bytes(paths: Sequence[str | Path]) -> int:
    """Bytes in the files :func:`expand_paths` finds, for a progress bar."""
    total = 0
    for path in expand_paths(paths):
        try:
            if os.path.isfile(path):
                total += path.stat().st_size
        except (OSError, ValueError):
            continue
    return total


class _Counted(io.RawIOBase):
    """A raw file that reports every byte it hands out."""

    def __init__(
        self, raw: io.FileIO, stats: ReadStats, on_bytes: Callable[[int], None] | None
    ) -> None:
        super().__init__()
        self._raw = raw
        self._stats = stats
        self._on_bytes = on_bytes
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = self._raw.readinto(buffer) or 0
        if n:
            self.consumed += n
            self._stats.bytes_read += n
            if self._on_bytes is not None:
                self._on_bytes(n)
        return n


class _Capped(io.RawIOBase):
    """A decompressing stream that ends after ``limit`` bytes and remembers it did."""

    def __init__(self, inner: Any, limit: int) -> None:
        super().__init__()
        self._inner = inner  # GzipFile or zstandard's reader: both have readinto
        self._left = limit
        self.cut = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            # One byte more than the limit tells "exactly at the limit" from "past it".
            self.cut = self.cut or bool(self._inner.read(1))
            return 0
        n: int = self._inner.readinto(memoryview(buffer)[: self._left])
        self._left -= n
        return n


def _decompressed(
    stream: IO[bytes], shape: Shape, limit: int
) -> tuple[io.BufferedReader[Any], _Capped]:
    inner: Any
    if shape is Shape.GZIP:
        inner = gzip.GzipFile(fileobj=stream, mode="rb")
    else:
        inner = zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)
    capped = _Capped(inner, limit)
    return io.BufferedReader(capped, _CHUNK), capped


def _spans_by_shape(
    stream: IO[bytes],
    shape: Shape,
    path: Path,
    stats: ReadStats,
    ids: IdDecoder,
    limits: ReadLimits,
    json_reader: JsonReaderFactory | None,
) -> Iterator[list[SpanRow]]:
    where = show_path(path)
    if shape is Shape.JSON:
        return read_json(stream, path, stats, ids, limits, json_reader)
    if shape is Shape.PROTO:
        return read_proto(stream, path, stats, limits)
    if shape is Shape.PROTO_STREAM:
        return read_proto_stream(stream, path, stats, limits)
    if shape is Shape.PROTO_TEXT:
        return read_proto_text(stream, path, stats, limits)
    if shape is Shape.EMPTY:
        note(stats, "empty_file", f"{where}: empty file, no trace data")
    else:
        note(stats, "not_trace_data", f"{where}: not trace data (neither OTLP JSON nor protobuf)")
    return iter(())


def _open_problem(path: Path, exc: OSError | ValueError) -> str:
    where = show_path(path)
    if isinstance(exc, FileNotFoundError):
        if _GLOB_MAGIC.search(str(path)):
            return f"{where}: matches no file"
        return f"{where}: no such file or directory"
    if isinstance(exc, IsADirectoryError):
        return f"{where}: directory holds no files"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return f"{where}: cannot open: {reason}"


def read_file(
    path: Path,
    stats: ReadStats,
    ids: IdDecoder,
    on_bytes: Callable[[int], None] | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    json_reader: JsonReaderFactory | None = None,
) -> Iterator[list[SpanRow]]:
    """Yield the span lists of one file; problems go to the stats, never out as errors.

    ``json_reader`` makes the reader of a JSON file (default: ``otlp_json``'s)."""
    try:
        raw = io.FileIO(path, "r")
    except (OSError, ValueError) as exc:
        note(stats, "unreadable_file", _open_problem(path, exc))
        return
    counted = _Counted(raw, stats, on_bytes)
    size = 0
    try:
        size = os.fstat(raw.fileno()).st_size
        stats.files += 1
        stream: io.BufferedReader[Any] = io.BufferedReader(counted, _CHUNK)
        shape = sniff(stream.peek(_CHUNK))
        capped = None
        if shape in (Shape.GZIP, Shape.ZSTD):
            stream, capped = _decompressed(stream, shape, limits.max_file_bytes)
            shape = sniff(stream.peek(_CHUNK))
            if shape in (Shape.GZIP, Shape.ZSTD):
                shape = Shape.UNKNOWN  # compressed twice: not something an exporter writes
        yield from _spans_by_shape(stream, shape, path, stats, ids, limits, json_reader)
        if capped is not None and capped.cut:
            note(
                stats,
                "file_too_large",
                f"{show_path(path)}: decompresses to more than max_file_bytes="
                f"{limits.max_file_bytes:,} bytes; the rest of it was not read",
            )
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        # Truncated or corrupt compressed data, or an I/O error half-way: keep what was read.
        note(stats, "unreadable_file", f"{show_path(path)}: read failed: {exc}")
    except Exception as exc:  # the last guard: bad input must never stop the whole run
        note(
            stats,
            "unreadable_file",
            f"{show_path(path)}: could not be read ({type(exc).__name__}: {exc})",
        )
    finally:
        raw.close()
        # Report the bytes we skipped too, so a progress bar ends at 100%.
        if on_bytes is not None and size > counted.consumed:
            on_bytes(size - counted.consumed)
