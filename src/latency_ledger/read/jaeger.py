"""Jaeger JSON -> span rows, the same rows the OTLP readers make for the same spans.

Contract: :func:`convert_jaeger` takes one decoded JSON value that
:func:`~latency_ledger.read.sniff.foreign_format` named Jaeger JSON and returns its span
rows; spans it cannot use are noted in the stats (as the OTLP reader does) and left out.

Shapes read:

- the query service's ``/api/traces`` answer and the UI's "Download JSON":
  ``{"data": [trace, ...]}``, each trace ``{"traceID", "spans", "processes"}``;
- one bare trace object;
- a bare list of spans, each with its ``process`` inline;
- the api_v2 JSON (grpc-gateway, protobuf field names): ``{"result": {"spans": [...]}}``,
  base64 ids, RFC 3339 ``startTime``, ``"0.004199s"`` durations, ``vType``/``vStr`` tags.

Mapping (as the Collector's Jaeger receiver does it): ids lose nothing (Jaeger drops
leading zeros; they are put back; a 64-bit trace id is widened with zeros); the parent
is the first ``CHILD_OF`` reference, else the first reference, else ``parentSpanID``;
microseconds become ns; the ``span.kind`` tag is the kind; ``error=true`` or
``otel.status_code=ERROR`` is an error (those three tags and
``otel.status_description`` are consumed, not kept as attributes); typed tags keep
their type (``int64`` as int, ``binary`` as hex). The process (``serviceName`` and its
tags) is the span's resource.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.foreign import KIND_NAMES, RowMaker, as_int, pad_hex, scalar, us_to_ns
from latency_ledger.read.limits import TimeCheck
from latency_ledger.read.stats import ReadStats, note
from latency_ledger.read.values import IdDecoder, SpanRow, b64_to_hex

_CONSUMED_TAGS = frozenset({"span.kind", "error", "otel.status_code", "otel.status_description"})
_RFC3339 = re.compile(
    r"\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z", re.IGNORECASE
)
_DURATION = re.compile(r"\A(\d{1,12})(?:\.(\d{1,9}))?s\Z")


def is_jaeger_span(obj: object) -> bool:
    """A Jaeger span in either encoding (UI JSON or api_v2 JSON)."""
    return (
        isinstance(obj, dict)
        and ("traceID" in obj or "traceId" in obj)
        and ("spanID" in obj or "spanId" in obj)
        and "operationName" in obj
    )


def _ui_value(tag: Mapping[str, Any]) -> AttributeValue:
    """A UI-JSON tag ``{"key", "type", "value"}``; numbers given as text keep their type."""
    value = tag.get("value")
    kind = tag.get("type")
    if kind == "int64":
        number = as_int(value)
        return number if number is not None else scalar(value)
    if kind == "float64" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if kind == "bool" and isinstance(value, str):
        return value.strip().lower() == "true"
    if kind == "binary" and isinstance(value, str):
        return b64_to_hex(value)
    return scalar(value)


def _v2_value(tag: Mapping[str, Any]) -> AttributeValue:
    """An api_v2 tag: ``vType`` (STRING when omitted, proto3's default) and ``v*``."""
    kind = tag.get("vType", "STRING")
    if kind == "BOOL":
        return tag.get("vBool") is True
    if kind == "INT64":
        return as_int(tag.get("vInt64", 0))
    if kind == "FLOAT64":
        value = tag.get("vFloat64", 0.0)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )
    if kind == "BINARY":
        value = tag.get("vBinary", "")
        return b64_to_hex(value) if isinstance(value, str) else None
    return scalar(tag.get("vStr", ""))


def tags(raw: object) -> dict[str, AttributeValue]:
    """A Jaeger tag list (either encoding) as attributes; malformed entries are dropped."""
    out: dict[str, AttributeValue] = {}
    if not isinstance(raw, list):
        return out
    for tag in raw:
        if tag.__class__ is not dict:
            continue
        key = tag.get("key")
        if key.__class__ is not str:
            continue
        value = tag.get("value")
        if value.__class__ is str and tag.get("type", "string") == "string":
            out[key] = value  # most tags: a string, no call
        else:
            out[key] = _v2_value(tag) if "vType" in tag or "vStr" in tag else _ui_value(tag)
    return out


def _rfc3339_ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    found = _RFC3339.match(value)
    if found is None:
        return None
    base, fraction, zone = found.groups()
    try:
        moment = datetime.fromisoformat(base + ("+00:00" if zone in ("Z", "z") else zone))
    except ValueError:
        return None
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def _duration_ns(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    found = _DURATION.match(value)
    if found is None:
        return None
    whole, fraction = found.groups()
    return int(whole) * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def _times(span: Mapping[str, Any]) -> tuple[int | None, int | None]:
    start_raw = span.get("startTime")
    if isinstance(start_raw, str) and "T" in start_raw:  # api_v2: RFC 3339 and "1.5s"
        start = _rfc3339_ns(start_raw)
        duration = _duration_ns(span.get("duration", "0s"))
    else:
        start = us_to_ns(start_raw)
        duration = us_to_ns(span.get("duration"))
    if start is None or duration is None:
        return start, None
    return start, start + duration


def _parent(span: Mapping[str, Any]) -> str:
    refs = span.get("references")
    first = ""
    if isinstance(refs, list):
        for ref in refs:
            if not isinstance(ref, dict):
                continue
            raw = ref.get("spanID", ref.get("spanId"))
            if not isinstance(raw, str) or not raw:
                continue
            # api_v2 omits refType for CHILD_OF, proto3's default value.
            if ref.get("refType", "CHILD_OF") == "CHILD_OF":
                return pad_hex(raw, 8)
            first = first or pad_hex(raw, 8)
    if first:
        return first
    return pad_hex(span.get("parentSpanID", span.get("parentSpanId")), 8)


def _status_and_kind(attributes: dict[str, AttributeValue]) -> tuple[bool, SpanKind]:
    kind_tag = attributes.get("span.kind")
    kind = (
        KIND_NAMES.get(kind_tag.lower(), SpanKind.INTERNAL) if isinstance(kind_tag, str) else None
    )
    error = attributes.get("error")
    status = attributes.get("otel.status_code")
    is_error = error is True or (isinstance(error, str) and error.lower() == "true")
    is_error = is_error or (isinstance(status, str) and status.upper() == "ERROR")
    for key in _CONSUMED_TAGS.intersection(attributes):
        del attributes[key]
    return is_error, SpanKind.INTERNAL if kind is None else kind


def _convert_spans(
    spans: object, processes: object, maker: RowMaker, trace_id: object = None
) -> None:
    if not isinstance(spans, list):
        return
    known: dict[str, tuple[str, dict[str, AttributeValue]]] = {}
    for span in spans:
        if not isinstance(span, dict):
            note(maker.stats, "invalid_span", f"{maker.place}: a span is not an object")
            continue
        process = span.get("process")
        process_id = span.get("processID", span.get("processId"))
        if not isinstance(process, dict) and isinstance(process_id, str):
            if process_id not in known and isinstance(processes, dict):
                found = processes.get(process_id)
                if isinstance(found, dict):
                    known[process_id] = maker.resource(
                        found.get("serviceName"), tags(found.get("tags"))
                    )
            service, resource = known.get(process_id) or maker.resource(None, {})
        elif isinstance(process, dict):
            service, resource = maker.resource(
                process.get("serviceName"), tags(process.get("tags"))
            )
        else:
            service, resource = maker.resource(None, {})
        attributes = tags(span.get("tags"))
        is_error, kind = _status_and_kind(attributes)
        start, end = _times(span)
        raw_trace = span.get("traceID", span.get("traceId", trace_id))
        maker.add(
            trace_id=pad_hex(raw_trace, 16),
            span_id=pad_hex(span.get("spanID", span.get("spanId")), 8),
            parent_id=_parent(span),
            name=span.get("operationName"),
            kind=kind,
            start_ns=start,
            end_ns=end,
            is_error=is_error,
            attributes=attributes,
            service=service,
            resource=resource,
        )


def _traces(obj: object) -> list[Any]:
    """The trace objects (or span lists) in any of the shapes."""
    if isinstance(obj, list):
        return [obj]
    if not isinstance(obj, dict):
        return []
    data = obj.get("data")
    if isinstance(data, list):
        return data
    result = obj.get("result")
    if isinstance(result, dict):
        return [result]
    return [obj]


def convert_jaeger(
    obj: object, place: str, stats: ReadStats, ids: IdDecoder, times: TimeCheck
) -> list[SpanRow]:
    """The span rows of one decoded Jaeger JSON value."""
    maker = RowMaker(place, stats, ids, times)
    for trace in _traces(obj):
        if isinstance(trace, list):  # a bare list of spans, processes inline
            _convert_spans(trace, None, maker)
        elif isinstance(trace, dict):
            _convert_spans(trace.get("spans"), trace.get("processes"), maker, trace.get("traceID"))
        else:
            note(stats, "invalid_span", f"{place}: a trace entry is not an object")
    return maker.rows
