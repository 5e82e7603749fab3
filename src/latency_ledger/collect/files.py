"""The JSON lines file exporter: files, rotation, retention, and noticing lost files.

Contract: :class:`JsonLinesFileExporter` writes OTLP JSON lines, one ``TracesData`` per
line (the shape ``opentelemetry-exporter-otlp-json-file`` writes), into ``output_dir``:
one file per process, a new numbered file past ``max_file_bytes``. It encodes with
msgspec and :mod:`~latency_ledger.collect.encode` instead of
``opentelemetry-exporter-otlp-json-common``: that encoder is pure Python and costs ~50 us
per span here (MEASURED.md), more than a fast request itself, and the export thread
shares the GIL with the app. ``export*`` never raise: a failed write returns FAILURE.

Bounded on disk: the trace files in ``output_dir`` (``traces-*.jsonl``, every process's)
never hold more than ``max_total_bytes`` or ``max_files``; the oldest are deleted first
(before each write that would pass the bound, and at each rotation; other processes'
files are re-counted at least every ``RESCAN_S``). Never loses data silently: a file
deleted under us (``rm -rf`` of the folder) is noticed before the next write, its spans
are reported by :meth:`take_lost` (the sink counts them as dropped, so the next SERVER
span's ``ledger.collector.*`` counters carry the loss into the report) and a new file is
started. A failed write (a full disk) is cut back to the last whole line, keeps the same
file (no empty files) and is logged once per outage.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from latency_ledger.collect.encode import encode_span_json, encode_traces_data, otlp_attributes

_log = logging.getLogger("latency_ledger.collect")

RESCAN_S = 10.0  # how stale our count of the folder's bytes (other processes') may get


class JsonLinesFileExporter:
    """A ``SpanExporter`` writing OTLP JSON lines to a size-rotated file per process."""

    def __init__(
        self,
        output_dir: Path,
        *,
        max_file_bytes: int,
        max_total_bytes: int = 1 << 30,
        max_files: int = 1000,
    ) -> None:
        self._dir = Path(output_dir)
        self._total = max_total_bytes
        # a file is at most half the folder's bound, so rotation always leaves room
        self._max = max(1, min(max_file_bytes, max_total_bytes // 2))
        self._max_files = max(1, max_files)
        self._prefix = f"traces-{socket.gethostname()}-{os.getpid()}"
        self._seq = 0
        self._file: Any = None
        self._path: Path | None = None
        self._size = 0  # whole lines in the current file
        self._file_spans = 0  # spans in the current file: lost if it is deleted
        self._dir_bytes = 0  # trace files in the folder, as of the last scan plus our writes
        self._next_scan = 0.0
        self._lost = 0
        self._failing = False
        self._encoder = msgspec.json.Encoder()
        # imported here, at the collector's start, not by the first export: that import
        # (~24M instructions, ~10 ms) would stall the export thread mid-traffic
        from opentelemetry.sdk.trace.export import SpanExportResult

        self._result = SpanExportResult
        self._heads: dict[tuple[int, str, str], tuple[Any, bytes]] = {}
        self.paths: list[Path] = []
        self.deleted = 0  # files removed to stay within the bounds

    def _open(self) -> None:  # sets self._file
        self._dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = self._dir / f"{self._prefix}-{self._seq}.jsonl"
            self._seq += 1
            if not path.exists():
                break
        # unbuffered: a short write on a full disk is seen, and cut back (see _append)
        self._file = path.open("ab", buffering=0)
        self._path = path
        self._size = 0
        self._file_spans = 0
        self.paths.append(path)

    def take_lost(self) -> int:
        """Spans written to files that were deleted under us since the last call."""
        lost, self._lost = self._lost, 0
        return lost

    def encode_one(self, span: Any) -> tuple[bytes, bytes]:
        """(the span's resource and scope as the head of a ``ResourceSpans``, the span)."""
        return self.head(span.resource, span.instrumentation_scope), encode_span_json(span)

    def head(self, resource: Any, scope: Any) -> bytes:
        """``resource`` and ``scope`` as the head of a ``ResourceSpans`` (cached)."""
        key = (id(resource), scope.name if scope else "", (scope.version or "") if scope else "")
        cached = self._heads.get(key)
        if cached is None or cached[0] is not resource:
            name, version = key[1], key[2]
            head = self._encoder.encode(
                {
                    "resource": {
                        "attributes": otlp_attributes(resource.attributes if resource else None)
                    },
                    "scope": {"name": name, "version": version} if version else {"name": name},
                }
            )
            # {"resource":R,"scope":S} -> {"resource":R,"scopeSpans":[{"scope":S,"spans":[
            resource_part, _, scope_part = head[1:-1].partition(b',"scope":')
            cached = (resource, b"{" + resource_part + b',"scopeSpans":[{"scope":' + scope_part)
            if len(self._heads) > 1000:  # resources come and go in odd apps: stay bounded
                self._heads.clear()
            self._heads[key] = cached
        return cached[1]

    def export_encoded(self, groups: Sequence[bytes], spans: Sequence[bytes]) -> Any:
        """Write one line from :meth:`encode_one` results, spans grouped by their head."""
        if groups and groups.count(groups[0]) == len(groups):  # one resource and scope
            by_head = {groups[0]: list(spans)}
        else:
            by_head = {}
            for head, span in zip(groups, spans, strict=True):
                by_head.setdefault(head, []).append(span)
        # one join of the pieces: each ``+`` of bytes copies all that came before it (the
        # batch's spans were copied six times, ~7 KB of copying per request's span)
        pieces = [b'{"resourceSpans":[']
        for head, items in by_head.items():
            if len(pieces) > 1:
                pieces.append(b",")
            pieces += (head, b',"spans":[', b",".join(items), b"]}]}")
        pieces.append(b"]}\n")
        return self._write(b"".join(pieces), len(spans))

    def export(self, spans: Sequence[Any]) -> Any:
        return self._write(self._encoder.encode(encode_traces_data(spans)) + b"\n", len(spans))

    def _write(self, line: bytes, spans: int) -> Any:
        SpanExportResult = self._result  # the enum, imported once in __init__
        if len(line) > self._max:
            _log.warning(
                "latency-ledger: a batch of %d bytes exceeds the trace file bound; dropped",
                len(line),
            )
            return SpanExportResult.FAILURE
        try:
            self._notice_deleted_file()
            if self._file is not None and self._size and self._size + len(line) > self._max:
                self._close_quietly()  # rotate
            if self._file is None:
                self._make_room(len(line), new_file=True)
                self._open()
            else:
                self._make_room(len(line), new_file=False)
            self._append(line)
        except OSError as exc:
            if not self._failing:
                _log.warning(
                    "latency-ledger: cannot write traces to %s: %s (spans are dropped and "
                    "counted until writing works again)",
                    self._dir,
                    exc,
                )
                self._failing = True
            return SpanExportResult.FAILURE
        if self._failing:
            _log.warning("latency-ledger: writing traces to %s again", self._dir)
            self._failing = False
        self._file_spans += spans
        return SpanExportResult.SUCCESS

    def _append(self, line: bytes) -> None:
        file = self._file
        view = memoryview(line)
        try:
            while view:
                written = file.write(view)
                if not written:
                    raise OSError(errno.ENOSPC, "short write")
                view = view[written:]
        except OSError:
            with contextlib.suppress(OSError):  # no partial line for the reader
                file.truncate(self._size)
            raise
        self._size += len(line)
        self._dir_bytes += len(line)

    def _notice_deleted_file(self) -> None:
        if self._file is None:
            return
        try:
            gone = os.fstat(self._file.fileno()).st_nlink == 0
        except OSError:
            gone = True
        if gone:
            _log.warning(
                "latency-ledger: trace file %s was deleted; its %d spans are lost "
                "(counted as dropped); writing a new file",
                self._path,
                self._file_spans,
            )
            self._lost += self._file_spans
            self._close_quietly()

    def _make_room(self, incoming: int, *, new_file: bool) -> None:
        """Delete the oldest trace files until ``incoming`` more bytes (and a new file,
        if one is about to be opened) fit the folder's bounds."""
        now = time.monotonic()
        if not new_file and self._dir_bytes + incoming <= self._total and now < self._next_scan:
            return
        self._next_scan = now + RESCAN_S
        files = self._trace_files()
        total = sum(size for _, _, size, _ in files)
        count = len(files) + new_file
        current = self._path if self._file is not None else None
        for _, _, size, path in files:
            if total + incoming <= self._total and count <= self._max_files:
                break
            if path == current:
                continue
            try:
                path.unlink()
            except FileNotFoundError:
                pass  # another process's retention got there first
            except OSError:
                continue
            total -= size
            count -= 1
            self.deleted += 1
        self._dir_bytes = total
        if total + incoming > self._total and current is not None:
            # Only our own file is left and the line does not fit beside it: it is the
            # oldest data, so it goes, and the line starts a new file.
            self._close_quietly()
            with contextlib.suppress(OSError):
                current.unlink()
                self.deleted += 1
            self._dir_bytes = total - self._size
            self._open()

    def _trace_files(self) -> list[tuple[float, str, int, Path]]:
        """(mtime, name, size, path) of every process's trace files, oldest first."""
        found = []
        try:
            entries = os.scandir(self._dir)
        except OSError:
            return []
        with entries:
            for entry in entries:
                if entry.name.startswith("traces-") and entry.name.endswith(".jsonl"):
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue
                    found.append((stat.st_mtime, entry.name, stat.st_size, Path(entry.path)))
        found.sort()
        return found

    def _close_quietly(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # a full disk fails the final flush too
                _log.debug("latency-ledger: closing trace file: %s", exc)
            self._file = None

    def shutdown(self) -> None:
        path, empty = self._path, self._file is not None and not self._size
        self._close_quietly()
        if empty and path is not None:  # opened, then nothing could be written
            with contextlib.suppress(OSError):
                path.unlink()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
