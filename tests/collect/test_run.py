"""``latency-ledger run``: zero-code instrumentation through a sitecustomize on PYTHONPATH."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from latency_ledger.collect.run import BOOTSTRAP_DIR, child_environment, run_command


def test_child_environment_puts_the_bootstrap_first() -> None:
    env = child_environment({"PYTHONPATH": f"/a{os.pathsep}/b", "X": "1"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(BOOTSTRAP_DIR), "/a", "/b"]
    assert env["X"] == "1"


def test_exit_codes_pass_through(capfd: pytest.CaptureFixture[str]) -> None:
    assert run_command(["--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    assert run_command([]) == 2
    assert run_command(["definitely-not-a-command-xyz"]) == 127
    assert "not found" in capfd.readouterr().err


def test_a_starlette_app_is_instrumented_without_code_changes(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A FastAPI app that knows nothing of latency-ledger, served by the child; its one
    # request must come out as a SERVER span with the ledger on it.
    script = tmp_path / "serve.py"
    script.write_text(
        "import fastapi, httpx, asyncio, sys\n"
        "app = fastapi.FastAPI()\n"
        "@app.get('/hi/{name}')\n"
        "async def hi(name: str):\n"
        "    return {'hi': name}\n"
        "async def main():\n"
        "    transport = httpx.ASGITransport(app=app)\n"
        "    async with httpx.AsyncClient(transport=transport, base_url='http://t') as c:\n"
        "        print((await c.get('/hi/ann')).text)\n"
        "asyncio.run(main())\n"
    )
    out = tmp_path / "traces"
    monkeypatch.setenv("LATENCY_LEDGER_OUTPUT_DIR", str(out))
    code = run_command(["--", sys.executable, str(script)])
    assert code == 0
    assert '{"hi":"ann"}' in capfd.readouterr().out
    (path,) = out.glob("*.jsonl")
    spans = [
        span
        for line in path.read_text().splitlines()
        for rs in json.loads(line)["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    ]
    (server,) = spans
    attrs = {kv["key"]: kv["value"] for kv in server["attributes"]}
    assert server["name"] == "GET /hi/{name}"
    assert attrs["http.route"] == {"stringValue": "/hi/{name}"}
    assert "ledger.interpreter_ns" in attrs


def test_instrument_adds_the_middleware_once_and_shutdown_undoes_it(tmp_path: Path) -> None:
    from fastapi import FastAPI

    from latency_ledger.collect import (
        CollectConfig,
        LedgerMiddleware,
        collector_stats,
        instrument,
        shutdown,
    )

    config = CollectConfig(output_dir=tmp_path, set_global_provider=False)
    app = FastAPI(title="shop")
    try:
        assert instrument(app, config=config) is app
        assert [m.cls for m in app.user_middleware] == [LedgerMiddleware]
        assert app._telemetry["tracing"] is False  # FastAPI's own request spans: ours replace them

        async def raw(scope: object, receive: object, send: object) -> None:
            return None

        wrapped = instrument(raw, config=config)
        assert isinstance(wrapped, LedgerMiddleware)
        assert wrapped.app is raw
        assert collector_stats()["requests"] == 0
    finally:
        shutdown()
    assert collector_stats() == {}
