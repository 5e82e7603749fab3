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
