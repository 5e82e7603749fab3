"""One trace written as OTLP JSON, Jaeger JSON (five shapes) and Zipkin v2 gives one ledger.

The trace is described once, neutrally (``SPANS``); each writer below renders it the way
that format's exporter would, independently of the readers (Jaeger drops leading zeros
from ids, api_v2 uses base64 ids and RFC 3339 times, Zipkin shares one id between the
two sides of an RPC). The expected ledger is stated first, by hand, from the spans.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from latency_ledger.ledger import book_trace
from latency_ledger.model import Ledger, Request, Span, Trace
from latency_ledger.read import ReadStats, read_traces

MS = 1_000_000
T0_US = 1_700_000_000_000_000  # microseconds: what Jaeger and Zipkin carry
TRACE = "00f067aa0ba902b7a3c4e5f60718293a"  # a leading zero pair, lost by Jaeger
SHOP = {
    "service.name": "shop",
    "telemetry.sdk.language": "python",
    "process.runtime.name": "cpython",
}
PRICING = {"service.name": "pricing", "telemetry.sdk.language": "go"}


@dataclasses.dataclass(frozen=True)
class S:
    """A span, format-neutral: times in ms after T0, attributes as the exporter gives them."""

    id: str
    parent: str
    name: str
    kind: str  # server | client | internal
    start_ms: int
    end_ms: int
    resource: dict[str, Any]
    attrs: dict[str, Any]
    error: bool = False


# A request of 100 ms to shop: a 30 ms query, a 40 ms call to pricing (whose own request
# is 35 ms, 10 of them its query), and 10 ms of its own INTERNAL work.
SPANS = (
    S("0a00000000000001", "", "GET /orders/{id}", "server", 0, 100, SHOP,
      {"http.request.method": "GET", "http.route": "/orders/{id}",
       "http.response.status_code": 200}),
    S("0b00000000000002", "0a00000000000001", "SELECT", "client", 5, 35, SHOP,
      {"db.system": "postgresql", "db.statement": "SELECT * FROM orders WHERE id = ?"}),
    S("0c00000000000003", "0a00000000000001", "GET", "client", 40, 80, SHOP,
      {"http.request.method": "GET", "server.address": "pricing", "url.full": "http://pricing/price/7"}),
    S("0d00000000000004", "0c00000000000003", "GET /price/{sku}", "server", 42, 77, PRICING,
      {"http.request.method": "GET", "http.route": "/price/{sku}",
       "http.response.status_code": 503},
      error=True),
    S("0e00000000000005", "0d00000000000004", "SELECT", "client", 50, 60, PRICING,
      {"db.system": "mysql", "db.statement": "SELECT price FROM p WHERE sku = ?"}),
    S("0f00000000000006", "0a00000000000001", "render", "internal", 85, 95, SHOP, {}),
)  # fmt: skip


def _us(ms: int) -> int:
    return T0_US + ms * 1000


# --- OTLP JSON ---------------------------------------------------------------------------

_OTLP_KIND = {"server": 2, "client": 3, "internal": 1}


def _otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": value}


def otlp(spans: tuple[S, ...]) -> dict[str, Any]:
    groups: dict[str, list[S]] = {}
    for s in spans:
        groups.setdefault(s.resource["service.name"], []).append(s)
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [
                        {"key": k, "value": _otlp_value(v)} for k, v in group[0].resource.items()
                    ]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": TRACE,
                                "spanId": s.id,
                                "parentSpanId": s.parent,
                                "name": s.name,
                                "kind": _OTLP_KIND[s.kind],
                                "startTimeUnixNano": str(_us(s.start_ms) * 1000),
                                "endTimeUnixNano": str(_us(s.end_ms) * 1000),
                                "attributes": [
                                    {"key": k, "value": _otlp_value(v)} for k, v in s.attrs.items()
                                ],
                                "status": {"code": 2 if s.error else 0},
                            }
                            for s in group
                        ]
                    }
                ],
            }
            for group in groups.values()
        ]
    }


# --- Jaeger ------------------------------------------------------------------------------


def _ui_tag(key: str, value: Any) -> dict[str, Any]:
    kind = "bool" if isinstance(value, bool) else "int64" if isinstance(value, int) else "string"
    return {"key": key, "type": kind, "value": value}


def _ui_tags(s: S) -> list[dict[str, Any]]:
    tags = [_ui_tag(k, v) for k, v in s.attrs.items()]
    if s.kind != "internal":
        tags.append(_ui_tag("span.kind", s.kind))
    if s.error:
        tags += [_ui_tag("error", True), _ui_tag("otel.status_code", "ERROR")]
    return tags


def _process(s: S) -> dict[str, Any]:
    tags = [_ui_tag(k, v) for k, v in s.resource.items() if k != "service.name"]
    return {"serviceName": s.resource["service.name"], "tags": tags}


def _ui_span(s: S) -> dict[str, Any]:
    refs = [{"refType": "CHILD_OF", "traceID": TRACE.lstrip("0"), "spanID": s.parent.lstrip("0")}]
    return {
        "traceID": TRACE.lstrip("0"),  # Jaeger's UI JSON drops leading zeros
        "spanID": s.id.lstrip("0"),
        "flags": 1,
        "operationName": s.name,
        "references": refs if s.parent else [],
        "startTime": _us(s.start_ms),
        "duration": _us(s.end_ms) - _us(s.start_ms),
        "tags": _ui_tags(s),
        "logs": [],
        "processID": "p1" if s.resource is SHOP else "p2",
        "warnings": None,
    }


def jaeger_trace(spans: tuple[S, ...]) -> dict[str, Any]:
    return {
        "traceID": TRACE.lstrip("0"),
        "spans": [_ui_span(s) for s in spans],
        "processes": {"p1": _process(SPANS[0]), "p2": _process(SPANS[3])},
        "warnings": None,
    }


def jaeger_inline(spans: tuple[S, ...]) -> list[dict[str, Any]]:
    out = []
    for s in spans:
        span = _ui_span(s)
        del span["processID"]
        span["process"] = _process(s)
        out.append(span)
    return out


def _b64(hex_id: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_id)).decode()


def _v2_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "vType": "BOOL", "vBool": value}
    if isinstance(value, int):
        return {"key": key, "vType": "INT64", "vInt64": str(value)}
    return {"key": key, "vStr": value}  # vType STRING is proto3's default: omitted


def _rfc3339(us: int) -> str:
    moment = datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{moment}.{us % 1_000_000:06d}Z"


def jaeger_api_v2(spans: tuple[S, ...]) -> dict[str, Any]:
    """The api_v2 JSON (grpc-gateway): protobuf field names, base64 ids, RFC 3339 times."""
    out = []
    for s in spans:
        tags = [_v2_tag(k, v) for k, v in s.attrs.items()]
        if s.kind != "internal":
            tags.append(_v2_tag("span.kind", s.kind))
        if s.error:
            tags.append(_v2_tag("error", True))
        out.append(
            {
                "traceId": _b64(TRACE),
                "spanId": _b64(s.id),
                "operationName": s.name,
                # refType CHILD_OF is proto3's default: omitted
                "references": [{"traceId": _b64(TRACE), "spanId": _b64(s.parent)}]
                if s.parent
                else [],
                "startTime": _rfc3339(_us(s.start_ms)),
                "duration": f"{(s.end_ms - s.start_ms) / 1000:.6f}s",
                "tags": tags,
                "process": {
                    "serviceName": s.resource["service.name"],
                    "tags": [_v2_tag(k, v) for k, v in s.resource.items() if k != "service.name"],
                },
            }
        )
    return {"result": {"spans": out}}


# --- Zipkin v2 ---------------------------------------------------------------------------


def zipkin(spans: tuple[S, ...]) -> list[dict[str, Any]]:
    """Zipkin v2 as B3 instrumentation writes it: the callee's SERVER span shares the
    caller's CLIENT span id (``shared: true``), and its children name that id as parent.
    Tags are strings; the resource's extra attributes are flattened into tags."""
    shared = {s.id: s.parent for s in spans if s.kind == "server" and s.parent}
    out = []
    for s in spans:
        tags = {k: str(v) for k, v in s.attrs.items()}
        tags.update({k: str(v) for k, v in s.resource.items() if k != "service.name"})
        if s.error:
            tags["error"] = "503"
        span: dict[str, Any] = {
            "traceId": TRACE,
            "id": shared.get(s.id, s.id),
            "name": s.name,
            "timestamp": _us(s.start_ms),
            "duration": _us(s.end_ms) - _us(s.start_ms),
            "localEndpoint": {"serviceName": s.resource["service.name"], "ipv4": "10.0.0.1"},
            "tags": tags,
        }
        parent = shared.get(s.parent, s.parent)
        if s.id in shared:
            span["shared"] = True
            parent = next(p.parent for p in spans if p.id == s.parent)
        if parent:
            span["parentId"] = parent
        if s.kind != "internal":
            span["kind"] = s.kind.upper()
        out.append(span)
    return out


# --- the test ----------------------------------------------------------------------------


def _read(path: Path) -> tuple[list[Trace], ReadStats]:
    stats = ReadStats()
    return list(read_traces([path], stats=stats)), stats


def _requests(traces: list[Trace]) -> list[Request]:
    """Booked requests without their span ids (Zipkin's shared server span gets its own)."""
    requests = [r for t in traces for r in book_trace(t).requests]
    return sorted((dataclasses.replace(r, span_id="") for r in requests), key=lambda r: r.service)


WRITERS = {
    "jaeger-data": lambda spans: {"data": [jaeger_trace(spans)]},
    "jaeger-trace": jaeger_trace,
    "jaeger-span-list": jaeger_inline,
    "jaeger-api-v2": jaeger_api_v2,
    "zipkin-v2": zipkin,
}


@pytest.fixture
def otlp_requests(tmp_path: Path) -> list[Request]:
    path = tmp_path / "trace.otlp.json"
    path.write_text(json.dumps(otlp(SPANS)))
    traces, stats = _read(path)
    assert (stats.spans, dict(stats.skipped)) == (6, {})
    return _requests(traces)


def test_the_otlp_ledger_is_the_one_stated_by_hand(otlp_requests: list[Request]) -> None:
    pricing, shop = otlp_requests
    # shop: 30 ms query, 40 ms call to pricing, the rest (30 ms, render included) own time.
    assert shop.ledger == Ledger(database_ns=30 * MS, network_ns=40 * MS, app_ns=30 * MS)
    assert (shop.endpoint, shop.status_code, shop.is_error) == ("GET /orders/{id}", 200, False)
    # pricing: 35 ms, 10 of them its query.
    assert pricing.ledger == Ledger(database_ns=10 * MS, network_ns=0, app_ns=25 * MS)
    assert (pricing.endpoint, pricing.status_code, pricing.is_error) == (
        "GET /price/{sku}",
        503,
        True,
    )


@pytest.mark.parametrize("shape", list(WRITERS))
def test_each_format_gives_the_same_ledger(
    tmp_path: Path, otlp_requests: list[Request], shape: str
) -> None:
    path = tmp_path / f"trace.{shape}.json"
    path.write_text(json.dumps(WRITERS[shape](SPANS), indent=2))  # pretty, as downloaded
    traces, stats = _read(path)
    assert (stats.spans, stats.traces, dict(stats.skipped), stats.problems) == (6, 1, {}, [])
    assert _requests(traces) == otlp_requests
    # The resource travels too: the runtime can be read from any of them.
    by_service = {s.service: s.resource for t in traces for s in t.spans}
    assert by_service == {"shop": SHOP, "pricing": PRICING}


@pytest.mark.parametrize("shape", [s for s in WRITERS if s.startswith("jaeger")])
def test_jaeger_spans_are_the_otlp_spans(tmp_path: Path, shape: str) -> None:
    """Jaeger keeps ids, so span by span the records are equal, attributes typed."""
    (tmp_path / "a.json").write_text(json.dumps(otlp(SPANS)))
    (tmp_path / "b.json").write_text(json.dumps(WRITERS[shape](SPANS)))
    from_otlp, _ = _read(tmp_path / "a.json")
    from_jaeger, _ = _read(tmp_path / "b.json")

    def spans(traces: list[Trace]) -> list[Span]:
        return sorted((s for t in traces for s in t.spans), key=lambda s: s.span_id)

    assert spans(from_jaeger) == spans(from_otlp)
