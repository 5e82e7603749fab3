"""``book_trace`` with a classification memo books exactly what it books without one.

Randomized hand-built traces (seeded): overlapping and inverted spans, orphans,
duplicate ids, nested SERVER spans of the same and of other services, streams, wait
spans with tails, and attribute dicts shared between spans of different kinds, names
and services (what makes the memo hit), with the built-in rules alone and with the
plugins' rules before them. The memo is kept across all traces, as the fast path does.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from latency_ledger.analyze import default_rules
from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.findings.repeats import call_rows
from latency_ledger.ledger import ClassifyMemo, _book_flat, book_trace, book_trace_rows
from latency_ledger.model import Attributes, Span, SpanKind, Trace
from latency_ledger.plugins import Classification, ClassifyRule, is_memoizable, memoizable_rule

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
    # request names: catch-all routes split by what else the span says (never remembered
    # by route alone: these two share method and route), a regex route, a lowercase method
    {"http.request.method": "GET", "http.route": "/f/{p:path}", "url.path": "/f/a.css"},
    {"http.request.method": "GET", "http.route": "/f/{p:path}", "code.function": "page"},
    {"http.request.method": "GET", "http.route": "^/items/(?P<id>[0-9]+)$"},
    {"http.method": "get", "http.route": "/orders/{id}", "http.request.method": ""},
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


def unmarked(rules: tuple[ClassifyRule, ...]) -> tuple[ClassifyRule, ...]:
    """The same rules, the plugins' ones no longer marked memoizable (asked per span)."""

    def wrap(rule: ClassifyRule) -> ClassifyRule:
        def asked_each_time(span: Span) -> Classification | None:
            return rule(span)

        return asked_each_time

    return tuple(rule if rule in DEFAULT_RULES else wrap(rule) for rule in rules)


RULE_SETS = ["built-in", "plugins", "plugins unmarked"]


def rule_set(name: str) -> tuple[ClassifyRule, ...]:
    rules = {"built-in": DEFAULT_RULES, "plugins": default_rules()}.get(name)
    if rules is None:
        rules = unmarked(default_rules())
        assert len(rules) > 1
        assert not any(is_memoizable(rule) for rule in rules)
    return tuple(rules)


@pytest.mark.parametrize("rules_name", RULE_SETS)
def test_the_memo_changes_nothing(rules_name: str) -> None:
    rng = random.Random(20261207)
    rules = rule_set(rules_name)
    memo = ClassifyMemo()
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
    # request names were remembered, never for a catch-all route
    assert memo.names
    assert all(route != "/f/{p:path}" for _, _, route in memo.names)


FLAT_POOL: tuple[Attributes, ...] = (
    *POOL,
    {"db.system": "postgresql", "db.statement": "SELECT 2", "ledger.unattributed_ns": 40},
    {"db.system": "postgresql", "db.statement": "SELECT 3", "ledger.queueing_max_ns": 500},
    {"ledger.spans_kept": "false", "ledger.database_ns": 300, "http.route": "/t"},
    {"ledger.cpu_ns": 700, "ledger.queueing_ns": 50, "http.route": "/c"},
)


def flat_trace(rng: random.Random, index: int) -> Trace:
    """A request span and its direct children (the shape ``_book_flat`` takes), now and
    then spoiled: a SERVER child, a duplicate id, a second root, a remote parent."""
    tid = f"{index + 1:032x}"
    root_id = f"{rng.randint(1, 1 << 60):016x}"
    spoil = rng.random()
    start = rng.randint(0, 1000)
    root = Span(
        trace_id=tid,
        span_id=root_id,
        parent_span_id=f"{7:016x}" if spoil < 0.1 else "",  # a parent in another file
        name=rng.choice(NAMES),
        kind=SpanKind.SERVER if spoil > 0.05 else SpanKind.INTERNAL,
        start_ns=start,
        end_ns=start + rng.randint(-20, 2000),
        is_error=rng.random() < 0.1,
        attributes=rng.choice(FLAT_POOL),
        service=rng.choice(SERVICES),
    )
    spans = [root]
    for i in range(rng.randint(0, 24)):
        kid_start = start + rng.randint(-100, 2100)
        spans.append(
            Span(
                trace_id=tid,
                span_id=root_id if spoil > 0.97 and i == 0 else f"{i + 1:016x}",
                parent_span_id="" if spoil < 0.15 and i == 1 else root_id,
                name=rng.choice(NAMES),
                kind=rng.choice(KINDS[1:] if spoil < 0.9 else KINDS),
                start_ns=kid_start,
                end_ns=kid_start + rng.randint(-50, 900),
                is_error=rng.random() < 0.1,
                attributes=rng.choice(FLAT_POOL),
                service=rng.choice(SERVICES),
            )
        )
    rng.shuffle(spans)
    return Trace(trace_id=tid, spans=tuple(spans))


@pytest.mark.parametrize("rules_name", RULE_SETS)
def test_the_flat_sweep_books_what_book_trace_books(rules_name: str) -> None:
    """The one-level sweep (taken with a memo) against ``book_trace`` without a memo."""
    rng = random.Random(7)
    rules = rule_set(rules_name)
    memo = ClassifyMemo()
    swept = calls = 0
    for index in range(3000):
        trace = flat_trace(rng, index)
        expected = book_trace(trace, rules=rules)
        swept += _book_flat(trace.spans, rules, memo) is not None
        assert book_trace(trace, rules=rules, memo=memo) == expected
        calls += sum(len(r.calls) for r in expected.requests)
        # the same booking with the calls handed over as rows (what analyze takes)
        booked, rows = book_trace_rows(trace, rules=rules, memo=memo)
        if rows is None:
            assert booked == expected
        else:
            (request,) = booked.requests
            assert request.calls == ()
            assert rows == call_rows(expected.requests[0].calls)
            assert replace(request, calls=expected.requests[0].calls) == expected.requests[0]
    # most traces took the sweep, some did not (spoiled), and they had waits to book
    assert 1500 < swept < 3000
    assert calls > 10_000


def test_a_memoizable_rule_is_asked_once_per_distinct_span_class() -> None:
    """A marked rule is asked once per (attributes, kind, name, service); an unmarked one
    for every span; the memo forgets its answers when it is given other rules."""
    asked: list[str] = []

    def pool(span: Span) -> Classification | None:
        asked.append(span.span_id)
        return None

    marked = memoizable_rule(pool)
    assert marked is pool
    assert is_memoizable(pool)
    rng = random.Random(3)
    traces = [flat_trace(rng, index) for index in range(200)]
    memo = ClassifyMemo()
    for trace in traces:
        book_trace(trace, rules=(marked, *DEFAULT_RULES), memo=memo)
    classes = {(id(s.attributes), s.kind, s.name, s.service) for t in traces for s in t.spans}
    assert 0 < len(asked) <= len(classes)
    asked.clear()
    for trace in traces:  # other rules: asked again, this time for every span it sees
        book_trace(trace, rules=(unmarked((pool,))[0], *DEFAULT_RULES), memo=memo)
    assert len(asked) > len(classes)
