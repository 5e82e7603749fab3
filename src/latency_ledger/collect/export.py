"""The export path: a bounded in-memory buffer drained by one background thread.

Contract: :meth:`SpanSink.put` never blocks and never raises: past ``max_spans`` buffered
spans it drops and counts. A daemon thread hands batches to a ``SpanExporter`` every
``interval_s`` (sooner when a batch is full); an exporter that fails or raises costs the
batch, counted in :class:`CollectorStats`, never an exception in the app.
:meth:`SpanSink.close` writes what is buffered (shutdown, atexit) and returns within its
timeout whatever the exporter does; what it could not write is counted as dropped.

The sink never records its own traffic: exports run with OpenTelemetry's
suppress-instrumentation keys in the context (every contrib instrumentation honours
them), and spans put while an export runs on this thread are discarded whatever made
them (an instrumentation that ignores the keys). A drain exports what was buffered when
it started, never more, so no exporter can keep it going.

The JSON lines file exporter is in ``files.py``, the span encoders in ``encode.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from opentelemetry import context as otel_context

from latency_ledger.collect.scrub import scrub_span

_log = logging.getLogger("latency_ledger.collect")

BATCH_SPANS = 512
# The app must exit within 5 s of SIGTERM whatever the exporter does (issue 13): the
# lifespan's flush waits at most FLUSH_TIMEOUT_S, the close at exit CLOSE_TIMEOUT_S.
FLUSH_TIMEOUT_S = 1.0
CLOSE_TIMEOUT_S = 2.5


def _suppressing_context() -> Any:
    """A context in which instrumentations record nothing: the key the SDK's batch
    processor exports under, and the HTTP one (the API defines both)."""
    ctx = otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    return otel_context.set_value(otel_context._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, ctx)


class _Exporting(threading.local):
    """Set on a thread while it runs an export: what it puts into a sink is our own."""

    active = False


_EXPORTING = _Exporting()


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
        self._take_lost = getattr(exporter, "take_lost", None)
        self._queue: deque[Any] = deque()  # spans, or their encoded bytes
        self._groups: deque[bytes] = deque()  # with encoding: each one's resource+scope
        self._wake = threading.Event()
        self._stop = False
        self._export_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._exporter_closed = False
        self._drained = threading.Condition()
        self._drains = 0  # drains completed

    def put(self, spans: Sequence[Any]) -> None:
        if _EXPORTING.active:  # the exporter's own traffic, recorded by some instrumentation
            return
        queue = self._queue
        if len(queue) + len(spans) > self._max or self._stop:
            self._stats.dropped_spans += len(spans)
            return
        # Exception events and error descriptions of any span, whoever made it, lose the
        # literals a request or a statement put in them (scrub.py); the rest pass as is.
        spans = [
            scrub_span(span) if span.events or getattr(span.status, "description", None) else span
            for span in spans
        ]
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
        if _EXPORTING.active:
            return
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
        self._finish()

    def drain(self) -> None:
        """Export what is buffered now (on the calling thread); spans put meanwhile wait."""
        queue = self._queue
        with self._export_lock:
            pending = len(queue)
            while pending > 0 and queue:
                count = min(pending, len(queue), BATCH_SPANS)
                pending -= count
                batch = [queue.popleft() for _ in range(count)]
                groups = [self._groups.popleft() for _ in range(count)] if self._encode else None
                self._export(groups, batch)
            with self._drained:
                self._drains += 1
                self._drained.notify_all()

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
        """Have the export thread write what is buffered; wait at most ``timeout_s``.

        Never exports on the calling thread (an event loop at shutdown must not wait on a
        slow exporter). True when everything buffered at the call was handed over.
        """
        if not self._queue:
            return True
        if self._thread is None:
            self._start()
        with self._drained:
            # a drain already running may have started before these spans came: wait
            # for the one after it
            target = self._drains + 2
            self._wake.set()
            return self._drained.wait_for(
                lambda: self._drains >= target or not self._queue, timeout_s
            )

    def _export(self, groups: list[bytes] | None, batch: list[Any]) -> None:
        count = len(batch)
        token = otel_context.attach(_suppressing_context())
        _EXPORTING.active = True
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
        finally:
            _EXPORTING.active = False
            otel_context.detach(token)
        if ok:
            self._stats.spans_exported += count
        else:
            self._stats.export_errors += 1
            self._stats.dropped_spans += count
        lost = self._take_lost() if self._take_lost is not None else 0
        if lost:  # written earlier, to a file deleted since: lost after all
            self._stats.export_errors += 1
            self._stats.dropped_spans += lost

    def _finish(self) -> None:
        """The last drain and the exporter's shutdown (on the export thread)."""
        self.drain()
        self._shutdown_exporter()

    def _shutdown_exporter(self) -> None:
        with self._start_lock:
            if self._exporter_closed:
                return
            self._exporter_closed = True
        token = otel_context.attach(_suppressing_context())
        _EXPORTING.active = True
        try:
            self._exporter.shutdown()
        except Exception:
            self._stats.export_errors += 1
        finally:
            _EXPORTING.active = False
            otel_context.detach(token)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is buffered and shut the exporter down, within ``timeout_s``.

        The export thread does it; past half the time the exporter is shut down from here
        too (an OTLP exporter then stops its retry back-off); past the whole of it the
        spans still buffered are counted as dropped and left behind with the daemon thread.
        """
        deadline = time.monotonic() + timeout_s
        with self._start_lock:
            self._stop = True
            thread = self._thread
            if thread is None:  # never started: start it just to finish
                thread = self._thread = threading.Thread(
                    target=self._finish, name="latency-ledger-export", daemon=True
                )
                thread.start()
        self._wake.set()
        if thread is threading.current_thread():
            return
        thread.join(timeout_s / 2)
        if thread.is_alive():
            helper = threading.Thread(target=self._shutdown_exporter, daemon=True)
            helper.start()
            thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            left = len(self._queue)
            self._stats.dropped_spans += left
            _log.warning(
                "latency-ledger: the exporter did not finish within %.1f s; %d spans not written",
                timeout_s,
                left,
            )


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
