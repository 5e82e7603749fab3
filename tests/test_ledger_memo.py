"""``book_trace`` with a classification memo books exactly what it books without one.

Randomized hand-built traces (seeded): overlapping and inverted spans, orphans,
duplicate ids, nested SERVER spans of the same and of other services, streams, wait
spans with tails, and attribute dicts shared between spans of different kinds, names
and services (what makes the memo hit), with the built-in rules alone and with the
plugins' rules before them. The memo is kept across all traces, as the fast path does.
"""

from __future__ import annotations

import random

import pytest

from latency_ledger.analyze import default_rules
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.ledger import ClassifyMemo, book_trace
from latency_ledger.model import Attributes, Span, SpanKind, Trace

POOL: tuple[Attributes, ...] = (
    {},
    {"db.system": "postgresql", "db.statement": "SELECT * FROM t WHERE id = 1"},
    {"db.system.name": "redis", "db.query.text": "GET k"},
    {"db.system": "postgresql"},  # a "connect" span when so named
    {"http.request.method": "GET", "url.full": "http://api:8080/x/12", "server.port": 8080},
    {"rpc.system": "grpc", "rpc.service": "Shop", "rpc.method": "Buy"},
    {"asgi.event.type": "http.response.body"},
    {"peer.service": "mysql"},
    {"db.system": "postgresql", "db.statement": "SELECT 1", "ledger.queueing_ns": 300},
    {"http.method": "POST", "http.route": "/orders/{id}", "http.target": "/orders/3"},
    {"http.request.method": "GET", "http.route": "/ws", "url.scheme": "ws"},
    {"ledger.cpu_ns": 900, "http.route": "/a", "http.request.method": "GET"},
)
NAMES = ("connect", "SELECT", "GET", "work", "GET /orders/{id}")
SERVICES = ("shop", "mysql", "billing")
KINDS = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.UNSPECIFIED)


def random_trace(rng: random.Random, index: int) -> Trace:
    tid = f"{index + 1:032x}"
    count = rng.randint(1, 25)
    ids = [f"{rng.randint(1, 40):016x}" for _ in range(count)]  # duplicates happen
    spans = []
    for i, sid in enumerate(ids):
        roll = rng.random()
        if i == 0 or roll < 0.05:
            parent = ""
        elif roll < 0.1:
            parent = f"{rng.randint(41, 60):016x}"  # missing parent: an orphan
        else:
            parent = rng.choice(ids[:i] if rng.random() < 0.9 else ids)  # cycles too
        start = rng.randint(0, 1000)
        end = start + rng.randint(-50, 900)  # inverted spans too
        spans.append(
            Span(
                trace_id=tid,
                span_id=sid,
                parent_span_id=parent,
                name=rng.choice(NAMES),
                kind=SpanKind.SERVER if i == 0 and rng.random() < 0.8 else rng.choice(KINDS),
                start_ns=start,
                end_ns=end,
                is_error=rng.random() < 0.1,
                attributes=rng.choice(POOL),  # the same dict objects over and over
                service=rng.choice(SERVICES),
            )
        )
    return Trace(trace_id=tid, spans=tuple(spans))


@pytest.mark.parametrize("plugins", [False, True])
def test_the_memo_changes_nothing(plugins: bool) -> None:
    rng = random.Random(20261207)
    rules = default_rules() if plugins else DEFAULT_RULES
    memo: ClassifyMemo = {}
    requests = calls = 0
    for index in range(3000):
        trace = random_trace(rng, index)
        expected = book_trace(trace, rules=rules)
        assert book_trace(trace, rules=rules, memo=memo) == expected
        requests += len(expected.requests)
        calls += sum(len(r.calls) for r in expected.requests)
    # the traces did exercise booking, and the memo was used
    assert requests > 3000
    assert calls > 3000
    assert 0 < len(memo) < 3000
