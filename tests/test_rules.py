"""User classification rules from a TOML or JSON file (``analyze --rules``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from latency_ledger.classify import DEFAULT_RULES, classify_span
from latency_ledger.errors import ConfigError
from latency_ledger.model import AttributeValue, CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification
from latency_ledger.rules import load_rules

RULES = """
# The in-house ORM's spans carry no db.* attribute.
[[rule]]
category = "database"
system = "MySQL"
statement = "orm.sql"
span_kind = "client"
[rule.attributes]
component = "acme-orm"

[[rule]]
category = "cache"
system = "tair"
peer = "tair-*"

[[rule]]
category = "rpc"
system = "thrift"
service = "legacy-*"
name = "call *"
span_kind = ["client", "producer"]
"""


def span(
    attrs: dict[str, AttributeValue],
    *,
    kind: SpanKind = SpanKind.CLIENT,
    name: str = "op",
    service: str = "shop",
) -> Span:
    return Span(
        trace_id="t",
        span_id="s",
        parent_span_id="p",
        name=name,
        kind=kind,
        start_ns=0,
        end_ns=1,
        is_error=False,
        attributes=attrs,
        service=service,
    )


@pytest.fixture
def rules(tmp_path: Path) -> tuple[object, ...]:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return load_rules(path)


def _classify(rules: tuple[object, ...], s: Span) -> Classification | None:
    return classify_span(s, (*rules, *DEFAULT_RULES))  # type: ignore[arg-type]


def test_attribute_rule_with_statement(rules: tuple[object, ...]) -> None:
    found = _classify(rules, span({"component": "ACME-ORM", "orm.sql": "SELECT 1"}))
    assert found == Classification(
        category=Category.DATABASE, kind=CallKind.QUERY, system="mysql", target="SELECT 1"
    )
    # The same attributes on an INTERNAL span: the rule's span_kind says no.
    assert _classify(rules, span({"component": "acme-orm"}, kind=SpanKind.INTERNAL)) is None


def test_peer_rule_wins_over_the_built_in_http_rule(rules: tuple[object, ...]) -> None:
    attrs: dict[str, AttributeValue] = {"http.request.method": "GET", "server.address": "tair-7"}
    found = _classify(rules, span(attrs, name="GET"))
    assert found is not None
    assert (found.category, found.kind, found.system, found.target) == (
        Category.NETWORK,
        CallKind.CACHE,
        "tair",
        "GET",
    )


def test_every_condition_must_hold(rules: tuple[object, ...]) -> None:
    hit = span({}, name="call getUser", service="legacy-users", kind=SpanKind.PRODUCER)
    found = _classify(rules, hit)
    assert found is not None
    assert (found.kind, found.system) == (CallKind.RPC, "thrift")
    miss = span({}, name="call getUser", service="users")
    found = _classify(rules, miss)
    assert found is not None
    assert found.kind is CallKind.OTHER  # the built-in rule's answer


def test_json_file_gives_the_same_rules(tmp_path: Path, rules: tuple[object, ...]) -> None:
    doc = {"rule": [{"category": "cache", "system": "tair", "peer": "tair-*"}]}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(doc))
    [rule] = load_rules(path)
    assert rule == rules[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\ncategory = "db"\nname = "x"\n', "rule 1: category must be one of: database"),
        ('[[rule]]\ncategory = "database"\n', "rule 1: no condition"),
        ('[[rule]]\ncategory = "cache"\nname = "x"\ncolour = 1\n', "unknown key 'colour'"),
        ('[[rule]]\ncategory = "cache"\nspan_kind = "client-ish"\n', "unknown span_kind"),
        ('[[rule]]\ncategory = "cache"\nname = 5\n', "name must be a string"),
        ('[[rule]]\ncategory = "cache"\nattributes = {a = 1}\n', "attributes must be"),
        ("rule = 1\n", "no rules"),
        ("[[rule]\n", "invalid TOML"),
        ('{"rule": [}', ":1: invalid JSON"),
    ],
)
def test_bad_files_name_file_and_rule(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "r.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the rules file"):
        load_rules(tmp_path / "none.toml")
