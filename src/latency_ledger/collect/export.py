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

import json
import logging
import os
import socket
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, cast

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
    out: list[dict[str, Any]] = []
    append = out.append
    # exact-type dispatch first: this runs for every attribute of every span we keep
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            append({"key": key, "value": {"stringValue": value}})
        elif kind is int:
            append({"key": key, "value": {"intValue": str(value)}})
        else:
            append({"key": key, "value": _value(value)})
    return out


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


_quote = json.encoder.encode_basestring  # the C function: '"..."' with JSON escapes


def _attributes_json(attributes: Mapping[str, Any], out: list[str]) -> None:
    # one f-string per attribute: this runs for every attribute of every span written
    parts: list[str] = []
    append = parts.append
    for key, value in attributes.items():
        kind = type(value)
        if kind is str:
            append(f'{{"key":{_quote(key)},"value":{{"stringValue":{_quote(value)}}}}}')
        elif kind is int:
            append(f'{{"key":{_quote(key)},"value":{{"intValue":"{value}"}}}}')
        elif kind is bool:
            append(
                f'{{"key":{_quote(key)},"value":{{"boolValue":{"true" if value else "false"}}}}}'
            )
        else:
            encoded = json.dumps(_value(value), separators=(",", ":"), allow_nan=False)
            append(f'{{"key":{_quote(key)},"value":{encoded}}}')
    out.append(",".join(parts))


def encode_span_json(span: Any) -> bytes:
    """:func:`encode_span` as JSON bytes, built directly: ~3x faster than via dicts.

    It runs on the request's thread (see :class:`SpanSink`), once per SERVER span.
    """
    ctx = span.context
    out = [f'{{"traceId":"{ctx.trace_id:032x}","spanId":"{ctx.span_id:016x}"']
    if span.parent is not None:
        out.append(f',"parentSpanId":"{span.parent.span_id:016x}"')
    out.append(',"name":')
    out.append(_quote(span.name))
    out.append(
        f',"kind":{span.kind.value + 1},"startTimeUnixNano":"{span.start_time or 0}"'
        f',"endTimeUnixNano":"{span.end_time or 0}"'
    )
    if span.attributes:
        out.append(',"attributes":[')
        _attributes_json(span.attributes, out)
        out.append("]")
    if span.events or span.links:
        rest = encode_span(span)
        for key in ("events", "links"):
            if key in rest:
                out.append(f',"{key}":')
                out.append(json.dumps(rest[key], separators=(",", ":"), allow_nan=False))
    status = span.status
    code = status.status_code.value if status is not None else 0
    if code:
        out.append(f',"status":{{"code":{code},"message":')
        out.append(_quote(status.description or ""))
        out.append("}}")
    else:
        out.append(',"status":{}}')
    return "".join(out).encode("utf-8", "surrogatepass")


class ServerFields(NamedTuple):
    """What a request's SERVER span records: :meth:`attributes` for the SDK path, and
    :func:`encode_server_json` writes the same without building them (a test holds the
    two equal). A ``NamedTuple``: made once per request, it must be cheap to build."""

    method: str
    path: str
    scheme: str
    address: str | None
    route: str
    status: int | None
    cpu_ns: int
    parts: tuple[int, int, int, int, int]  # database, network, interpreter, waiting, queueing
    kept: bool
    profile: str | None
    health: tuple[int, int, int] | None  # dropped spans, errors, export errors (if any)
    overhead_ns: int
    # why the child spans were kept and the chance of that (None: not kept); written only
    # for a kept request, so the encoded path (never kept) has no such attributes
    keep: tuple[str, float] | None = None

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "http.request.method": self.method,
            "url.path": self.path,
            "url.scheme": self.scheme,
        }
        if self.address is not None:
            attrs["server.address"] = self.address
        if self.route:
            attrs["http.route"] = self.route
        if self.status is not None:
            attrs["http.response.status_code"] = self.status
        database, network, interpreter, waiting, queueing = self.parts
        attrs["ledger.cpu_ns"] = self.cpu_ns
        attrs["ledger.queueing_ns"] = queueing
        attrs["ledger.database_ns"] = database
        attrs["ledger.network_ns"] = network
        attrs["ledger.interpreter_ns"] = interpreter
        attrs["ledger.waiting_ns"] = waiting
        attrs["ledger.spans_kept"] = self.kept
        if self.keep is not None:
            attrs["ledger.keep_reason"] = self.keep[0]
            attrs["ledger.keep_probability"] = self.keep[1]
        if self.profile is not None:
            attrs["ledger.profile"] = self.profile
        if self.health is not None:
            attrs["ledger.collector.dropped_spans"] = self.health[0]
            attrs["ledger.collector.errors"] = self.health[1]
            attrs["ledger.collector.export_errors"] = self.health[2]
        attrs["ledger.overhead_ns"] = self.overhead_ns
        return attrs


def _str_attr(key: str) -> str:
    return f'{{"key":{_quote(key)},"value":{{"stringValue":'


def _int_attr(key: str) -> str:
    return f'{{"key":{_quote(key)},"value":{{"intValue":"'


_METHOD = _str_attr("http.request.method")
_PATH = _str_attr("url.path")
_SCHEME = _str_attr("url.scheme")
_ADDRESS = _str_attr("server.address")
_ROUTE = _str_attr("http.route")
_STATUS = _int_attr("http.response.status_code")
_PROFILE = _str_attr("ledger.profile")
_OVERHEAD = _int_attr("ledger.overhead_ns")
_KEPT = '{"key":"ledger.spans_kept","value":{"boolValue":%s}}'
_HEALTH = (
    _int_attr("ledger.collector.dropped_spans")
    + '%d"}},'
    + _int_attr("ledger.collector.errors")
    + '%d"}},'
    + _int_attr("ledger.collector.export_errors")
    + '%d"}},'
)
_LEDGER = (
    _int_attr("ledger.cpu_ns")
    + '%d"}},'
    + _int_attr("ledger.queueing_ns")
    + '%d"}},'
    + _int_attr("ledger.database_ns")
    + '%d"}},'
    + _int_attr("ledger.network_ns")
    + '%d"}},'
    + _int_attr("ledger.interpreter_ns")
    + '%d"}},'
    + _int_attr("ledger.waiting_ns")
    + '%d"}},'
)


def encode_server_json(
    trace_id: int,
    span_id: int,
    parent_span_id: int | None,
    name: str,
    start_ns: int,
    end_ns: int,
    fields: ServerFields,
    failed: bool,
) -> bytes:
    """A SERVER span with no events or links, byte for byte as :func:`encode_span_json`
    writes the ``ReadableSpan`` with ``fields.attributes()``, built from the fields with
    the constant parts preformatted: the collector's path for every request whose child
    spans are not kept."""
    parent = f',"parentSpanId":"{parent_span_id:016x}"' if parent_span_id is not None else ""
    out = [
        f'{{"traceId":"{trace_id:032x}","spanId":"{span_id:016x}"{parent},"name":'
        f'{_quote(name)},"kind":2,"startTimeUnixNano":"{start_ns}"'
        f',"endTimeUnixNano":"{end_ns}","attributes":[{_METHOD}{_quote(fields.method)}}}}},'
        f"{_PATH}{_quote(fields.path)}}}}},{_SCHEME}{_quote(fields.scheme)}}}}},"
    ]
    if fields.address is not None:
        out.append(f"{_ADDRESS}{_quote(fields.address)}}}}},")
    if fields.route:
        out.append(f"{_ROUTE}{_quote(fields.route)}}}}},")
    if fields.status is not None:
        out.append(f'{_STATUS}{fields.status}"}}}},')
    database, network, interpreter, waiting, queueing = fields.parts
    out.append(_LEDGER % (fields.cpu_ns, queueing, database, network, interpreter, waiting))
    out.append(_KEPT % ("true" if fields.kept else "false"))
    if fields.profile is not None:
        out.append(f",{_PROFILE}{_quote(fields.profile)}}}}}")
    out.append(",")
    if fields.health is not None:
        out.append(_HEALTH % fields.health)
    out.append(f'{_OVERHEAD}{fields.overhead_ns}"}}}}]')
    out.append(',"status":{"code":2,"message":""}}' if failed else ',"status":{}}')
    return "".join(out).encode("utf-8", "surrogatepass")


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
                    {
                        "scope": {"name": name, "version": version} if version else {"name": name},
                        "spans": encoded,
                    }
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
                        "attributes": _attributes(resource.attributes if resource else None)
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
