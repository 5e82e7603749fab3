"""The JSON lines file exporter: files, rotation, retention, and noticing lost files.

Contract: :class:`JsonLinesFileExporter` writes OTLP JSON lines, one ``TracesData`` per
line (the shape ``opentelemetry-exporter-otlp-json-file`` writes), into ``output_dir``:
one file per process, a new numbered file past ``max_file_bytes``. It encodes with
msgspec and :mod:`~latency_ledger.collect.encode` instead of
``opentelemetry-exporter-otlp-json-common``: that encoder is pure Python and costs ~50 us
per span here (MEASURED.md), more than a fast request itself, and the export thread
shares the GIL with the app. ``export*`` never raise: a failed write returns FAILURE.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from latency_ledger.collect.encode import encode_span_json, encode_traces_data, otlp_attributes

_log = logging.getLogger("latency_ledger.collect")


class JsonLinesFileExporter:
    """A ``SpanExporter`` writing OTLP JSON lines to a size-rotated file per process."""

    def __init__(self, output_dir: Path, *, max_file_bytes: int) -> None:
        self._dir = Path(output_dir)
        self._max = max_file_bytes
        self._prefix = f"traces-{socket.gethostname()}-{os.getpid()}"
        self._seq = 0
        self._file: Any = None
        self._size = 0
        self._encoder = msgspec.json.Encoder()
        self._heads: dict[tuple[int, str, str], tuple[Any, bytes]] = {}
        self.paths: list[Path] = []

    def _open(self) -> None:  # sets self._file
        self._dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = self._dir / f"{self._prefix}-{self._seq}.jsonl"
            self._seq += 1
            if not path.exists():
                break
        self._file = path.open("ab")
        self._size = 0
        self.paths.append(path)

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
        parts = [
            head + b',"spans":[' + b",".join(items) + b"]}]}" for head, items in by_head.items()
        ]
        return self._write(b'{"resourceSpans":[' + b",".join(parts) + b"]}\n")

    def export(self, spans: Sequence[Any]) -> Any:
        return self._write(self._encoder.encode(encode_traces_data(spans)) + b"\n")

    def _write(self, line: bytes) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            if self._file is None or (self._size + len(line) > self._max and self._size > 0):
                if self._file is not None:
                    self._file.close()
                    self._file = None
                self._open()
            file = self._file
            assert file is not None
            file.write(line)
            file.flush()
            self._size += len(line)
        except OSError as exc:
            _log.warning("latency-ledger: cannot write traces to %s: %s", self._dir, exc)
            self._close_quietly()
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _close_quietly(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as exc:  # a full disk fails the final flush too
                _log.debug("latency-ledger: closing trace file: %s", exc)
            self._file = None

    def shutdown(self) -> None:
        self._close_quietly()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
