"""requests plugin against a local stub server: CLIENT spans, sanitized URL, server.address."""

from __future__ import annotations

import sys
from typing import Any

import pytest
import requests
from latency_ledger_plugin_base import InstrumentorPlugin
from latency_ledger_requests import plugin as published
from opentelemetry.trace import SpanKind


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


def test_session_made_before_is_traced(spans: Any, plugin: Any, stub_url: str) -> None:
    session = requests.Session()
    assert plugin.instrument(spans.provider) is True
    assert session.get(f"{stub_url}/items?token=s3cret&page=2", timeout=5).status_code == 200
    assert requests.get(f"{stub_url}/x?y=1", timeout=5).status_code == 200
    session.close()
    first, second = spans.finished()
    for span, url in ((first, f"{stub_url}/items?token=&page="), (second, f"{stub_url}/x?y=")):
        attrs = dict(span.attributes or {})
        assert span.kind == SpanKind.CLIENT
        assert attrs.get("http.method", attrs.get("http.request.method")) == "GET"
        assert attrs.get("http.url", attrs.get("url.full")) == url
        assert attrs["server.address"] == "127.0.0.1"


def test_uninstrument_restores(spans: Any, plugin: Any, stub_url: str) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    requests.get(stub_url, timeout=5)
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "requests", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0
