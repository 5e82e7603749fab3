"""aiohttp client plugin against a local stub server: CLIENT spans, sanitized URL."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import pytest
from latency_ledger_aiohttp import plugin as published
from latency_ledger_plugin_base import InstrumentorPlugin
from opentelemetry.trace import SpanKind


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


async def _get(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await response.read()
        return response.status


def test_session_made_after_is_traced(spans: Any, plugin: Any, stub_url: str) -> None:
    assert plugin.instrument(spans.provider) is True
    assert asyncio.run(_get(f"{stub_url}/items?token=s3cret&page=2")) == 200
    (span,) = spans.finished()
    attrs = dict(span.attributes or {})
    assert span.kind == SpanKind.CLIENT
    assert attrs.get("http.method", attrs.get("http.request.method")) == "GET"
    assert attrs.get("http.url", attrs.get("url.full")) == f"{stub_url}/items?token=&page="
    assert attrs["server.address"] == "127.0.0.1"


def test_uninstrument_restores(spans: Any, plugin: Any, stub_url: str) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    assert asyncio.run(_get(stub_url)) == 200
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0
