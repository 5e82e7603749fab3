"""OTLP protobuf -> span rows: one message, the Collector's framed stream, text format.

Contract: each reader takes an open binary stream positioned at the start of its shape
and yields one list of :class:`~latency_ledger.read.values.SpanRow` per message. It never raises
for bad input: a message that does not parse is noted with its position and, in a framed
stream, reading goes on with the next message; where the framing itself is damaged (a
corrupt length, a file cut at the front or mid-message, junk between messages) reading
resumes at the next offset where a whole frame holding a trace message starts, and the
bytes skipped are noted once per stretch.

- One ``TracesData`` / ``ExportTraceServiceRequest`` (the same wire shape: field 1 is
  ``resource_spans``), e.g. an OTLP/HTTP request body.
- The Collector fileexporter's ``format: proto``: each message is preceded by its length
  as a 4-byte big-endian unsigned integer.
- Protobuf text format (``trace.protobuf-text`` in opentelemetry-proto's examples).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import IO, Any

from google.protobuf import text_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.trace.v1.trace_pb2 import TracesData

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.limits import ReadLimits, TimeCheck
from latency_ledger.read.stats import MAX_PROBLEMS, ReadStats, clip, note, show_path
from latency_ledger.read.values import KINDS, SpanRow

_UNSPECIFIED = SpanKind.UNSPECIFIED
_FIELD_1_LEN = 0x0A  # tag of field 1 (resource_spans), wire type 2: how a message starts
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
    """One protobuf message filling the whole stream; failing that, a framed stream cut
    where a message began with the same byte (its messages are read from the first
    whole frame on)."""
    where = show_path(path)
    data = stream.read()
    whole = ReadStats()
    spans = _parse(data, where, whole, TimeCheck(limits))
    if spans is None:
        framed = ReadStats()
        window = _Window(io.BytesIO(data))
        messages = list(_frames(window, where, framed, TimeCheck(limits), resync=True))
        if messages:
            _replay(framed, stats)
            yield from messages
            return
    _replay(whole, stats)
    if spans:
        yield spans


def _replay(noted: ReadStats, stats: ReadStats) -> None:
    """What a trial read noted, into the real counters."""
    stats.skipped.update(noted.skipped)
    stats.problem_count += noted.problem_count
    stats.problems.extend(noted.problems[: max(0, MAX_PROBLEMS - len(stats.problems))])


def read_proto_stream(
    stream: IO[bytes], path: object, stats: ReadStats, limits: ReadLimits
) -> Iterator[list[SpanRow]]:
    """The fileexporter's framing: 4-byte big-endian length, then that many bytes; a
    stream whose start is no whole frame (cut at the front) is read from its first one."""
    window = _Window(stream)
    start_is_frame = _frame_size(window, 0) is not None
    yield from _frames(window, show_path(path), stats, TimeCheck(limits), resync=not start_is_frame)


class _Window:
    """A stream's bytes from ``base`` on, read ahead as needed and dropped once passed:
    memory is about the largest frame looked at, not the file."""

    __slots__ = ("base", "data", "eof", "stream")

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.data = bytearray()
        self.base = 0  # the stream offset of data[0]
        self.eof = False

    def have(self, at: int, n: int) -> bool:
        """Whether bytes [at, at + n) (stream offsets) can be read, reading on if needed."""
        end = at - self.base + n
        while len(self.data) < end and not self.eof:
            # chunks, never one read of the size wanted: a corrupt length prefix must not
            # allocate its megabytes before the stream turns out to hold far less
            chunk = self.stream.read(_READ_AHEAD)
            if not chunk:
                self.eof = True
            self.data += chunk
        return len(self.data) >= end

    def get(self, at: int, n: int) -> bytes:
        start = at - self.base
        return bytes(self.data[start : start + n])

    def find(self, byte: int, at: int) -> int:
        """The stream offset of ``byte`` at or after ``at`` in what was read, or -1."""
        found = self.data.find(byte, at - self.base)
        return -1 if found < 0 else found + self.base

    def drop(self, before: int) -> None:
        """Forget bytes before stream offset ``before``."""
        cut = before - self.base
        if cut > _READ_AHEAD:
            del self.data[:cut]
            self.base = before


# Read ahead in chunks this size; dropping what was passed in chunks this size too.
_READ_AHEAD = 1 << 16


def _frame_size(window: _Window, at: int) -> int | None:
    """The length of a plausible frame at ``at``: a length prefix whose message starts
    with field 1 (``resource_spans``) and fits in what the stream holds; else None."""
    if not window.have(at, 5):
        return None
    header = window.get(at, 5)
    size = int.from_bytes(header[:4], "big")
    if header[4] != _FIELD_1_LEN or size > MAX_MESSAGE_BYTES or not window.have(at, 4 + size):
        return None
    return size


def _next_frame(window: _Window, start: int, where: str, times: TimeCheck) -> int:
    """The offset of the first frame at or after ``start`` that holds a trace message
    with at least one valid span; -1 if none. Each candidate is an 0x0a byte 4 bytes
    after a 0 (messages stay far below 16 MiB)."""
    probe = start + 4
    while True:
        window.have(probe, 1)
        found = window.find(_FIELD_1_LEN, probe)
        if found < 0:
            if window.eof:
                return -1
            window.have(window.base + len(window.data), 1)  # read on, look again
            continue
        at = found - 4
        probe = found + 1
        window.drop(at)  # what was looked at is not kept: memory stays about one frame
        if at < start or window.get(at, 1) != b"\0":
            continue
        size = _frame_size(window, at)
        if size is None:
            continue
        # a message that parses and holds a span with valid ids: chance bytes do not
        if _parse(window.get(at + 4, size), where, ReadStats(), times):
            return at


def _frames(
    window: _Window, where: str, stats: ReadStats, times: TimeCheck, *, resync: bool
) -> Iterator[list[SpanRow]]:
    """Each frame's spans; ``resync``: look for the first frame rather than expect it at
    the start (a stream cut at the front). A damaged frame is noted once, with where
    reading resumed."""
    offset = 0
    number = 0
    problem: tuple[str, str] | None = None  # a damaged frame's, until we know what follows
    while True:
        window.drop(offset)
        if resync:
            resync = False
            found = _next_frame(window, offset, where, times)
            if problem is not None:
                reason, text = problem
                problem = None
                if found >= 0:
                    text = f"{text}; resumed at byte {found}"
                note(stats, reason, text)
            elif found < 0:
                note(
                    stats, "not_trace_data", f"{where}: not trace data (no whole protobuf message)"
                )
            elif found > offset:
                skipped = found - offset
                note(
                    stats,
                    "damaged_framing",
                    f"{where}: skipped {skipped} bytes before byte {found}",
                )
            if found < 0:
                return
            offset = found
        if not window.have(offset, 1):
            return
        number += 1
        place = f"{where}:message {number} (byte {offset})"
        if not window.have(offset, 4):
            note(stats, "truncated_message", f"{place}: truncated length prefix")
            return
        size = int.from_bytes(window.get(offset, 4), "big")
        if size > MAX_MESSAGE_BYTES:
            problem = ("not_trace_data", f"{place}: length prefix {size} is not plausible")
        elif not window.have(offset, 4 + size):
            got = window.base + len(window.data) - offset - 4
            problem = ("truncated_message", f"{place}: truncated ({got} of {size} bytes)")
        else:
            noted = ReadStats()
            spans = _parse(window.get(offset + 4, size), place, noted, times)
            if spans is None:
                problem = ("not_trace_data", noted.problems[0])
            else:
                _replay(noted, stats)
                offset += 4 + size
                if spans:
                    yield spans
                continue
        # a damaged frame, a corrupt length or a cut last message: a whole frame may follow
        resync = True
        offset += 1


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
