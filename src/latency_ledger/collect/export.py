"""The export path: a bounded in-memory buffer drained by one background thread.

Contract: :meth:`SpanSink.put` never blocks and never raises: past ``max_spans`` buffered
spans it drops and counts. A daemon thread hands batches to a ``SpanExporter`` every
``interval_s`` (sooner when a batch is full); an exporter that fails or raises costs the
batch, counted in :class:`CollectorStats`, never an exception in the app.
:meth:`SpanSink.close` writes what is buffered (shutdown, atexit).

:class:`JsonLinesFileExporter` writes OTLP JSON lines, one ``TracesData`` per line, the
shape ``opentelemetry-exporter-otlp-json-file`` writes, into ``output_dir`` (one file per
process, a new numbered file past ``max_file_bytes``). It encodes with msgspec instead of
``opentelemetry-exporter-otlp-json-common``: that encoder is pure Python and costs ~50 us
per span here (MEASURED.md), more than a fast request itself, and the export thread shares
the GIL with the app.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

_log = logging.getLogger("latency_ledger.collect")

BATCH_SPANS = 512


class CollectorStats:
    """The collector's own counters (cumulative per process), see ``collector_stats()``.

    Updated from the loop and the export thread without a lock: a lost increment under
    a thread switch is possible and acceptable for counters shown as approximate.
    """

    FIELDS = (
        "requests",
        "spans_exported",
        "dropped_spans",
        "export_errors",
        "errors",
        "plugin_errors",
        "plugins_instrumented",
        "profiles",
        "overhead_ns",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.spans_exported = 0
        self.dropped_spans = 0
        self.export_errors = 0
        self.errors = 0
        self.plugin_errors = 0
        self.plugins_instrumented = 0
        self.profiles = 0
        self.overhead_ns = 0

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.FIELDS}


class SpanSink:
    def __init__(
        self,
        exporter: Any,
        *,
        stats: CollectorStats,
        max_spans: int,
        interval_s: float,
    ) -> None:
        self._exporter = exporter
        self._stats = stats
        self._max = max_spans
        self._interval = interval_s
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._stop = False
        self._export_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def put(self, spans: Sequence[Any]) -> None:
        queue = self._queue
        if len(queue) + len(spans) > self._max or self._stop:
            self._stats.dropped_spans += len(spans)
            return
        queue.extend(spans)
        if self._thread is None:
            self._start()
        if len(queue) >= BATCH_SPANS and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._stop:
                self._thread = threading.Thread(
                    target=self._run, name="latency-ledger-export", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait(self._interval)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Export everything buffered now (on the calling thread)."""
        queue = self._queue
        with self._export_lock:
            while queue:
                batch = [queue.popleft() for _ in range(min(len(queue), BATCH_SPANS))]
                self._export(batch)

    def _export(self, batch: list[Any]) -> None:
        try:
            result = self._exporter.export(batch)
        except Exception as exc:  # the exporter is third-party or I/O: count, never raise
            _log.warning("latency-ledger: exporting %d spans failed: %r", len(batch), exc)
            ok = False
        else:
            ok = getattr(result, "value", result) in (0, True)  # SpanExportResult.SUCCESS
        if ok:
            self._stats.spans_exported += len(batch)
        else:
            self._stats.export_errors += 1
            self._stats.dropped_spans += len(batch)

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self.drain()
        try:
            self._exporter.shutdown()
        except Exception:
            self._stats.export_errors += 1


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (tuple, list)):
        return {"arrayValue": {"values": [_value(item) for item in value]}}
    return {"stringValue": str(value)}


def _attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not attributes:
        return []
    return [{"key": key, "value": _value(value)} for key, value in attributes.items()]


def encode_span(span: Any) -> dict[str, Any]:
    """One SDK span as an OTLP JSON ``Span`` object (proto3 JSON mapping, hex ids)."""
    ctx = span.context
    out: dict[str, Any] = {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
    }
    if span.parent is not None:
        out["parentSpanId"] = f"{span.parent.span_id:016x}"
    out["name"] = span.name
    out["kind"] = span.kind.value + 1  # OTLP numbers kinds from 1 (INTERNAL)
    out["startTimeUnixNano"] = str(span.start_time or 0)
    out["endTimeUnixNano"] = str(span.end_time or 0)
    if span.attributes:
        out["attributes"] = _attributes(span.attributes)
    if span.events:
        out["events"] = [
            {
                "timeUnixNano": str(event.timestamp),
                "name": event.name,
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ]
    if span.links:
        out["links"] = [
            {
                "traceId": f"{link.context.trace_id:032x}",
                "spanId": f"{link.context.span_id:016x}",
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ]
    status = span.status
    code = status.status_code.value if status is not None else 0
    out["status"] = {"code": code, "message": status.description} if code else {}
    return out


def encode_traces_data(spans: Sequence[Any]) -> dict[str, Any]:
    """Spans grouped by resource and instrumentation scope into one ``TracesData``."""
    by_resource: dict[int, tuple[Any, dict[tuple[str, str], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource = span.resource
        entry = by_resource.get(id(resource))
        if entry is None:
            entry = by_resource[id(resource)] = (resource, {})
        scope = span.instrumentation_scope
        key = (scope.name, scope.version or "") if scope is not None else ("", "")
        entry[1].setdefault(key, []).append(encode_span(span))
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": _attributes(resource.attributes if resource else None)},
                "scopeSpans": [
                    {"scope": {"name": name, "version": version}, "spans": encoded}
                    for (name, version), encoded in scopes.items()
                ],
            }
            for resource, scopes in by_resource.values()
        ]
    }


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

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        line = self._encoder.encode(encode_traces_data(spans)) + b"\n"
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


def otlp_endpoint_exporter(environ: Mapping[str, str]) -> Callable[[], Any] | None:
    """A factory for the OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_*ENDPOINT`` is set.

    Needs ``opentelemetry-exporter-otlp-proto-http``; the exporter reads the standard
    variables (endpoint, headers, timeout, compression) itself.
    """
    if not (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    ):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        _log.warning(
            "latency-ledger: OTEL_EXPORTER_OTLP_ENDPOINT is set but "
            "opentelemetry-exporter-otlp-proto-http is not installed; writing files instead"
        )
        return None
    return OTLPSpanExporter  # type: ignore[no-any-return]
