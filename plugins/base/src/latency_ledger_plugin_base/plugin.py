"""Failsafe plugin objects around OpenTelemetry instrumentors.

Contract (``latency_ledger.plugins``): a plugin has ``name``, ``instrument(tracer_provider)
-> bool`` and ``uninstrument()``. Here both never raise into the app: a failure is logged
once per plugin and operation, counted in ``errors``, and ``instrument`` returns False.
``instrument`` returns False and does nothing when the library is not installed.

Lazy: a plugin costs nothing for a library the app does not use. ``instrument`` never
imports the library: when the app has already imported it, the instrumentation is
switched on now; when it is installed but not imported yet, a post-import hook
(``wrapt.register_post_import_hook``, what wrapt-based instrumentations use) switches it
on right after the app's own ``import`` of it has run, and ``instrument`` returns True
(``pending``); when it is not installed, False. Only then are the instrumentation's
modules imported. Starting the collector thus no longer imports aiohttp, redis,
SQLAlchemy... into a Django app that uses none of them (about 1.4 s of imports here,
several seconds on a loaded machine).

A library outside the instrumentation's declared version range is never silently
skipped: by default the plugin refuses with a warning naming both versions and
counts an error; a plugin verified on newer releases (``beyond_declared_range=True``)
instruments anyway with ``skip_dep_check=True`` and warns that it does.

The instrumentor is handed a :class:`.SanitizingTracerProvider`, so statements and
URLs are sanitized whatever the instrumentation records.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
import threading
import weakref
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import wrapt

from latency_ledger_plugin_base.tracing import SanitizingTracerProvider

logger = logging.getLogger("latency_ledger.plugins")


def library_available(module: str) -> bool:
    """True when ``module`` imports (False also when a test blocks it in ``sys.modules``)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def library_installed(module: str) -> bool:
    """True when top-level ``module`` is imported or could be, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None  # None: blocked (a test, or on purpose)
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


_PLUGINS: weakref.WeakSet[LibraryPlugin] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # a lock another thread held at the fork (an instrument) stays held in the child: new
    # ones, as nothing else runs yet
    for plugin in list(_PLUGINS):
        plugin._lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        self._lock = threading.RLock()  # instrument/uninstrument vs the import hook
        self._pending: Any = None  # the provider, while waiting for the library's import
        _PLUGINS.add(self)

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

    @property
    def pending(self) -> bool:
        """Waiting for the app to import the library (see the module's "Lazy")."""
        return self._pending is not None

    def instrument(self, tracer_provider: Any) -> bool:
        with self._lock:
            if self.active or self._pending is not None:
                return True
            try:
                if sys.modules.get(self.library) is None:
                    if not library_installed(self.library):
                        return False
                    self._pending = tracer_provider
                    # called at once if imported meanwhile; a stale hook (uninstrumented
                    # before the import) finds nothing pending and does nothing
                    wrapt.register_post_import_hook(self._on_import, self.library)
                    return True
                return self._instrument_now(tracer_provider)
            except Exception as exc:  # never into the app
                self._pending = None
                self.report("instrument", f"watching for {self.library} failed: {exc}", exc)
                return False

    def _instrument_now(self, tracer_provider: Any) -> bool:
        try:
            self.active = self._instrument(SanitizingTracerProvider(tracer_provider))
        except Exception as exc:  # never into the app: count, log once, undo what was done
            self.report("instrument", f"instrumenting {self.library} failed: {exc}", exc)
            self._undo_quietly()
            return False
        return self.active

    def _on_import(self, module: ModuleType | None = None) -> None:
        """The app imported the library: switch on now (inside its ``import``: never raise)."""
        try:
            with self._lock:
                provider, self._pending = self._pending, None
                if provider is not None and not self.active:
                    self._instrument_now(provider)
        except Exception as exc:
            self.report("instrument", f"instrumenting {self.library} failed: {exc}", exc)

    def uninstrument(self) -> None:
        with self._lock:
            self._pending = None  # a hook still registered with wrapt now does nothing
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
