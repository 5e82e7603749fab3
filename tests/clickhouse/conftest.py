"""Fixtures for the ClickHouse tests: chdb data directories filled like the Collector does.

chdb is ClickHouse's engine in this process (one data directory open at a time): each
fixture opens a session, loads the spans read from files with ``schema.load_traces``
(the exporter's DDL, its value encoding), and closes it again before ``analyze`` opens
the directory through its ``chdb://`` URL. Skips when chdb is not installed.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType

import pytest

from latency_ledger.classify import DEFAULT_RULES
from latency_ledger.clickhouse import PreBooked, read_sources
from latency_ledger.clickhouse.schema import load_traces
from latency_ledger.model import Trace
from latency_ledger.read import ReadLimits, ReadStats, read_traces
from latency_ledger.request_filter import RequestFilter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "traces").glob("*.jsonl.gz"))
THIRD_PARTY = ROOT / "tests" / "data" / "traces"

LoadDir = Callable[..., str]


@pytest.fixture(scope="session")
def chdb_session() -> ModuleType:
    return pytest.importorskip("chdb.session")


@pytest.fixture
def chdb_dir() -> Iterator[Path]:
    """A directory for chdb's data outside pytest's tmp_path: other pytest runs on the
    machine (same user) delete old tmp_path trees, which cancels a query mid-way."""
    with tempfile.TemporaryDirectory(prefix="ll-chdb-") as tmp:
        yield Path(tmp)


@pytest.fixture
def load_dir(chdb_dir: Path, chdb_session: ModuleType) -> LoadDir:
    """``load_dir(paths, old_names=False, table="otel_traces")`` -> a ``chdb:///`` URL."""

    def load(
        paths: Sequence[str | Path], *, old_names: bool = False, table: str = "otel_traces"
    ) -> str:
        directory = chdb_dir / f"chdb-{table}"
        session = chdb_session.Session(str(directory))
        try:
            load_traces(
                session,
                read_traces(list(paths), stats=ReadStats()),
                table=f"`default`.`{table}`",
                old_names=old_names,
            )
        finally:
            session.close()
        return f"chdb://{directory}?table={table}"

    return load


def load_spans(session_module: ModuleType, directory: Path, traces: Iterable[Trace]) -> str:
    """Write ``traces`` into ``directory`` (a chdb data directory); its ``chdb://`` URL."""
    session = session_module.Session(str(directory))
    try:
        load_traces(session, traces)
    finally:
        session.close()
    return f"chdb://{directory}?table=otel_traces"


def read_items(url: str, stats: ReadStats | None = None) -> list[Trace | PreBooked]:
    """What ``analyze`` gets from one table: traces booked in ClickHouse and the rest."""
    return list(
        read_sources(
            [url],
            stats=stats or ReadStats(),
            select=RequestFilter(),
            limits=ReadLimits(),
            rules=DEFAULT_RULES,
        )
    )


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """tests/read/gen.py (the generated trace sets), loaded by path."""
    path = ROOT / "tests" / "read" / "gen.py"
    spec = importlib.util.spec_from_file_location("_ch_gen", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
