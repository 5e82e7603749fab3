"""``latency-ledger demo``: where it writes, its port, a missing extra, and a real short run."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from latency_ledger import demo
from latency_ledger.cli import main
from latency_ledger.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_cli_calls_down_and_nothing_calls_up() -> None:
    code = (
        "import sys, latency_ledger.demo, latency_ledger.commands; "
        "assert 'latency_ledger.cli' not in sys.modules, 'imported the CLI'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("app", ["fastapi", "django"])
def test_each_app_writes_its_own_folder_by_default(
    app: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_run_demo(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    result = CliRunner().invoke(main, ["demo", "--app", app, "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert seen["out_dir"] == Path("ledger-out") / app
    assert seen["port"] == 8123
    result = CliRunner().invoke(main, ["demo", "--app", app, "--out", "elsewhere"])
    assert seen["out_dir"] == Path("elsewhere")
    assert seen["port"] is None


def test_missing_extra_is_one_line_naming_what_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    absent = {"fastapi", "httpx"}
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name in absent else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"needs fastapi, httpx: pip install"):
        demo.check_extra("fastapi")
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        "Error: the fastapi demo needs fastapi, httpx: pip install 'latency-ledger[demo]'"
    ]
    assert not (tmp_path / "out").exists()  # nothing started, nothing written


def test_examples_found_in_the_checkout_or_where_the_env_says(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert demo.find_examples() == REPO / "examples"
    monkeypatch.setenv("LATENCY_LEDGER_EXAMPLES", str(tmp_path))
    with pytest.raises(ConfigError, match=str(tmp_path)):
        demo.find_examples()


@pytest.mark.server
def test_short_run_on_the_given_port_writes_traces_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = demo.free_port()
    out = tmp_path / "out"
    code = demo.run_demo(app="fastapi", duration_s=3, out_dir=out, port=port)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    endpoints = {e["endpoint"] for e in report["endpoints"]}
    assert "GET /orders/{order_id}" in endpoints
    assert list((out / "traces").iterdir())
    assert (out / "report.html").read_text().lower().startswith("<!doctype html>")
    assert f"shop on http://127.0.0.1:{port} " in capsys.readouterr().err
