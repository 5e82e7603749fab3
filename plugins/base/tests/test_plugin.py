"""The failsafe plugin shell: absent library, failures, version conflicts, ownership."""

from __future__ import annotations

import logging
import sys
from collections.abc import Collection, Iterator
from typing import Any

import pytest
from latency_ledger_plugin_base import InstrumentorPlugin

from latency_ledger.plugins import _validate


class _Fake:
    """Stands in for a BaseInstrumentor: records calls, can be told to fail or conflict."""

    def __init__(self, *, deps: Collection[str] = (), fail: bool = False) -> None:
        self.deps = deps
        self.fail = fail
        self.is_instrumented_by_opentelemetry = False
        self.calls: list[dict[str, Any]] = []

    def _check_dependency_conflicts(self) -> Any:
        from opentelemetry.instrumentation.dependencies import get_dependency_conflicts

        return get_dependency_conflicts(self.deps)

    def instrument(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)
        if self.fail:
            raise RuntimeError("instrumentation exploded")
        self.is_instrumented_by_opentelemetry = True

    def uninstrument(self) -> None:
        if self.fail:
            raise RuntimeError("uninstrument exploded")
        self.is_instrumented_by_opentelemetry = False


def _plugin(fake: _Fake, **kwargs: Any) -> InstrumentorPlugin:
    plugin = InstrumentorPlugin(name="fake", library="json", instrumentor="x:Y", **kwargs)
    plugin._instrumentor = lambda: fake  # type: ignore[method-assign]
    return plugin


@pytest.fixture
def fake() -> Iterator[_Fake]:
    return _Fake()


def test_meets_the_contract(fake: _Fake) -> None:
    assert _validate(_plugin(fake), "fake") is not None


def test_instrument_and_uninstrument(fake: _Fake) -> None:
    plugin = _plugin(fake)
    assert plugin.instrument(None) is True
    assert fake.is_instrumented_by_opentelemetry
    assert fake.calls[0]["skip_dep_check"] is False
    plugin.uninstrument()
    assert not fake.is_instrumented_by_opentelemetry
    assert plugin.errors == 0


def test_absent_library_does_nothing(fake: _Fake, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "json", None)
    plugin = _plugin(fake)
    assert plugin.instrument(None) is False
    assert fake.calls == []
    assert plugin.errors == 0


def test_failure_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    plugin = _plugin(_Fake(fail=True))
    with caplog.at_level(logging.WARNING, logger="latency_ledger.plugins"):
        assert plugin.instrument(None) is False
        assert plugin.instrument(None) is False
    assert plugin.errors == 2
    assert len(caplog.records) == 1
    assert "instrumentation exploded" in caplog.records[0].getMessage()


def test_uninstrument_never_raises() -> None:
    fake = _Fake()
    plugin = _plugin(fake)
    assert plugin.instrument(None)
    fake.fail = True
    plugin.uninstrument()
    assert plugin.errors == 1
    fake.fail = False
    fake.uninstrument()


def test_version_conflict_refused_loudly(caplog: pytest.LogCaptureFixture) -> None:
    fake = _Fake(deps=("pytest < 1",))
    plugin = _plugin(fake)
    with caplog.at_level(logging.WARNING, logger="latency_ledger.plugins"):
        assert plugin.instrument(None) is False
    assert fake.calls == []
    assert plugin.errors == 1
    assert "pytest < 1" in caplog.text


def test_version_conflict_instrumented_anyway_when_verified(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake = _Fake(deps=("pytest < 1",))
    plugin = _plugin(fake, beyond_declared_range=True)
    with caplog.at_level(logging.WARNING, logger="latency_ledger.plugins"):
        assert plugin.instrument(None) is True
    assert fake.calls[0]["skip_dep_check"] is True
    assert "instruments it anyway" in caplog.text
    plugin.uninstrument()


def test_someone_elses_instrumentation_is_left_alone(fake: _Fake) -> None:
    fake.is_instrumented_by_opentelemetry = True
    plugin = _plugin(fake)
    assert plugin.instrument(None) is True
    plugin.uninstrument()
    assert fake.is_instrumented_by_opentelemetry
    assert fake.calls == []


# -- lazy: a library that is installed but not imported yet -------------------------------


@pytest.fixture
def lib(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An installed, never-imported top-level module (a file on sys.path)."""
    import importlib

    name = f"ll_lazy_lib_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text("LOADED = True\nFAIL = False\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield name
    sys.modules.pop(name, None)


def _lazy(fake: _Fake, library: str) -> InstrumentorPlugin:
    plugin = InstrumentorPlugin(name="lazy", library=library, instrumentor="x:Y")
    plugin._instrumentor = lambda: fake  # type: ignore[method-assign]
    return plugin


def test_installed_not_imported_instruments_on_import(fake: _Fake, lib: str) -> None:
    import importlib

    plugin = _lazy(fake, lib)
    assert plugin.instrument("provider") is True
    assert plugin.pending
    assert not plugin.active
    assert lib not in sys.modules  # instrument never imports the library
    assert fake.calls == []
    module = importlib.import_module(lib)  # the app's own import
    assert module.LOADED
    assert fake.calls
    assert fake.is_instrumented_by_opentelemetry
    assert plugin.active
    assert not plugin.pending
    assert plugin.instrument("provider") is True  # already on: nothing more
    assert len(fake.calls) == 1
    plugin.uninstrument()
    assert not fake.is_instrumented_by_opentelemetry


def test_not_installed_costs_nothing(fake: _Fake) -> None:
    from wrapt import importer

    plugin = _lazy(fake, "ll_no_such_library_at_all")
    assert plugin.instrument("provider") is False
    assert not plugin.pending
    assert "ll_no_such_library_at_all" not in importer._post_import_hooks
    plugin.uninstrument()


def test_uninstrument_while_pending_stops_watching(fake: _Fake, lib: str) -> None:
    import importlib

    plugin = _lazy(fake, lib)
    assert plugin.instrument("provider") is True
    plugin.uninstrument()
    assert not plugin.pending
    importlib.import_module(lib)
    assert fake.calls == []
    assert not plugin.active


def test_failing_instrumentation_never_breaks_the_apps_import(
    lib: str, caplog: pytest.LogCaptureFixture
) -> None:
    import importlib

    plugin = _lazy(_Fake(fail=True), lib)
    assert plugin.instrument("provider") is True
    with caplog.at_level(logging.WARNING, logger="latency_ledger.plugins"):
        module = importlib.import_module(lib)
    assert module.LOADED
    assert plugin.errors == 1
    assert not plugin.active
    assert not plugin.pending
    assert "instrumentation exploded" in caplog.text


def test_a_failed_import_of_the_library_waits_for_the_next(
    fake: _Fake, lib: str, tmp_path: Any
) -> None:
    import importlib

    source = tmp_path / f"{lib}.py"
    source.write_text("raise ImportError('not today')\n")
    plugin = _lazy(fake, lib)
    assert plugin.instrument("provider") is True
    with pytest.raises(ImportError, match="not today"):
        importlib.import_module(lib)
    assert fake.calls == []
    assert plugin.pending
    source.write_text("LOADED = True\n")
    importlib.invalidate_caches()
    sys.modules.pop(lib, None)
    assert importlib.import_module(lib).LOADED
    assert plugin.active
    plugin.uninstrument()
