"""Failsafe plugin objects around OpenTelemetry instrumentors.

Contract (``latency_ledger.plugins``): a plugin has ``name``, ``instrument(tracer_provider)
-> bool`` and ``uninstrument()``. Here both never raise into the app: a failure is logged
once per plugin and operation, counted in ``errors``, and ``instrument`` returns False.
``instrument`` returns False and does nothing when the library cannot be imported.

A library outside the instrumentation's declared version range is never silently
skipped: by default the plugin refuses with a warning naming both versions and
counts an error; a plugin verified on newer releases (``beyond_declared_range=True``)
instruments anyway with ``skip_dep_check=True`` and warns that it does.

The instrumentor is handed a :class:`.SanitizingTracerProvider`, so statements and
URLs are sanitized whatever the instrumentation records.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from latency_ledger_plugin_base.tracing import SanitizingTracerProvider

logger = logging.getLogger("latency_ledger.plugins")


def library_available(module: str) -> bool:
    """True when ``module`` imports (False also when a test blocks it in ``sys.modules``)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def load_object(path: str) -> Any:
    """``"package.module:Name"`` -> the object."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


class LibraryPlugin:
    """Base: availability check, error counting, log-once. Subclasses do the work."""

    def __init__(self, *, name: str, library: str) -> None:
        self.name = name
        self.library = library
        self.errors = 0
        self.active = False
        self._logged: set[str] = set()

    def __repr__(self) -> str:
        return f"<latency-ledger plugin {self.name!r} active={self.active} errors={self.errors}>"

    def report(self, what: str, message: str, exc: BaseException | None = None) -> None:
        """Count a failure; log it the first time ``what`` fails for this plugin."""
        self.errors += 1
        if what not in self._logged:
            self._logged.add(what)
            logger.warning(
                "latency-ledger plugin %s: %s (further %s failures are only counted)",
                self.name,
                message,
                what,
                exc_info=exc,
            )

    def instrument(self, tracer_provider: Any) -> bool:
        if self.active:
            return True
        try:
            if not library_available(self.library):
                return False
            self.active = self._instrument(SanitizingTracerProvider(tracer_provider))
        except Exception as exc:  # never into the app: count, log once, undo what was done
            self.report("instrument", f"instrumenting {self.library} failed: {exc}", exc)
            self._undo_quietly()
            return False
        return self.active

    def uninstrument(self) -> None:
        if not self.active:
            return
        self.active = False
        try:
            self._uninstrument()
        except Exception as exc:
            self.report("uninstrument", f"uninstrumenting {self.library} failed: {exc}", exc)

    def _undo_quietly(self) -> None:
        try:
            self._uninstrument()
        except Exception as exc:
            logger.debug("plugin %s: cleanup after a failed instrument: %s", self.name, exc)

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        raise NotImplementedError

    def _uninstrument(self) -> None:
        raise NotImplementedError


class InstrumentorPlugin(LibraryPlugin):
    """A plugin that switches on one OpenTelemetry ``BaseInstrumentor``."""

    def __init__(
        self,
        *,
        name: str,
        library: str,
        instrumentor: str,
        options: Mapping[str, Any] | None = None,
        beyond_declared_range: bool = False,
    ) -> None:
        super().__init__(name=name, library=library)
        self.instrumentor = instrumentor
        self.options = dict(options or {})
        self.beyond_declared_range = beyond_declared_range
        self._owned = False

    def _instrumentor(self) -> Any:
        return load_object(self.instrumentor)()  # BaseInstrumentor is a per-class singleton

    def _instrument(self, tracer_provider: SanitizingTracerProvider) -> bool:
        inst = self._instrumentor()
        if inst.is_instrumented_by_opentelemetry:
            # Someone (opentelemetry-instrument, the app) got there first: their spans flow
            # to their provider; we neither re-instrument nor undo it later.
            logger.info("plugin %s: %s already instrumented; left as is", self.name, self.library)
            self._owned = False
            return True
        skip_dep_check = False
        conflict = inst._check_dependency_conflicts()
        if conflict is not None:
            conflict = conflict._format_message(type(inst).__name__).replace(
                ", so nothing can be instrumented.", ""
            )
            if not self.beyond_declared_range:
                self.report("version", f"{conflict}; no spans will be recorded for {self.library}")
                return False
            logger.warning(
                "latency-ledger plugin %s: %s; latency-ledger instruments it anyway "
                "(skip_dep_check). If database time reads as zero, report it.",
                self.name,
                conflict,
            )
            skip_dep_check = True
        inst.instrument(
            tracer_provider=tracer_provider, skip_dep_check=skip_dep_check, **self.options
        )
        if not inst.is_instrumented_by_opentelemetry:
            self.report("instrument", f"{self.instrumentor} declined to instrument {self.library}")
            return False
        self._owned = True
        return True

    def _uninstrument(self) -> None:
        if self._owned:
            self._owned = False
            inst = self._instrumentor()
            if inst.is_instrumented_by_opentelemetry:
                inst.uninstrument()
