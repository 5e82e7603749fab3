"""The fast reader yields the reference reader's rows and notes its problems, byte for byte.

Reference: ``read_file`` with the default JSON reader (``otlp_json``). Compared on the
third-party traces, the examples, a generated file, and arbitrary JSON lines beside a
valid one (hypothesis): rows (every field), counters and problem lines. With
``share=(k, n)`` the shares partition the rows: each trace whole in exactly one.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latency_ledger.parallel import merge_stats
from latency_ledger.read import ReadStats
from latency_ledger.read.fast import owner, read_rows
from latency_ledger.read.files import expand_paths, read_file
from latency_ledger.read.values import IdDecoder

from .test_robustness import _VALID, json_values, otlp_like

ROOT = Path(__file__).resolve().parents[2]


def _reference(paths: list[Path]) -> tuple[list[tuple[Any, ...]], ReadStats]:
    stats = ReadStats()
    ids = IdDecoder()
    rows = [
        msgspec.structs.astuple(row)
        for path in expand_paths(paths)
        for batch in read_file(path, stats, ids)
        for row in batch
    ]
    return rows, stats


def _fast(paths: list[Path], share: tuple[int, int] = (0, 1)) -> tuple[list[Any], ReadStats]:
    stats = ReadStats()
    rows = [
        msgspec.structs.astuple(row)
        for batch in read_rows(paths, stats=stats, share=share)
        for row in batch
    ]
    return rows, stats


def _same(paths: list[Path]) -> list[tuple[Any, ...]]:
    rows, stats = _reference(paths)
    fast_rows, fast_stats = _fast(paths)
    assert fast_rows == rows
    assert len(fast_stats.places) == len(fast_stats.problems)
    fast_stats.fallback_units = 0
    fast_stats.places = []
    assert fast_stats == stats
    return rows


def _inputs(gen: ModuleType, tmp: Path) -> list[list[Path]]:
    generated = tmp / "gen.jsonl"
    gen.write_otlp_jsonl(generated, requests=400, spans_per_request=9, seed=3)
    third_party = sorted(p for p in (ROOT / "tests/data/traces").rglob("*") if p.is_file())
    examples = sorted((ROOT / "examples/traces").glob("*.jsonl.gz"))
    return [[generated], third_party, examples]


def test_rows_and_problems_equal_the_reference(gen: ModuleType, tmp_path: Path) -> None:
    for paths in _inputs(gen, tmp_path):
        assert _same(paths)
        _shares_note_once(paths)


@pytest.mark.parametrize("workers", [2, 3])
def test_shares_split_the_rows_by_trace(gen: ModuleType, tmp_path: Path, workers: int) -> None:
    for paths in _inputs(gen, tmp_path):
        rows, stats = _reference(paths)
        shares = [_fast(paths, (k, workers)) for k in range(workers)]
        for k, (share_rows, share_stats) in enumerate(shares):
            assert {owner(row[0], workers) for row in share_rows} <= {k}
            assert share_stats.problems == stats.problems
        # together the shares are all rows, each in its reading order
        assert Counter(repr(r) for rs, _ in shares for r in rs) == Counter(map(repr, rows))
        for k, (share_rows, _) in enumerate(shares):
            assert share_rows == [r for r in rows if owner(r[0], workers) == k]


def _lines(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        path.write_bytes(data)
        _same([path])
        _shares_note_once([path])


def _shares_note_once(paths: list[Path]) -> None:
    """Workers' counters merge into the one reader's: each problem once, in order."""
    rows, stats = _reference(paths)
    for workers in (2, 3):
        shares = [_fast(paths, (k, workers)) for k in range(workers)]
        merged = merge_stats([share_stats for _rows, share_stats in shares])
        assert merged.problems == stats.problems
        assert merged.problem_count == stats.problem_count
        assert merged.skipped == stats.skipped
        assert sum(len(share_rows) for share_rows, _stats in shares) == len(rows)


def _span(trace: int, span: int, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": f"{trace:032x}",
        "spanId": f"{span:016x}",
        "kind": 2,
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000000000005000",
        "attributes": [{"key": "k", "value": {"intValue": "1"}}],
    } | fields


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(1, 12),
                st.sampled_from(["ok", "bad id", "bad parent", "no end", "bad attr", "old"]),
            ),
            min_size=1,
            max_size=5,
        ),
        max_size=8,
    )
)
def test_problems_of_spans_any_worker_owns_count_once(lines: list[list[tuple[int, str]]]) -> None:
    broken = {
        "ok": {},
        "bad id": {"spanId": "xyz"},
        "bad parent": {"parentSpanId": "nothex!"},
        "no end": {"endTimeUnixNano": "0"},
        "bad attr": {"attributes": [{"key": "k", "value": {"intValue": "many"}}]},
        "old": {"startTimeUnixNano": "1000", "endTimeUnixNano": "2000"},
    }
    out = [_VALID]
    for n, spans in enumerate(lines):
        doc = [_span(trace, 100 * n + i + 1, **broken[how]) for i, (trace, how) in enumerate(spans)]
        out.append(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": doc}]}]}).encode())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input.jsonl"
        path.write_bytes(b"\n".join(out))
        _same([path])
        _shares_note_once([path])


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values | otlp_like, max_size=4))
def test_any_json_lines_read_as_the_reference_reads_them(units: list[Any]) -> None:
    _lines(b"\n".join([_VALID, *[json.dumps(u).encode() for u in units]]))


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=0, max_value=len(_VALID)))
def test_damaged_lines_read_as_the_reference_reads_them(noise: bytes, at: int) -> None:
    _lines(_VALID + b"\n" + _VALID[:at] + noise + _VALID[at:] + b"\n" + _VALID)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    "plain",
                    "upper",
                    "zeros",
                    "space",
                    "base64",
                    "short",
                    "long",
                    "non-hex",
                    "unicode",
                    "empty",
                ]
            ),
            min_size=1,
            max_size=6,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_span_id_spellings_read_as_the_reference_reads_them(scopes: list[list[str]]) -> None:
    """A scope's span ids are checked together when they are all plain (lowercase hex, 16
    digits, not zeros) and one by one otherwise: any mix reads as the reference reads it."""
    spelled = {
        "plain": lambda n: f"{n:016x}",
        "upper": lambda n: f"{n:016X}",
        "zeros": lambda n: "0" * 16,
        "space": lambda n: f"{n:014x} 0",
        "base64": lambda n: "AAAAAAAAAA" + f"{n % 100:02d}" + "==",
        "short": lambda n: f"{n:015x}",
        "long": lambda n: f"{n:017x}",
        "non-hex": lambda n: f"{n:015x}g",
        "unicode": lambda n: f"{n:015x}\u0661",
        "empty": lambda n: "",
    }
    out = [_VALID]
    n = 0xABCDEF0000
    for how in scopes:
        doc = []
        for i, spelling in enumerate(how):
            n += 1
            doc.append(_span(1 + i % 3, 0, spanId=spelled[spelling](n)))
        out.append(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": doc}]}]}).encode())
    _lines(b"\n".join(out))
