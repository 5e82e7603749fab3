"""OTLP protobuf -> span rows: one message, the Collector's framed stream, text format.

Contract: each reader takes an open binary stream positioned at the start of its shape
and yields one list of :class:`~latency_ledger.read.values.SpanRow` per message. It never raises
for bad input: a message that does not parse is noted with its position and, in a framed
stream, reading goes on with the next message while the framing is intact.

- One ``TracesData`` / ``ExportTraceServiceRequest`` (the same wire shape: field 1 is
  ``resource_spans``), e.g. an OTLP/HTTP request body.
- The Collector fileexporter's ``format: proto``: each message is preceded by its length
  as a 4-byte big-endian unsigned integer.
- Protobuf text format (``trace.protobuf-text`` in opentelemetry-proto's examples).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.limits import ReadLimits, TimeCheck
from latency_ledger.read.stats import ReadStats, clip, note, show_path
from latency_ledger.read.values import KINDS, SpanRow

_UNSPECIFIED = SpanKind.UNSPECIFIED
_STATUS_ERROR = 2
# A length prefix above this is corrupt framing, not a message (the Collector batches
# far smaller), and must not make us allocate gigabytes.
MAX_MESSAGE_BYTES = 256 << 20


def _value(v: Any) -> AttributeValue:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return tuple([_value(x) for x in v.array_value.values])
    if which == "kvlist_value":
        return tuple([(kv.key, _value(kv.value)) for kv in v.kvlist_value.values])
    if which == "bytes_value":
        return bytes(v.bytes_value).hex()
    value: AttributeValue = getattr(v, which)
    return value


def _resource(resource: Any) -> tuple[str, dict[str, AttributeValue]]:
    """A resource's service name and attributes (one dict, shared by its spans)."""
    attributes = {kv.key: _value(kv.value) for kv in resource.attributes}
    service = attributes.get("service.name")
    return (service if isinstance(service, str) and service else "unknown_service"), attributes


def convert_message(message: Any, place: str, stats: ReadStats, times: TimeCheck) -> list[SpanRow]:
    """A parsed ``TracesData`` -> span rows; unusable spans are noted and left out."""
    out: list[SpanRow] = []
    kinds_get = KINDS.get
    for rs in message.resource_spans:
        service, resource = _resource(rs.resource)
        for scope in rs.scope_spans:
            for s in scope.spans:
                tid, sid, pid = s.trace_id, s.span_id, s.parent_span_id
                start, end = s.start_time_unix_nano, s.end_time_unix_nano
                who = f"span {sid.hex() or '?'} {clip(s.name)}"
                if len(tid) != 16 or not tid.strip(b"\0"):
                    note(stats, "invalid_id", f"{place}: {who} has an invalid trace id")
                elif len(sid) != 8 or not sid.strip(b"\0"):
                    note(stats, "invalid_id", f"{place}: {who} has an invalid span id")
                elif len(pid) not in (0, 8):
                    note(stats, "invalid_id", f"{place}: {who} has an invalid parent id")
                elif problem := times.problem(start, end):
                    note(stats, problem[0], f"{place}: {who} {problem[1]}")
                else:
                    out.append(
                        SpanRow(
                            tid.hex(),
                            sid.hex(),
                            pid.hex() if pid.strip(b"\0") else "",
                            s.name,
                            kinds_get(s.kind, _UNSPECIFIED),
                            start,
                            end,
                            s.status.code == _STATUS_ERROR,
                            {kv.key: _value(kv.value) for kv in s.attributes},
                            service,
                            resource,
                        )
                    )
    return out


def _parse(data: bytes, place: str, stats: ReadStats, times: TimeCheck) -> list[SpanRow] | None:
    try:
        message = TracesData.FromString(data)
    except (DecodeError, RecursionError) as exc:
        note(stats, "not_trace_data", f"{place}: not OTLP protobuf trace data ({exc})")
        return None
    if not message.resource_spans:
        note(stats, "not_trace_data", f"{place}: protobuf message holds no resource_spans")
        return None
    return convert_message(message, place, stats, times)


def read_proto(
    stream: IO[bytes], path: object, stats: ReadStats, limits: ReadLimits
) -> Iterator[list[SpanRow]]:
    """One protobuf message filling the whole stream."""
    spans = _parse(stream.read(), show_path(path), stats, TimeCheck(limits))
    if spans:
        yield spans


def read_proto_stream(
    stream: IO[bytes], path: object, stats: ReadStats, limits: ReadLimits
) -> Iterator[list[SpanRow]]:
    """The fileexporter's framing: 4-byte big-endian length, then that many bytes."""
    where = show_path(path)
    times = TimeCheck(limits)
    offset = 0
    number = 0
    while True:
        header = stream.read(4)
        if not header:
            return
        number += 1
        place = f"{where}:message {number} (byte {offset})"
        if len(header) < 4:
            note(stats, "truncated_message", f"{place}: truncated length prefix")
            return
        size = int.from_bytes(header, "big")
        if size > MAX_MESSAGE_BYTES:
            note(stats, "not_trace_data", f"{place}: length prefix {size} is not plausible")
            return
        body = stream.read(size)
        if len(body) < size:
            note(stats, "truncated_message", f"{place}: truncated ({len(body)} of {size} bytes)")
            return
        offset += 4 + size
        spans = _parse(body, place, stats, times)
        if spans:
            yield spans


def read_proto_text(
    stream: IO[bytes], path: object, stats: ReadStats, limits: ReadLimits
) -> Iterator[list[SpanRow]]:
    """Protobuf text format of one ``TracesData`` / ``ExportTraceServiceRequest``."""
    where = show_path(path)
    message = TracesData()
    try:
        text_format.Parse(stream.read().decode("utf-8"), message)
    except (text_format.ParseError, UnicodeDecodeError, RecursionError) as exc:
        note(stats, "not_trace_data", f"{where}: not OTLP protobuf text ({exc})")
        return
    spans = convert_message(message, where, stats, TimeCheck(limits))
    if spans:
        yield spans
