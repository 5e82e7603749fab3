"""What a test checks to prove that no instrumentation outlived it.

Contract: :func:`active_instrumentors` names every OpenTelemetry instrumentor that is
currently instrumented (its per-class singleton flag), plus the SQLAlchemy engine
listeners this project's plugin adds; an empty tuple means nothing leaked.
"""

from __future__ import annotations

import sys

# The module starts with a file-level "type: ignore", so mypy sees none of its names.
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    sub: type
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


def active_instrumentors() -> tuple[str, ...]:
    """Names of instrumentors still switched on, and of leftover engine listeners."""
    active = []
    for cls in _subclasses(BaseInstrumentor):
        instance = getattr(cls, "_instance", None)  # BaseInstrumentor's per-class singleton
        if instance is not None and instance.is_instrumented_by_opentelemetry:
            active.append(cls.__name__)
    engine_tracer = sys.modules.get("opentelemetry.instrumentation.sqlalchemy.engine")
    if engine_tracer is not None and engine_tracer.EngineTracer._remove_event_listener_params:
        active.append("EngineTracer listeners")
    return tuple(sorted(active))
