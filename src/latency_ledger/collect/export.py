"""The export path: a bounded in-memory buffer drained by one background thread.

Contract: :meth:`SpanSink.put` never blocks and never raises: past ``max_spans`` buffered
spans it drops and counts. A daemon thread hands batches to a ``SpanExporter`` every
``interval_s`` (sooner when a batch is full); an exporter that fails or raises costs the
batch, counted in :class:`CollectorStats`, never an exception in the app.
:meth:`SpanSink.close` writes what is buffered (shutdown, atexit).

The JSON lines file exporter is in ``files.py``, the span encoders in ``encode.py``.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

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
    """The bounded buffer and its export thread.

    With an exporter that can encode one span at a time (``encode_one``, as
    :class:`JsonLinesFileExporter`), spans are encoded when put and only bytes wait in
    the buffer. Keeping span objects alive for up to ``interval_s`` instead makes the
    cyclic garbage collector run where it otherwise would not: measured on a FastAPI
    hello endpoint, ~85 us per request of collections, more than all our other work.
    Bytes are not tracked by the collector.
    """

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
        self._encode = getattr(exporter, "encode_one", None)
        self._queue: deque[Any] = deque()  # spans, or their encoded bytes
        self._groups: deque[bytes] = deque()  # with encoding: each one's resource+scope
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
        encode = self._encode
        if encode is None:
            queue.extend(spans)
        else:
            groups = self._groups
            for span in spans:
                try:
                    group, data = encode(span)
                except Exception:  # attacker-shaped attribute values must not break us
                    self._stats.errors += 1
                    self._stats.dropped_spans += 1
                    continue
                # group first: the draining thread reads len(queue) and pops as many
                # of each, so it never sees an item whose group is not there yet
                groups.append(group)
                queue.append(data)
        if self._thread is None:
            self._start()
        if len(queue) >= BATCH_SPANS and not self._wake.is_set():
            self._wake.set()

    def put_encoded(self, group: bytes, data: bytes) -> None:
        """One span already encoded as :meth:`JsonLinesFileExporter.encode_one` would
        (``group``: its resource and scope head); only for a sink with ``encoding``."""
        queue = self._queue
        if len(queue) >= self._max or self._stop:
            self._stats.dropped_spans += 1
            return
        self._groups.append(group)  # group first: see put()
        queue.append(data)
        if self._thread is None:
            self._start()
        if len(queue) >= BATCH_SPANS and not self._wake.is_set():
            self._wake.set()

    def forked(self, exporter: Any) -> SpanSink:
        """This sink as a forked child needs it: empty (what was buffered at the fork is
        the parent's to write), with new locks and its own export thread (started on
        first use), writing to ``exporter``. The old sink is dropped, not closed: closing
        could wait on a lock the parent's export thread held at the fork."""
        return SpanSink(exporter, stats=self._stats, max_spans=self._max, interval_s=self._interval)

    @property
    def exporter(self) -> Any:
        return self._exporter

    @property
    def encoding(self) -> bool:
        """True when spans are encoded as they are put (the JSON lines exporter)."""
        return self._encode is not None

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
                count = min(len(queue), BATCH_SPANS)
                batch = [queue.popleft() for _ in range(count)]
                groups = [self._groups.popleft() for _ in range(count)] if self._encode else None
                self._export(groups, batch)

    def _export(self, groups: list[bytes] | None, batch: list[Any]) -> None:
        count = len(batch)
        try:
            if groups is not None:
                result = self._exporter.export_encoded(groups, batch)
            else:
                result = self._exporter.export(batch)
        except Exception as exc:  # the exporter is third-party or I/O: count, never raise
            _log.warning("latency-ledger: exporting %d spans failed: %r", count, exc)
            ok = False
        else:
            ok = result is True or getattr(result, "name", None) == "SUCCESS"
        if ok:
            self._stats.spans_exported += count
        else:
            self._stats.export_errors += 1
            self._stats.dropped_spans += count

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
    return cast("Callable[[], Any]", OTLPSpanExporter)
