"""The optional ``LATENCY_LEDGER`` settings dict -> the collector's configuration.

Contract: :func:`read_settings` reads ``settings.LATENCY_LEDGER`` (absent: every default),
whose keys are :class:`~latency_ledger.collect.CollectConfig` field names
(``"keep_spans": "all"``, ``"output_dir": BASE_DIR / "ledger-traces"``...) plus
``"enabled"`` (False: the middleware removes itself, Django's ``MiddlewareNotUsed``) and
``"collector"`` (an already-built ``Collector`` to use, e.g. with its own exporter).
The ``LATENCY_LEDGER_<FIELD>`` environment variables the ASGI side reads apply on top,
so a deployment can change sampling without a code change. A wrong key or value is
``ImproperlyConfigured`` naming it, raised when Django loads the middleware (start-up),
never per request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from latency_ledger.collect import CollectConfig, config_from_env
from latency_ledger.errors import ConfigError

SETTING = "LATENCY_LEDGER"
_EXTRA_KEYS = frozenset({"enabled", "collector"})


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerSettings:
    enabled: bool
    config: CollectConfig
    collector: Any = None  # a Collector given in settings, else the process's default
    service_name: str | None = None  # fallback when neither settings nor env name one


def read_settings(environ: Mapping[str, str] | None = None) -> LedgerSettings:
    raw = getattr(settings, SETTING, None)
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ImproperlyConfigured(f"{SETTING} must be a dict, got {type(raw).__name__}")
    fields = {field.name for field in dataclasses.fields(CollectConfig)}
    unknown = sorted(str(key) for key in raw if key not in fields and key not in _EXTRA_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"{SETTING}: unknown key(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(fields | _EXTRA_KEYS))}"
        )
    values = {key: value for key, value in raw.items() if key in fields}
    if "output_dir" in values:
        values["output_dir"] = Path(values["output_dir"])
    try:
        config = config_from_env(CollectConfig(**values), environ)
    except (ConfigError, TypeError) as exc:
        raise ImproperlyConfigured(f"{SETTING}: {exc}") from exc
    module = getattr(settings, "SETTINGS_MODULE", None)
    return LedgerSettings(
        enabled=bool(raw.get("enabled", True)),
        config=config,
        collector=raw.get("collector"),
        service_name=module.split(".", 1)[0] if isinstance(module, str) and module else None,
    )
