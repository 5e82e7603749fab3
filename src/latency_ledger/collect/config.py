"""Collector settings: one frozen record, every field also settable from the environment.

Contract: :func:`config_from_env` returns a :class:`CollectConfig` whose fields come from
``LATENCY_LEDGER_<FIELD>`` variables (``LATENCY_LEDGER_KEEP_SPANS=all``...) where set, else
from ``base`` (defaults). A malformed value is a :class:`ConfigError` naming the variable:
configuration mistakes surface at start-up, never per request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from latency_ledger.errors import ConfigError

ENV_PREFIX = "LATENCY_LEDGER_"
KEEP_SPANS_CHOICES = ("all", "sampled", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectConfig:
    """How the in-app collector records and exports.

    - ``output_dir``: where OTLP JSON lines go (one file per process, rotated by size),
      unless ``OTEL_EXPORTER_OTLP_ENDPOINT``/``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set.
    - ``service_name``: else ``OTEL_SERVICE_NAME``, else the app's title, else ``"app"``.
    - ``keep_spans``: which child-span trees are exported. ``"all"``; ``"sampled"``: failed
      requests (5xx or exception), the slowest so far per endpoint in each
      ``slow_interval_s`` window (when ``slow_per_endpoint``) and a ``sample_rate`` random
      share; ``"none"``: SERVER spans only. Every request's SERVER span, with its booked
      ``ledger.*`` totals, is always exported.
    - ``profile_rate``: random share of requests profiled with pyinstrument;
      ``profile_slowest``: also the first request per endpoint in each
      ``profile_interval_s`` window (the slowest cannot be known before it runs).
    - ``max_queue_spans``: bounded export buffer; overflow is dropped and counted.
    - ``max_file_bytes``: rotate the output file past this size.
    - ``max_total_bytes`` / ``max_files``: the trace files in ``output_dir`` (every
      process's) never hold more; the oldest are deleted first.
    - ``record_raw_path``: ``url.path`` is the raw request path instead of the route
      template (a path can hold a reset token or an e-mail; off by default).
    - ``receive_send_spans``: record ASGI receive/send spans (costly; off by default).
    - ``set_global_provider``: when the app has no SDK TracerProvider, also install ours
      as the global one so the app's own ``trace.get_tracer`` spans are recorded.
    - ``export_interval_s``: how often the background thread writes buffered spans.
    - ``disabled_plugins``: plugin names (``sqlalchemy``, ``redis``...) never switched on,
      as ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` does for OpenTelemetry (whose names
      are honoured too, see :func:`disabled_plugins`); their libraries run untraced.
    """

    output_dir: Path = Path("ledger-traces")
    service_name: str | None = None
    keep_spans: str = "sampled"
    sample_rate: float = 0.01
    slow_per_endpoint: bool = True
    slow_interval_s: float = 60.0
    profile_rate: float = 0.001
    profile_slowest: bool = True
    profile_interval_s: float = 60.0
    max_queue_spans: int = 20_000
    max_file_bytes: int = 64 * 2**20
    max_total_bytes: int = 2**30
    max_files: int = 1000
    record_raw_path: bool = False
    receive_send_spans: bool = False
    set_global_provider: bool = True
    export_interval_s: float = 1.0
    disabled_plugins: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.keep_spans not in KEEP_SPANS_CHOICES:
            raise ConfigError(
                f"keep_spans={self.keep_spans!r}: expected one of {', '.join(KEEP_SPANS_CHOICES)}"
            )
        for name in ("sample_rate", "profile_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}={value}: expected a share between 0 and 1")
        for name in ("max_queue_spans", "max_file_bytes", "max_total_bytes", "max_files"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive number")
        for name in ("slow_interval_s", "profile_interval_s", "export_interval_s"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}: expected a positive number of seconds")


def _parse(name: str, raw: str, kind: type) -> object:
    var = ENV_PREFIX + name.upper()
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        if kind is tuple:
            return names_list(raw)
    except ValueError as exc:
        raise ConfigError(f"{var}={raw!r}: expected a {kind.__name__}") from exc
    return raw


_FIELD_TYPES: dict[str, type] = {
    "output_dir": Path,
    "service_name": str,
    "keep_spans": str,
    "sample_rate": float,
    "slow_per_endpoint": bool,
    "slow_interval_s": float,
    "profile_rate": float,
    "profile_slowest": bool,
    "profile_interval_s": float,
    "max_queue_spans": int,
    "max_file_bytes": int,
    "max_total_bytes": int,
    "max_files": int,
    "record_raw_path": bool,
    "receive_send_spans": bool,
    "set_global_provider": bool,
    "export_interval_s": float,
    "disabled_plugins": tuple,
}


def names_list(raw: str) -> tuple[str, ...]:
    """``"sqlalchemy, Redis,"`` -> ``("sqlalchemy", "redis")``."""
    return tuple(name.strip().lower() for name in raw.split(",") if name.strip())


def disabled_plugins(config: CollectConfig, environ: Mapping[str, str]) -> frozenset[str]:
    """The plugins not to switch on: ``config.disabled_plugins`` and the names in
    ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (the same names: our plugins are named as
    the OpenTelemetry instrumentations they stand for)."""
    otel = environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return frozenset((*config.disabled_plugins, *names_list(otel)))


def config_from_env(
    base: CollectConfig | None = None, environ: Mapping[str, str] | None = None
) -> CollectConfig:
    """``base`` (or the defaults) with every ``LATENCY_LEDGER_<FIELD>`` variable applied."""
    env = os.environ if environ is None else environ
    changes: dict[str, object] = {}
    for field in dataclasses.fields(CollectConfig):
        raw = env.get(ENV_PREFIX + field.name.upper())
        if raw is not None and raw != "":
            changes[field.name] = _parse(field.name, raw, _FIELD_TYPES[field.name])
    config = base if base is not None else CollectConfig()
    return dataclasses.replace(config, **changes) if changes else config  # type: ignore[arg-type]
