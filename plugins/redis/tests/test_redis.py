"""Redis plugin against the local Redis (127.0.0.1:6379): sanitized command spans."""

from __future__ import annotations

import asyncio
import sys
import uuid
from typing import Any

import pytest
import redis
import redis.asyncio
from latency_ledger_plugin_base import InstrumentorPlugin
from latency_ledger_redis import plugin as published
from opentelemetry.trace import SpanKind

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def plugin() -> Any:
    plugin = InstrumentorPlugin(
        name=published.name, library=published.library, instrumentor=published.instrumentor
    )
    yield plugin
    plugin.uninstrument()


@pytest.fixture
def key() -> Any:
    key = f"latency-ledger-test:{uuid.uuid4().hex}"
    yield key
    with redis.Redis.from_url(URL) as client:
        client.delete(key)


def test_sync_and_async_commands(spans: Any, plugin: Any, key: str) -> None:
    client = redis.Redis.from_url(URL)  # made before instrumenting
    assert plugin.instrument(spans.provider) is True
    client.set(key, "s3cret-value")
    assert client.get(key) == b"s3cret-value"
    client.close()

    async def run() -> None:
        async with redis.asyncio.Redis.from_url(URL) as aclient:
            assert await aclient.get(key) == b"s3cret-value"

    asyncio.run(run())
    names = [s.name for s in spans.finished()]
    assert names == ["SET", "GET", "GET"]
    for span in spans.finished():
        attrs = dict(span.attributes or {})
        assert span.kind == SpanKind.CLIENT
        assert attrs["db.system"] == "redis"
        assert "s3cret" not in str(attrs)
        assert key not in str(attrs)
    assert dict(spans.finished()[0].attributes or {})["db.statement"] == "SET ? ?"


def test_uninstrument_restores(spans: Any, plugin: Any, key: str) -> None:
    assert plugin.instrument(spans.provider)
    plugin.uninstrument()
    with redis.Redis.from_url(URL) as client:
        client.get(key)
    assert spans.finished() == ()


def test_absent_library(spans: Any, plugin: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)
    assert plugin.instrument(spans.provider) is False
    assert plugin.errors == 0
