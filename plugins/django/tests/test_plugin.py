"""The ``django`` plugin's contract: found by entry point, failsafe, undone completely."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import LazySettings
from latency_ledger_django import DjangoPlugin
from latency_ledger_django import plugin as published

from latency_ledger.plugins import load_plugins


@pytest.fixture
def plugin() -> Iterator[DjangoPlugin]:
    fresh = DjangoPlugin()
    yield fresh
    fresh.uninstrument()


def test_registered_under_the_entry_point() -> None:
    found = {p.name: p for p in load_plugins()}
    assert found["django"] is published


def test_instrument_twice_patches_once(spans: Any, plugin: DjangoPlugin) -> None:
    from django.template.base import Template

    original = Template.__dict__["render"]
    assert plugin.instrument(spans.provider) is True
    patched = Template.__dict__["render"]
    assert plugin.instrument(spans.provider) is True
    assert Template.__dict__["render"] is patched
    plugin.uninstrument()
    plugin.uninstrument()
    assert Template.__dict__["render"] is original


def test_no_django_settings_is_not_this_app(
    spans: Any, plugin: DjangoPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LazySettings, "configured", property(lambda self: False))
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0


def test_absent_library(spans: Any, plugin: DjangoPlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "django", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0


def test_failed_instrument_is_undone(
    spans: Any, plugin: DjangoPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.template.base import Template

    originals = (Template.__dict__["render"], BaseDatabaseWrapper.__dict__["connect"])

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("no tracer today")

    monkeypatch.setattr(spans.provider, "get_tracer", refuse)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 1
    assert (Template.__dict__["render"], BaseDatabaseWrapper.__dict__["connect"]) == originals


def test_not_imported_means_not_this_app(
    spans: Any, plugin: DjangoPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "django")
    assert plugin.instrument(spans.provider) is False
    assert "django" not in sys.modules  # and it was not imported to find that out
