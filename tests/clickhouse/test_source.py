"""URLs, parameters and failures of a ClickHouse source."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from latency_ledger.cli import main
from latency_ledger.clickhouse.source import is_database_url, param_text, parse_url
from latency_ledger.errors import ConfigError

from .conftest import EXAMPLES, LoadDir


def test_clickhouse_url() -> None:
    source = parse_url("clickhouse://reader:s%40cret@ch.internal:9000/telemetry?table=spans")
    assert (source.kind, source.host, source.port) == ("clickhouse", "ch.internal", 9000)
    assert (source.user, source.password) == ("reader", "s@cret")
    assert source.table_sql == "`telemetry`.`spans`"
    assert "s%40cret" not in source.shown
    assert "***" in source.shown


def test_clickhouse_url_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKHOUSE_PASSWORD", "from-env")
    source = parse_url("clickhouse://ch/?secure=1")
    assert (source.port, source.secure, source.user) == (8443, True, "default")
    assert (source.database, source.table, source.password) == (
        "default",
        "otel_traces",
        "from-env",
    )
    assert parse_url("clickhouse://u@h/db").port == 8123


def test_chdb_url() -> None:
    source = parse_url("chdb:///var/lib/traces?table=otel_traces&database=otel")
    assert (source.kind, source.path, source.table_sql) == (
        "chdb",
        "/var/lib/traces",
        "`otel`.`otel_traces`",
    )


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("clickhouse://u@h/db?table=x;DROP TABLE y", "not a plain identifier"),
        ("clickhouse://u@h/my-db", "not a plain identifier"),
        ("clickhouse://u@h/db?tabel=x", "unknown URL parameter"),
        ("clickhouse:///db", "no host"),
        ("chdb://host/dir", "three slashes"),
        ("chdb:///", "no directory"),
        ("clickhouse://u:pw@h:99999/db", "not a valid URL"),
    ],
)
def test_bad_urls(url: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as caught:
        parse_url(url)
    assert ":pw@" not in str(caught.value)


def test_database_urls_told_from_paths() -> None:
    assert is_database_url("chdb:///x")
    assert is_database_url("ClickHouse://h/db")
    assert not is_database_url("traces/chdb.jsonl")
    assert not is_database_url("C:\\traces")


@pytest.mark.parametrize(
    "value",
    ["plain", "it's", "back\\slash", "tab\tnew\nline", "'); DROP TABLE t; --", "{x:String}"],
)
def test_parameters_arrive_verbatim(chdb_session: ModuleType, value: str) -> None:
    """Hostile text passed as a parameter comes back unchanged, as a string and in an array."""
    session = chdb_session.Session()
    try:
        got = session.query(
            "SELECT {s:String} = {expect:String}, has({a:Array(String)}, {s:String}), "
            "length({a:Array(String)})",
            "CSV",
            params={
                "s": param_text(value),
                "expect": param_text(value),
                "a": param_text([value, "other"]),
            },
        )
        assert got.bytes().decode().strip() == "1,1,2"
        echoed = session.query("SELECT hex({s:String})", "CSV", params={"s": param_text(value)})
        assert echoed.bytes().decode().strip().strip('"') == value.encode().hex().upper()
    finally:
        session.close()


def test_failed_sources_one_line_each_rest_analyzed(load_dir: LoadDir, tmp_path: Path) -> None:
    """Bad URL, missing directory, missing table, unreachable server: one line each, no
    traceback, the file and the good table still analyzed, exit code 1."""
    good = load_dir([EXAMPLES[0]])
    missing_table = good.replace("table=otel_traces", "table=otel_spans")
    refused = "clickhouse://u:hunter2@127.0.0.1:9/db?table=otel_traces"  # discard port
    inputs = [
        str(EXAMPLES[1]),
        good,
        missing_table,
        f"chdb://{tmp_path}/nowhere?table=otel_traces",
        "chdb:///x?table=a%20b",
        refused,
    ]
    result = CliRunner().invoke(
        main, ["analyze", "-q", "--json", str(tmp_path / "r.json"), *inputs]
    )
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line]
    assert len(lines) == 4, lines
    assert "no table default.otel_spans" in lines[0]
    assert "no such directory" in lines[1]
    assert "not a plain identifier" in lines[2]
    assert "127.0.0.1:9" in lines[3]
    assert "hunter2" not in result.stderr
    assert "Traceback" not in result.output
    import json

    inputs_seen = json.loads((tmp_path / "r.json").read_text())["inputs"]
    assert inputs_seen["files"] == 2  # the example file and the good table
    assert inputs_seen["skipped"]["unreadable_source"] == 4


def test_nothing_readable_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["analyze", "-q", f"chdb://{tmp_path}/none?table=t"])
    assert result.exit_code == 2
    assert "no such directory" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "module", "says"),
    [
        ("chdb:///tmp?table=t", "chdb", "needs the chdb package"),
        ("clickhouse://u@h/db", "clickhouse_connect", "latency-ledger[clickhouse]"),
    ],
)
def test_missing_driver_is_one_line(
    url: str, module: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the driver installed (pip install latency-ledger alone): a hint, exit 2."""
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    result = CliRunner().invoke(main, ["analyze", "-q", url])
    assert result.exit_code == 2
    assert says in result.stderr
    assert "Traceback" not in result.output
