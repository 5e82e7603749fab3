"""Generate realistic OTLP JSON-lines trace files (tests and benchmarks reuse this).

:func:`write_otlp_jsonl` writes what ``opentelemetry-exporter-otlp-json-file`` and the
Collector's file exporter write: one ``ExportTraceServiceRequest`` per line, lowercase
hex ids, int64 times as strings, kinds as ints. Each request is one trace: a SERVER span
(``http.route``, method, status) with DB CLIENT spans (``db.system`` + ``db.statement``,
old conventions, or ``db.system.name`` + ``db.query.text``, new ones), HTTP CLIENT spans
and INTERNAL spans below it, some run concurrently. Several requests share a line, and
about one request in ten is split over two lines (its children flushed in one batch, its
SERVER span in the next), as batch exporters do.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec

SERVICES = ("shop", "billing")
ROUTES = (
    ("GET", "/orders/{order_id}", "/orders/{}"),
    ("GET", "/products", "/products"),
    ("POST", "/cart/{cart_id}/items", "/cart/{}/items"),
    ("GET", "/users/{user_id}/profile", "/users/{}/profile"),
)
STATEMENTS = (
    "SELECT id, total, status FROM orders WHERE id = %s",
    "SELECT * FROM order_items WHERE order_id = %s",
    "UPDATE carts SET updated_at = now() WHERE id = %s",
    "INSERT INTO cart_items (cart_id, product_id, qty) VALUES (%s, %s, %s)",
    "SELECT id, name, price FROM products ORDER BY name LIMIT 50",
)
START_NS = 1_700_000_000_000_000_000


def _kv(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _span(
    rng: random.Random,
    trace_id: str,
    parent: str,
    name: str,
    kind: int,
    start: int,
    end: int,
    attrs: dict[str, object],
    error: bool = False,
    span_id: str = "",
) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id or f"{rng.getrandbits(64) | 1:016x}",
        "parentSpanId": parent,
        "flags": 1,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(end),
        "attributes": [_kv(k, v) for k, v in attrs.items()],
        "status": {"code": 2} if error else {},
    }
    return span


def _request(rng: random.Random, start: int, spans: int) -> list[dict[str, Any]]:
    """One trace: the SERVER span last (it ends last), its children before it."""
    trace_id = f"{rng.getrandbits(128) | 1:032x}"
    method, route, pattern = rng.choice(ROUTES)
    path = pattern.format(rng.randint(1, 99_999))
    server_id = f"{rng.getrandbits(64) | 1:016x}"
    new_conventions = rng.random() < 0.5
    children: list[dict[str, Any]] = []
    t = start + rng.randint(50_000, 300_000)  # framework work before the first call
    n_children = spans - 1
    i = 0
    while i < n_children:
        roll = rng.random()
        if roll < 0.55:
            # A DB call; a quarter of them run as a concurrent group (asyncio.gather).
            width = min(n_children - i, rng.randint(2, 4)) if rng.random() < 0.25 else 1
            group_end = t
            for _ in range(width):
                duration = rng.randint(200_000, 4_000_000)
                statement = rng.choice(STATEMENTS)
                attrs: dict[str, object] = (
                    {"db.system.name": "postgresql", "db.query.text": statement}
                    if new_conventions
                    else {"db.system": "postgresql", "db.statement": statement}
                )
                attrs |= {"db.namespace": "shop", "server.address": "db", "server.port": 5432}
                name = statement.split()[0] + " shop"
                children.append(_span(rng, trace_id, server_id, name, 3, t, t + duration, attrs))
                group_end = max(group_end, t + duration)
            t = group_end
            i += width
        elif roll < 0.75:
            duration = rng.randint(1_000_000, 20_000_000)
            attrs = {
                "http.request.method": "GET",
                "url.full": f"http://inventory:8080/stock/{rng.randint(1, 500)}",
                "server.address": "inventory",
                "http.response.status_code": 200,
            }
            children.append(_span(rng, trace_id, server_id, "GET", 3, t, t + duration, attrs))
            t += duration
            i += 1
        else:
            duration = rng.randint(20_000, 800_000)
            attrs = {"code.function": rng.choice(("render", "validate", "serialize"))}
            name = str(attrs["code.function"])
            children.append(_span(rng, trace_id, server_id, name, 1, t, t + duration, attrs))
            t += duration
            i += 1
        t += rng.randint(10_000, 200_000)  # own code between calls
    end = t + rng.randint(30_000, 400_000)
    status = 500 if rng.random() < 0.02 else 200
    server_attrs: dict[str, object] = {
        "http.request.method": method,
        "http.route": route,
        "url.path": path,
        "url.scheme": "http",
        "server.address": "shop.internal",
        "http.response.status_code": status,
        "user_agent.original": "wrk/4.2.0",
    }
    error = status >= 500
    name = f"{method} {route}"
    server = _span(rng, trace_id, "", name, 2, start, end, server_attrs, error, server_id)
    return [*children, server]


def _line(service: str, spans: list[dict[str, Any]]) -> bytes:
    resource = {
        "attributes": [
            _kv("service.name", service),
            _kv("telemetry.sdk.language", "python"),
            _kv("telemetry.sdk.name", "opentelemetry"),
            _kv("telemetry.sdk.version", "1.38.0"),
        ]
    }
    scope = {"scope": {"name": "opentelemetry.instrumentation.asgi", "version": "0.59b0"}}
    request = {"resourceSpans": [{"resource": resource, "scopeSpans": [scope | {"spans": spans}]}]}
    return msgspec.json.encode(request) + b"\n"


def write_otlp_jsonl(path: str | Path, *, requests: int, spans_per_request: int, seed: int) -> int:
    """Write ``requests`` traces of ``spans_per_request`` spans each; return the span count.

    Deterministic for a given seed. Lines hold 2-8 requests of one service; about 10% of
    requests have their children on one line and their SERVER span on the next.
    """
    if spans_per_request < 1:
        raise ValueError("spans_per_request must be >= 1")
    rng = random.Random(seed)
    start = START_NS
    written = 0
    deferred: dict[str, list[dict[str, Any]]] = {s: [] for s in SERVICES}
    with open(path, "wb") as out:
        done = 0
        while done < requests:
            service = rng.choice(SERVICES)
            batch = deferred[service]
            deferred[service] = []
            for _ in range(min(rng.randint(2, 8), requests - done)):
                spans = _request(rng, start, spans_per_request)
                start += rng.randint(100_000, 2_000_000)
                done += 1
                if rng.random() < 0.1 and len(spans) > 1:
                    batch.extend(spans[:-1])
                    deferred[service].append(spans[-1])
                else:
                    batch.extend(spans)
            if batch:
                out.write(_line(service, batch))
                written += len(batch)
        for service, rest in deferred.items():
            if rest:
                out.write(_line(service, rest))
                written += len(rest)
    return written
