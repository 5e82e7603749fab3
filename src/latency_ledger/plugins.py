"""The plugin contract and entry-point loading.

A plugin is any object published under the ``latency_ledger.plugins`` entry-point group
(built-in ones register exactly like a third party's, so the core never names one).
It has a ``name`` and at least one of:

- ``classify_rules() -> Sequence[ClassifyRule]``: offline, extra rules deciding which spans
  are database or network waits (e.g. an in-house RPC client). They run before the
  built-in rules in ``classify.py``; the first rule that returns a classification wins.
  A rule marked :func:`memoizable_rule` promises its answer depends on the span's
  attributes, kind, name and service alone; the analyzer then asks it once per distinct
  set of those instead of once per span.
- ``instrument(tracer_provider) -> bool`` and ``uninstrument() -> None``: in the app,
  switch on the library's OpenTelemetry instrumentation. ``instrument`` returns False,
  and does nothing, when the library is not installed.

Plugins are validated when loaded (as pluggy validates at registration): a plugin that
does not meet the contract is a :class:`PluginError` naming its entry point.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Protocol, TypeVar, runtime_checkable

from latency_ledger.errors import PluginError
from latency_ledger.model import CallKind, Category, Span

ENTRY_POINT_GROUP = "latency_ledger.plugins"


@dataclass(frozen=True, slots=True, kw_only=True)
class Classification:
    """What a wait span is: its ledger category and the call it stands for."""

    category: Category  # DATABASE or NETWORK
    kind: CallKind
    system: str
    target: str  # statement text or "METHOD host/route"


ClassifyRule = Callable[[Span], Classification | None]
_Rule = TypeVar("_Rule", bound=ClassifyRule)
_MEMOIZABLE = "latency_ledger_memoizable"


def memoizable_rule(rule: _Rule) -> _Rule:
    """Mark ``rule`` as answering from the span's attributes, kind, name and service
    alone (never its ids, times, status or resource): the analyzer may then remember
    its answer per distinct set of those (``ledger.ClassifyMemo``) instead of asking it
    for every span. A function, or any object that takes attributes."""
    setattr(rule, _MEMOIZABLE, True)
    return rule


def is_memoizable(rule: ClassifyRule) -> bool:
    """Whether ``rule`` was marked with :func:`memoizable_rule`."""
    return getattr(rule, _MEMOIZABLE, False) is True


@runtime_checkable
class Plugin(Protocol):
    name: str


def _validate(plugin: Any, where: str) -> Any:
    name = getattr(plugin, "name", None)
    if not isinstance(name, str) or not name:
        raise PluginError(f"plugin {where}: has no 'name' string")
    has_rules = callable(getattr(plugin, "classify_rules", None))
    has_instrument = callable(getattr(plugin, "instrument", None))
    if not (has_rules or has_instrument):
        raise PluginError(f"plugin {where}: defines neither classify_rules() nor instrument()")
    if has_instrument and not callable(getattr(plugin, "uninstrument", None)):
        raise PluginError(f"plugin {where}: has instrument() but no uninstrument()")
    return plugin


def load_plugins(eps: Sequence[EntryPoint] | None = None) -> tuple[Any, ...]:
    """Load and validate every plugin registered under the entry-point group."""
    found = list(entry_points(group=ENTRY_POINT_GROUP)) if eps is None else list(eps)
    plugins = []
    for ep in sorted(found, key=lambda e: e.name):
        where = f"{ep.name} ({ep.value})"
        try:
            obj = ep.load()
        except Exception as exc:  # a third party's import error, translated once here
            raise PluginError(f"plugin {where}: failed to load: {exc}") from exc
        plugins.append(_validate(obj, where))
    return tuple(plugins)


def plugin_classify_rules(plugins: Sequence[Any]) -> tuple[ClassifyRule, ...]:
    """The classification rules the loaded plugins add, in plugin-name order."""
    rules: list[ClassifyRule] = []
    for plugin in plugins:
        get = getattr(plugin, "classify_rules", None)
        if callable(get):
            rules.extend(get())
    return tuple(rules)
