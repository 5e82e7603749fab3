"""Loading the plugins and the classification rules into a collector.

Contract: :func:`load_rules_and_plugins` runs once, when a
:class:`~latency_ledger.collect.collector.Collector` is made: it loads the plugins
(entry points, ``latency_ledger.plugins``), sets the collector's ``rules`` (the plugins'
classification rules before the defaults) and the classifier light spans are booked
with, and, when asked to instrument, switches on each plugin not disabled by
configuration with its own tracer provider (``Collector.provider_for``), listing those
that took in ``Collector.plugins``. A broken plugin never stops the app: it is logged
and counted in ``stats.plugin_errors``. The collector is named for typing only.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from latency_ledger.collect.light_booking import classifier

if TYPE_CHECKING:
    from latency_ledger.collect.collector import Collector

_log = logging.getLogger("latency_ledger.collect")


def load_rules_and_plugins(collector: Collector, instrument: bool) -> None:
    from latency_ledger.classify import DEFAULT_RULES
    from latency_ledger.plugins import load_plugins, plugin_classify_rules

    try:
        plugins = load_plugins()
    except Exception as exc:  # a broken plugin must not stop the app
        _log.warning("latency-ledger: loading plugins failed: %s", exc)
        collector.stats.plugin_errors += 1
        plugins = ()
    collector.rules = (*plugin_classify_rules(plugins), *DEFAULT_RULES)
    collector._classify = classifier(collector.rules)
    if not instrument:
        return
    for plugin in plugins:
        if not callable(getattr(plugin, "instrument", None)):
            continue
        if plugin.name in collector.disabled_plugins:
            _log.info("latency-ledger: plugin %s disabled by configuration", plugin.name)
            continue
        try:
            if plugin.instrument(collector.provider_for(plugin.name)):
                collector.plugins.append(plugin)
                collector.stats.plugins_instrumented += 1
        except Exception as exc:
            _log.warning("latency-ledger: plugin %s failed: %r", plugin.name, exc)
            collector.stats.plugin_errors += 1
