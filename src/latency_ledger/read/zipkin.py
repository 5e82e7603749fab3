"""Zipkin JSON v2 -> span rows, the same rows the OTLP readers make for the same spans.

Contract: :func:`convert_zipkin` takes one decoded JSON value that
:func:`~latency_ledger.read.sniff.foreign_format` named Zipkin JSON (a list of spans, as
``POST /api/v2/spans`` and ``GET /api/v2/trace/{id}`` carry, or a list of such lists, as
``GET /api/v2/traces`` answers) and returns its span rows; unusable spans are noted in
the stats and left out. Zipkin v1 (``binaryAnnotations``, endpoints on annotations) is
refused by the caller with a one-line hint.

Mapping: ``timestamp``/``duration`` are microseconds; ``kind`` is the kind (none:
INTERNAL); tags are string attributes; an ``error`` tag or ``otel.status_code=ERROR``
is an error (consumed, like ``otel.status_description``); ``remoteEndpoint`` becomes
``peer.service``, ``network.peer.address`` and ``network.peer.port``;
``localEndpoint.serviceName`` is the resource's ``service.name``, and tags the OTel
Zipkin exporter flattened out of the resource (``telemetry.sdk.*``,
``process.runtime.*``, ``service.*``) go back to the resource.

Ids: 16 or 32 hex digits (leading zeros restored); a 64-bit trace id whose digits are the
low half of a 128-bit id in the same input joins that trace (instrumentation that kept
only 64 bits).

Shared spans (B3's one id for both sides of an RPC): the client half and the server half
(``shared: true``, or the SERVER kind beside a CLIENT of the same id) stay two spans, so
the caller sees a network call and the callee a request. The server half gets a derived
id (``blake2b`` of trace, id and "server", 8 bytes) and the client half as parent; the
id's children move under the server half, except those reported by the client's own
service when that differs from the server's. Several reports of one half (Zipkin
allows late halves) are merged: earliest start, latest end, tags united, the first
non-empty name, kind, endpoints and parent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from latency_ledger.model import AttributeValue, SpanKind
from latency_ledger.read.foreign import KIND_NAMES, RowMaker, as_int, pad_hex, us_to_ns
from latency_ledger.read.limits import TimeCheck
from latency_ledger.read.stats import ReadStats, note
from latency_ledger.read.values import IdDecoder, SpanRow

_RESOURCE_PREFIXES = ("telemetry.sdk.", "telemetry.distro.", "process.runtime.", "service.")
_FIRST_WINS = ("name", "kind", "localEndpoint", "remoteEndpoint", "parentId")


def spans_of(obj: object) -> list[Any]:
    """The span entries of a Zipkin document: a list, or a list of lists (traces)."""
    if not isinstance(obj, list):
        return []
    out: list[Any] = []
    for item in obj:
        if isinstance(item, list):
            out.extend(item)
        else:
            out.append(item)
    return out


def is_zipkin_v1(spans: list[Any]) -> bool:
    """v1 spans carry ``binaryAnnotations`` or endpoints on their annotations."""
    for span in spans[:50]:
        if not isinstance(span, dict):
            continue
        if "binaryAnnotations" in span:
            return True
        annotations = span.get("annotations")
        if isinstance(annotations, list) and any(
            isinstance(a, dict) and "endpoint" in a for a in annotations
        ):
            return True
    return False


def _service(endpoint: object) -> str:
    if isinstance(endpoint, dict):
        name = endpoint.get("serviceName")
        if isinstance(name, str):
            return name
    return ""


def _merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several reports of one span half -> one."""
    if len(reports) == 1:
        return reports[0]
    merged: dict[str, Any] = {}
    tags: dict[str, Any] = {}
    start: int | None = None
    end: int | None = None
    for report in reports:
        for key in _FIRST_WINS:
            if not merged.get(key) and report.get(key):
                merged[key] = report[key]
        given = report.get("tags")
        if isinstance(given, dict):
            for key, value in given.items():
                tags.setdefault(key, value)
        report_start = as_int(report.get("timestamp"))
        report_duration = as_int(report.get("duration"))
        if report_start is not None:
            start = report_start if start is None else min(start, report_start)
            if report_duration is not None:
                report_end = report_start + report_duration
                end = report_end if end is None else max(end, report_end)
    merged["tags"] = tags
    if start is not None:
        merged["timestamp"] = start
        if end is not None:
            merged["duration"] = end - start
    return merged


def _is_server_half(span: dict[str, Any], group_has_client: bool) -> bool:
    if span.get("shared") is True:
        return True
    kind = span.get("kind")
    return group_has_client and isinstance(kind, str) and kind.upper() == "SERVER"


def _server_id(trace_id: str, span_id: str) -> str:
    digest = hashlib.blake2b(f"{trace_id}/{span_id}/server".encode(), digest_size=8)
    return digest.hexdigest()


def _attributes(
    span: Mapping[str, Any],
) -> tuple[dict[str, AttributeValue], dict[str, AttributeValue], bool]:
    """(span attributes, resource attributes found in tags, is_error)."""
    attributes: dict[str, AttributeValue] = {}
    resource: dict[str, AttributeValue] = {}
    given = span.get("tags")
    is_error = False
    if isinstance(given, dict):
        for key, value in given.items():
            if not isinstance(key, str):
                continue
            if not isinstance(value, str):
                value = None if isinstance(value, dict | list) else value
            if key == "error":
                is_error = True
            elif key == "otel.status_code":
                is_error = is_error or (isinstance(value, str) and value.upper() == "ERROR")
            elif key == "otel.status_description":
                continue
            elif key.startswith(_RESOURCE_PREFIXES):
                resource[key] = value
            else:
                attributes[key] = value
    remote = span.get("remoteEndpoint")
    if isinstance(remote, dict):
        peer = remote.get("serviceName")
        if isinstance(peer, str) and peer:
            attributes.setdefault("peer.service", peer)
        address = remote.get("ipv4") or remote.get("ipv6")
        if isinstance(address, str) and address:
            attributes.setdefault("network.peer.address", address)
        port = as_int(remote.get("port"))
        if port:
            attributes.setdefault("network.peer.port", port)
    return attributes, resource, is_error


def _trace_ids(spans: list[dict[str, Any]]) -> dict[str, str]:
    """Raw trace id -> the padded id to use, joining 64-bit ids to a 128-bit one."""
    padded = {}
    for span in spans:
        raw = span.get("traceId")
        if isinstance(raw, str) and raw not in padded:
            padded[raw] = pad_hex(raw, 16)
    wide = {p[16:].lower(): p for p in padded.values() if len(p) == 32}
    return {raw: wide.get(p.lower(), p) if len(p) == 16 else p for raw, p in padded.items()}


def convert_zipkin(
    obj: object, place: str, stats: ReadStats, ids: IdDecoder, times: TimeCheck
) -> list[SpanRow]:
    """The span rows of one decoded Zipkin v2 JSON value."""
    maker = RowMaker(place, stats, ids, times)
    spans: list[dict[str, Any]] = []
    for span in spans_of(obj):
        if isinstance(span, dict):
            spans.append(span)
        else:
            note(stats, "invalid_span", f"{place}: a span is not an object")
    trace_of = _trace_ids(spans)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for span in spans:
        raw_trace = span.get("traceId")
        trace_id = trace_of.get(raw_trace, "") if isinstance(raw_trace, str) else ""
        groups.setdefault((trace_id, pad_hex(span.get("id"), 8).lower()), []).append(span)
    # (trace, id) -> (server half's id, its service, the client half's service)
    split: dict[tuple[str, str], tuple[str, str, str]] = {}
    halves: list[tuple[str, str, dict[str, Any], str | None]] = []  # trace, id, span, parent
    for (trace_id, span_id), reports in groups.items():
        has_client = any(
            isinstance(r.get("kind"), str) and r["kind"].upper() != "SERVER" for r in reports
        )
        server = [r for r in reports if _is_server_half(r, has_client)]
        client = [r for r in reports if not _is_server_half(r, has_client)]
        if server and client:
            client_span, server_span = _merge(client), _merge(server)
            server_id = _server_id(trace_id, span_id)
            split[(trace_id, span_id)] = (
                server_id,
                _service(server_span.get("localEndpoint")),
                _service(client_span.get("localEndpoint")),
            )
            halves.append((trace_id, span_id, client_span, None))
            halves.append((trace_id, server_id, server_span, span_id))
        else:
            halves.append((trace_id, span_id, _merge(server or client), None))
    for trace_id, span_id, span, parent in halves:
        if parent is None:
            parent = pad_hex(span.get("parentId"), 8).lower()
            moved = split.get((trace_id, parent))
            if moved is not None:
                server_id, server_service, client_service = moved
                own = _service(span.get("localEndpoint"))
                if not (own and own == client_service and own != server_service):
                    parent = server_id
        attributes, resource_tags, is_error = _attributes(span)
        service, resource = maker.resource(_service(span.get("localEndpoint")), resource_tags)
        kind = span.get("kind")
        start = us_to_ns(span.get("timestamp"))
        duration = us_to_ns(span.get("duration"))
        maker.add(
            trace_id=trace_id,
            span_id=span_id,
            parent_id=parent,
            name=span.get("name"),
            kind=KIND_NAMES.get(kind.lower(), SpanKind.INTERNAL)
            if isinstance(kind, str)
            else SpanKind.INTERNAL,
            start_ns=start,
            end_ns=None if start is None or duration is None else start + duration,
            is_error=is_error,
            attributes=attributes,
            service=service,
            resource=resource,
        )
    return maker.rows
