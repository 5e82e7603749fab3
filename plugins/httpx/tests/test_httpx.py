"""httpx plugin against a local stub server: CLIENT spans, sanitized URL, server.address."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import httpx
import pytest
from latency_ledger_httpx import plugin as published
from latency_ledger_plugin_base import InstrumentorPlugin
from opentelemetry.trace import SpanKind


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


def _check(span: Any, url: str) -> None:
    attrs = dict(span.attributes or {})
    assert span.kind == SpanKind.CLIENT
    assert attrs.get("http.method", attrs.get("http.request.method")) == "GET"
    assert attrs.get("http.url", attrs.get("url.full")) == url
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs.get("http.status_code", attrs.get("http.response.status_code")) == 200


def test_sync_and_async_clients_made_before(spans: Any, plugin: Any, stub_url: str) -> None:
    sync_client = httpx.Client()
    assert plugin.instrument(spans.provider) is True
    assert sync_client.get(f"{stub_url}/items?token=s3cret&page=2").status_code == 200

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{stub_url}/async?key=abc")).status_code == 200

    asyncio.run(run())
    sync_client.close()
    first, second = spans.finished()
    _check(first, f"{stub_url}/items?token=&page=")
    _check(second, f"{stub_url}/async?key=")


def test_uninstrument_restores(spans: Any, plugin: Any, stub_url: str) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    with httpx.Client() as client:
        client.get(stub_url)
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0
