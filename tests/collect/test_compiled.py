"""compiled.py: the speedups are used only when released with this package."""

from __future__ import annotations

import logging

import pytest

from latency_ledger.collect import compiled


def test_speedups_of_another_release_are_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    releases = {"latency-ledger": "0.2.0", "latency-ledger-speedups": "0.1.0"}
    monkeypatch.delenv("LATENCY_LEDGER_PURE_PYTHON", raising=False)
    monkeypatch.setattr(compiled, "version", releases.__getitem__)
    with caplog.at_level(logging.WARNING, logger="latency_ledger.collect"):
        assert compiled._speedups() is None
    assert "does not match" in caplog.text


def test_speedups_of_the_same_release_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LATENCY_LEDGER_PURE_PYTHON", raising=False)
    monkeypatch.setattr(compiled, "version", lambda name: "0.1.0")
    assert compiled._speedups() is not None  # the dev environment installs them


def test_the_pure_python_switch_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LATENCY_LEDGER_PURE_PYTHON", "1")
    assert compiled._speedups() is None
