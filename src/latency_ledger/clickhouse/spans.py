"""Rows of the Collector's ``otel_traces`` table <-> ``model.Span``.

Contract: :data:`SPAN_COLUMNS` is the SQL tuple of one span's columns, in the order
:func:`to_span` reads them. The table keeps every attribute value as a string (the
exporter writes ``pcommon.Value.AsString``): ints and floats stay decimal strings, which
every reader of numeric attributes accepts (``ledger.as_int``, ``endpoint.attr_port``,
``ledger.keep_probability``), but for the collector's counters (``ledger.collector.*``),
the process-CPU window (``ledger.process_cpu_ns``, ``ledger.booked_cpu_ns``) and each
plugin's cost (``ledger.plugin.<name>.overhead_ns``), read as ints only; bools stay
``"true"``/``"false"`` (``ledger.spans_kept`` reads both); arrays come back from their
JSON text as tuples (captured headers). The
exporter's ``otel.scope.*`` entries are not span attributes and are dropped. Kinds and
status codes come in both spellings the exporter has used: ``Server`` and
``SPAN_KIND_SERVER``, ``Error`` and ``STATUS_CODE_ERROR``. The resource keeps only
the keys runtime detection reads, and only on SERVER spans (nothing else reads it).

:func:`to_row` is the other way, for loading traces into a table (tests, benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import msgspec

from latency_ledger.accumulate import (
    BOOKED_CPU,
    COLLECTOR_PREFIX,
    PLUGIN_PREFIX,
    PLUGIN_SUFFIX,
    PROCESS_CPU,
)
from latency_ledger.ledger import as_int
from latency_ledger.model import Attributes, AttributeValue, Span, SpanKind

# ``SpanKind`` strings as current exporters write them (``ptrace.SpanKind.String()``)
# and as older ones did (the protobuf enum names).
KINDS: dict[str, SpanKind] = {k.name.title(): k for k in SpanKind} | {
    f"SPAN_KIND_{k.name}": k for k in SpanKind
}
SERVER_KINDS = ("Server", "SPAN_KIND_SERVER")
ERROR_STATUSES = frozenset({"Error", "STATUS_CODE_ERROR"})
RUNTIME_KEYS = (
    "process.runtime.name",
    "process.runtime.version",
    "process.runtime.description",
    "telemetry.sdk.language",
    "jaeger.version",
)
_SCOPE_KEYS = ("otel.scope.name", "otel.scope.version")
_UNKNOWN = SpanKind.UNSPECIFIED

# One span as the reader fetches it; the resource only for SERVER spans.
SPAN_COLUMNS = (
    "(SpanId, ParentSpanId, SpanName, SpanKind, toUnixTimestamp64Nano(Timestamp), "
    "toInt64(Duration), StatusCode, ServiceName, SpanAttributes, "
    "if(SpanKind IN ('Server', 'SPAN_KIND_SERVER'), "
    "mapFilter((k, v) -> k IN {runtime_keys:Array(String)}, ResourceAttributes), "
    "map()))"
)

_decode_list = msgspec.json.Decoder(list[Any]).decode
_INT_KEYS = frozenset({PROCESS_CPU, BOOKED_CPU})


def _is_plugin_cost(key: str) -> bool:
    return key.startswith(PLUGIN_PREFIX) and key.endswith(PLUGIN_SUFFIX)


def attribute(value: str) -> AttributeValue:
    """A stored attribute string -> the value the ledger reads (see the contract)."""
    if value[:1] == "[" and value[-1:] == "]":
        try:
            items = _decode_list(value)
        except msgspec.DecodeError:
            return value
        if all(isinstance(item, str | int | float | bool) for item in items):
            return tuple(items)
    return value


def attributes(raw: Mapping[str, str]) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in raw.items():
        if key in _SCOPE_KEYS:
            continue
        if key.startswith(COLLECTOR_PREFIX) or key in _INT_KEYS or _is_plugin_cost(key):
            # read as ints only (accumulate.add_server_span): the collector's counters, the
            # process-CPU window, each plugin's share of the request's cost
            out[key] = as_int(value)
            continue
        out[key] = attribute(value) if value[:1] == "[" else value
    return out


def to_span(trace_id: str, row: list[Any]) -> Span:
    """One fetched :data:`SPAN_COLUMNS` tuple -> a Span."""
    span_id, parent, name, kind, start, duration, status, service, attrs, resource = row
    return Span(
        trace_id=trace_id.lower(),
        span_id=span_id.lower(),
        parent_span_id=parent.lower(),
        name=name,
        kind=KINDS.get(kind, _UNKNOWN),
        start_ns=start,
        end_ns=start + duration,
        is_error=status in ERROR_STATUSES,
        attributes=attributes(attrs),
        service=service or "unknown_service",
        resource=dict(resource),
    )


# --- the other way: spans -> rows of the exporter's table -------------------------------


def as_string(value: AttributeValue) -> str:
    """An attribute as the exporter stores it (``pcommon.Value.AsString``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    if isinstance(value, tuple):
        return msgspec.json.encode(list(value)).decode()
    return "" if value is None else str(value)


def _strings(attrs: Attributes) -> dict[str, str]:
    return {key: as_string(value) for key, value in attrs.items()}


def to_row(span: Span, *, old_names: bool = False) -> dict[str, Any]:
    """One span as a JSONEachRow object for :data:`schema.INSERT_SQL`'s ``input``.

    ``old_names``: kinds and status codes as older exporters wrote them."""
    kind = f"SPAN_KIND_{span.kind.name}" if old_names else span.kind.name.title()
    if span.is_error:
        status = "STATUS_CODE_ERROR" if old_names else "Error"
    else:
        status = "STATUS_CODE_UNSET" if old_names else "Unset"
    return {
        "ts": span.start_ns,
        "trace": span.trace_id,
        "span": span.span_id,
        "parent": span.parent_span_id,
        "name": span.name,
        "kind": kind,
        "service": span.service,
        "resource": _strings(span.resource),
        "attrs": _strings(span.attributes),
        "duration": max(0, span.end_ns - span.start_ns),
        "status": status,
    }
