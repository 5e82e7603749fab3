"""Sanitizing: literals out, structure in; never raises on hostile input."""

from __future__ import annotations

import random

import pytest
from latency_ledger_plugin_base import sanitize_attribute, sanitize_sql, strip_query_values


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("SELECT * FROM users WHERE email = 'a@b.c'", "SELECT * FROM users WHERE email = ?"),
        ("SELECT 'O''Brien', 42, 2.5, 1e-3, .5, 0x1F", "SELECT ?, ?, ?, ?, ?, ?"),
        ('SELECT t1.c2 FROM t1 JOIN "Order 66" o2', 'SELECT t1.c2 FROM t1 JOIN "Order 66" o2'),
        (
            "WHERE a = $1 AND b = %s AND c = %(c)s AND d = :d AND e = ?",
            "WHERE a = $1 AND b = %s AND c = %(c)s AND d = :d AND e = ?",
        ),
        ("SELECT $$secret 1$$, $fn$body 2$fn$", "SELECT ?, ?"),
        ("SELECT E'it\\'s secret'", "SELECT ?"),
        ("SELECT 1 /* token=abc */ -- pw=xyz\nFROM t", "SELECT ? FROM t"),
        ("SELECT x::int, j->>'key' FROM t", "SELECT x::int, j->>? FROM t"),
        ("INSERT INTO t VALUES ('unterminated secret", "INSERT INTO t VALUES (?"),
        ("SELECT 1 /* unterminated secret", "SELECT ?"),
    ],
)
def test_sanitize_sql(statement: str, expected: str) -> None:
    assert sanitize_sql(statement) == expected


def test_orm_statement_is_unchanged() -> None:
    orm = "SELECT products.id, products.name FROM products WHERE products.id = ? LIMIT ? OFFSET ?"
    assert sanitize_sql(orm) == orm


# Generated inputs from a fixed seed (not hypothesis: its .hypothesis/ directory in the
# shared tree trips the root's norecursedirs during collection).
_HOSTILE = "abc'\"$/*-\\:?%()\n ;0123456789eE.x"
_RNG = random.Random(20261126)
_TEXTS = ["".join(_RNG.choices(_HOSTILE, k=_RNG.randrange(60))) for _ in range(300)]
_SECRETS = [
    "".join(_RNG.choices("abcdefghijklmnopqrstuvwxyz0123456789 '\\", k=12)) for _ in range(50)
]


def test_sanitize_sql_never_raises() -> None:
    for statement in _TEXTS:
        assert isinstance(sanitize_sql(statement), str)


@pytest.mark.parametrize("quoting", ["'{}'", "E'{}'", "$${}$$", "$q${}$q$"])
def test_no_literal_survives(quoting: str) -> None:
    for secret in _SECRETS:
        _check_literal_hidden(secret, quoting)


def _check_literal_hidden(secret: str, quoting: str) -> None:
    body = secret.replace("'", "''") if quoting == "'{}'" else secret.replace("$", "")
    if quoting == "E'{}'":
        body = secret.replace("\\", "\\\\").replace("'", "\\'")
    statement = "SELECT * FROM t WHERE c = " + quoting.format(body) + " AND d = 1"
    assert sanitize_sql(statement) == "SELECT * FROM t WHERE c = ? AND d = ?"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://u:pw@api.test:8443/v1/x?token=abc&q=1&flag#frag",
            "https://api.test:8443/v1/x?token=&q=&flag=",
        ),
        ("http://127.0.0.1/path", "http://127.0.0.1/path"),
        ("http://[::1/x?secret=1", "http://[::1/x"),
    ],
)
def test_strip_query_values(url: str, expected: str) -> None:
    assert strip_query_values(url) == expected


def test_strip_query_values_never_raises() -> None:
    for text in _TEXTS:
        url = "http://" + text
        assert "#" not in strip_query_values(url)


def test_sanitize_attribute_by_key() -> None:
    assert sanitize_attribute("db.statement", "SELECT 'x'") == "SELECT ?"
    assert sanitize_attribute("db.query.text", "SELECT 'x'") == "SELECT ?"
    assert sanitize_attribute("url.full", "http://h/?a=1") == "http://h/?a="
    assert sanitize_attribute("http.url", "http://h/?a=1") == "http://h/?a="
    assert sanitize_attribute("http.route", "/a/{b}?c=1") == "/a/{b}?c=1"
    assert sanitize_attribute("db.statement", 7) == 7
