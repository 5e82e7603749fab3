"""Tell file shapes apart by their content, never by their name.

Contract: :func:`sniff` looks at the first bytes of a stream and names its shape (text
that is not protobuf text is JSON: the JSON reader reads past a damaged start);
:func:`foreign_format` recognizes decoded Jaeger and Zipkin JSON (read by ``jaeger`` and
``zipkin``) and Zipkin v1, which we refuse with the one line :func:`refusal` builds.
All are pure and never raise.
"""

from __future__ import annotations

import re
from enum import StrEnum

from latency_ledger.read.jaeger import is_jaeger_span
from latency_ledger.read.zipkin import is_zipkin_v1, spans_of

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOM = b"\xef\xbb\xbf"

# Protobuf text format: optional '#' comment lines, then a field name and, on the same
# line, ':', '{' or '<'. JSON's bare literals (a first line of `null`) are not field names.
_PROTO_TEXT = re.compile(
    rb"\A\s*(?:#[^\n]*\n\s*)*(?!(?:null|true|false)\b)[A-Za-z_][A-Za-z0-9_]*[ \t]*[:{<]"
)
# A JSON record starting a line after a damaged start (binary junk, a cut line). Specific
# enough that no protobuf message holds it by chance (it is checked before protobuf).
_LATER_RECORD = re.compile(
    rb'\n[ \t]*\{[ \t]*"(?:resourceSpans|resourceLogs|resourceMetrics|batches|result|data)"'
)
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_JSON_FIRST_LINE = re.compile(rb"[{\[][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*\n")
_TEXT_SAMPLE = 1024
_FIELD_1_LEN = 0x0A  # tag of field 1 (resource_spans), wire type 2: how a message starts

JAEGER = "Jaeger JSON"
ZIPKIN = "Zipkin JSON"
ZIPKIN_V1 = "Zipkin v1 JSON"
_HINTS = {
    ZIPKIN_V1: "Zipkin v2 JSON is read: fetch it from Zipkin's /api/v2/trace/{id}",
}


class Shape(StrEnum):
    EMPTY = "empty"
    GZIP = "gzip"
    ZSTD = "zstd"
    JSON = "json"
    PROTO = "proto"  # one TracesData / ExportTraceServiceRequest message
    PROTO_STREAM = "proto_stream"  # the Collector fileexporter's `format: proto`
    PROTO_TEXT = "proto_text"
    UNKNOWN = "unknown"


def sniff(head: bytes) -> Shape:
    """The shape of a stream from its first bytes (a few hundred are plenty)."""
    if not head:
        return Shape.EMPTY
    if head.startswith(GZIP_MAGIC):
        return Shape.GZIP
    if head.startswith(ZSTD_MAGIC):
        return Shape.ZSTD
    body = head.removeprefix(BOM)
    # Protobuf starts with tag bytes such as 0x0a ('\n') and 0x12, so "starts with '{'
    # after whitespace" alone could be a binary message; text has no control bytes.
    if not _CONTROL.search(body, 0, _TEXT_SAMPLE):
        stripped = body.lstrip()
        if not stripped:
            return Shape.EMPTY
        if _PROTO_TEXT.match(body) and not _LATER_RECORD.search(body):
            return Shape.PROTO_TEXT
        # Text: JSON, or JSON lines after a damaged start (a file cut at the front, a
        # preamble); the JSON reader finds the first whole record or says there is none.
        return Shape.JSON
    # A first line of JSON text (a message never starts with '{' or '['), or a JSON
    # object first with damage in its own line, then damage; or a record later.
    if _LATER_RECORD.search(head) or _JSON_FIRST_LINE.match(body) or body[:2] == b'{"':
        return Shape.JSON
    if head[0] == _FIELD_1_LEN:
        return Shape.PROTO
    # The fileexporter writes a 4-byte big-endian length before each message; real
    # messages are far below 16 MiB, so the first byte is 0 and the fifth starts one.
    if len(head) >= 5 and head[0] == 0 and head[4] == _FIELD_1_LEN:
        return Shape.PROTO_STREAM
    if _framed_message_within(head):  # such a stream cut at the front
        return Shape.PROTO_STREAM
    return Shape.UNKNOWN


# 0, three length bytes, field 1 (resource_spans); its length varint, then what a
# ResourceSpans starts with: its resource (1), scope_spans (2) or schema_url (3)
_FRAME_START = re.compile(
    rb"\x00[\x00-\xff]{3}\x0a([\x80-\xff]{0,4}[\x00-\x7f])[\x0a\x12\x1a]", re.S
)


def _framed_message_within(head: bytes) -> bool:
    """Whether a fileexporter frame seems to start somewhere in ``head``: its message's
    first field fits inside the length its prefix gives."""
    for match in _FRAME_START.finditer(head):
        size = int.from_bytes(head[match.start() + 1 : match.start() + 4], "big")
        varint = match.group(1)
        inner = sum((b & 0x7F) << (7 * i) for i, b in enumerate(varint))
        if 0 < inner <= size - 1 - len(varint):
            return True
    return False


def foreign_format(obj: object) -> str | None:
    """:data:`JAEGER`, :data:`ZIPKIN` or :data:`ZIPKIN_V1` for those shapes of a decoded
    JSON document (or line), else None. Looks at the whole value's structure, not at how
    the text starts."""
    if isinstance(obj, dict):
        data = obj.get("data")
        if isinstance(data, list) and data and _is_jaeger_trace(data[0]):
            return JAEGER
        result = obj.get("result")
        if _is_jaeger_trace(obj) or (isinstance(result, dict) and _is_jaeger_spans(result)):
            return JAEGER
        return None
    if not isinstance(obj, list):
        return None
    if obj and is_jaeger_span(obj[0]):
        return JAEGER
    spans = spans_of(obj)
    first = spans[0] if spans else None
    if isinstance(first, dict) and "traceId" in first and "id" in first:
        return ZIPKIN_V1 if is_zipkin_v1(spans) else ZIPKIN
    return None


def _is_jaeger_trace(obj: object) -> bool:
    return isinstance(obj, dict) and "traceID" in obj and "spans" in obj


def _is_jaeger_spans(obj: dict[str, object]) -> bool:
    spans = obj.get("spans")
    return isinstance(spans, list) and bool(spans) and is_jaeger_span(spans[0])


def refusal(where: str, name: str) -> str:
    """The one line for a recognized format we do not read."""
    return f"{where}: unsupported format: {name} ({_HINTS[name]})"
