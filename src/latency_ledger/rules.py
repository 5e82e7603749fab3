"""Classification rules from a user's file (``analyze --rules FILE``), TOML or JSON.

Contract: :func:`load_rules` reads one file and returns its rules as ordinary
:data:`~latency_ledger.plugins.ClassifyRule` callables, in file order; the CLI puts them
before the plugins' and the built-in rules, so the first matching rule of the file
wins. A file that cannot be read or holds a malformed rule is a
:class:`~latency_ledger.errors.ConfigError` whose one line names the file and the rule.
Rules are pure and never raise on odd attribute types.

The format (README, "Your own classification rules"): a list of tables under ``rule``
(TOML ``[[rule]]``; JSON ``{"rule": [{...}]}``). Each says what a span is and when:

- ``category`` (required): ``database``, ``pool`` (connection checkout), ``cache``,
  ``http``, ``rpc``, ``messaging`` or ``network`` (any other outgoing wait);
- ``system`` (optional): the system name findings show, e.g. ``mysql``;
- ``statement`` (optional): the attribute holding the statement or call target
  (else the span name);
- conditions, at least one, all of which must hold: ``span_kind`` (``client``,
  ``producer``, ``internal``... or a list), and shell-style globs, case-insensitive, on
  ``service`` (the reporting service), ``name`` (the span name), ``peer`` (any of
  ``peer.service``, ``server.address``, ``net.peer.name``, ``db.instance``) and
  ``attributes`` (a table of attribute name -> glob; ``*`` means "present").
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from latency_ledger.classify import MAX_TARGET_CHARS
from latency_ledger.errors import ConfigError
from latency_ledger.model import AttributeValue, CallKind, Category, Span, SpanKind
from latency_ledger.plugins import Classification, ClassifyRule

CATEGORIES: Mapping[str, tuple[Category, CallKind]] = {
    "database": (Category.DATABASE, CallKind.QUERY),
    "pool": (Category.DATABASE, CallKind.POOL),
    "cache": (Category.NETWORK, CallKind.CACHE),
    "http": (Category.NETWORK, CallKind.HTTP),
    "rpc": (Category.NETWORK, CallKind.RPC),
    "messaging": (Category.NETWORK, CallKind.MESSAGING),
    "network": (Category.NETWORK, CallKind.OTHER),
}
_KINDS = {kind.name.lower(): kind for kind in SpanKind}
_CONDITIONS = ("span_kind", "service", "name", "peer", "attributes")
_KEYS = frozenset({"category", "system", "statement", *_CONDITIONS})
_PEER_KEYS = ("peer.service", "server.address", "net.peer.name", "db.instance")


def _matches(value: AttributeValue, pattern: str) -> bool:
    if value is None:
        return False
    if pattern == "*":
        return True
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    return fnmatchcase(str(value).lower(), pattern)


@dataclass(frozen=True, slots=True, kw_only=True)
class FileRule:
    """One rule of the file; calling it classifies a span or returns None."""

    category: Category
    kind: CallKind
    system: str
    statement: str
    span_kinds: frozenset[SpanKind] | None
    service: str | None
    name: str | None
    peer: str | None
    attributes: tuple[tuple[str, str], ...]

    def __call__(self, span: Span) -> Classification | None:
        if self.span_kinds is not None and span.kind not in self.span_kinds:
            return None
        if self.service is not None and not fnmatchcase(span.service.lower(), self.service):
            return None
        if self.name is not None and not fnmatchcase(span.name.lower(), self.name):
            return None
        attrs = span.attributes
        if self.peer is not None and not any(
            _matches(attrs.get(key), self.peer) for key in _PEER_KEYS
        ):
            return None
        for key, pattern in self.attributes:
            if not _matches(attrs.get(key), pattern):
                return None
        target = attrs.get(self.statement) if self.statement else None
        text = target if isinstance(target, str) and target else span.name
        return Classification(
            category=self.category,
            kind=self.kind,
            system=self.system,
            target=text[:MAX_TARGET_CHARS],
        )


def _text(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string, not {type(value).__name__}")
    return value


def _span_kinds(value: object, where: str) -> frozenset[SpanKind] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{where}: span_kind must be a kind or a list of kinds")
    kinds = set()
    for name in names:
        kind = _KINDS.get(name.lower()) if isinstance(name, str) else None
        if kind is None:
            raise ConfigError(
                f"{where}: unknown span_kind {name!r} (one of: {', '.join(sorted(_KINDS))})"
            )
        kinds.add(kind)
    return frozenset(kinds)


def _rule(raw: object, where: str) -> FileRule:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a rule must be a table of keys")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (keys: {', '.join(sorted(_KEYS))})")
    category = _text(raw, "category", where)
    if category is None or category.lower() not in CATEGORIES:
        raise ConfigError(
            f"{where}: category must be one of: {', '.join(CATEGORIES)} (got {category!r})"
        )
    if not any(raw.get(key) is not None for key in _CONDITIONS):
        raise ConfigError(f"{where}: no condition: give at least one of {', '.join(_CONDITIONS)}")
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()
    ):
        raise ConfigError(f'{where}: attributes must be a table of name = "glob"')
    patterns = {key: _text(raw, key, where) for key in ("service", "name", "peer")}
    group, kind = CATEGORIES[category.lower()]
    return FileRule(
        category=group,
        kind=kind,
        system=(_text(raw, "system", where) or "").lower(),
        statement=_text(raw, "statement", where) or "",
        span_kinds=_span_kinds(raw.get("span_kind"), where),
        service=None if patterns["service"] is None else patterns["service"].lower(),
        name=None if patterns["name"] is None else patterns["name"].lower(),
        peer=None if patterns["peer"] is None else patterns["peer"].lower(),
        attributes=tuple((k, v.lower()) for k, v in attributes.items()),
    )


def _parse(text: str, path: Path) -> Any:
    # TOML's [[rule]] starts with "[" too: JSON is an object, or a file named *.json.
    if text.lstrip().startswith("{") or path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def load_rules(path: Path) -> tuple[ClassifyRule, ...]:
    """The rules in a TOML or JSON rules file, in file order."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise ConfigError(f"{path}: cannot read the rules file: {reason}") from exc
    doc = _parse(text, path)
    raw_rules = doc.get("rule", doc.get("rules")) if isinstance(doc, dict) else doc
    if not isinstance(raw_rules, list) or not raw_rules:
        raise ConfigError(f'{path}: no rules: expected [[rule]] tables (TOML) or a "rule" list')
    return tuple(_rule(raw, f"{path}: rule {i}") for i, raw in enumerate(raw_rules, start=1))
