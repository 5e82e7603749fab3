"""Whatever the bytes, read_traces never raises: it counts and describes what it skips."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from latency_ledger.read import ReadStats, read_traces

_SPAN = {
    "traceId": "5b8efff798038103d269b633813fc60c",
    "spanId": "eee19b7ec3c1b174",
    "kind": 2,
    "startTimeUnixNano": "1000",
    "endTimeUnixNano": "5000",
    "attributes": [{"key": "k", "value": {"intValue": "1"}}],
}
_VALID = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [_SPAN]}]}]}).encode()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
otlp_keys = st.sampled_from(
    ["resourceSpans", "scopeSpans", "spans", "traceId", "spanId", "parentSpanId", "kind",
     "startTimeUnixNano", "endTimeUnixNano", "attributes", "key", "value", "intValue",
     "stringValue", "arrayValue", "values", "status", "code", "batches", "result", "data"]
)  # fmt: skip
otlp_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(otlp_keys, inner, max_size=5),
    max_leaves=30,
)


def _read_bytes(data: bytes) -> ReadStats:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        stats = ReadStats()
        spans = sum(len(t.spans) for t in read_traces([path], stats=stats))
    assert spans == stats.spans
    assert len(stats.problems) <= sum(stats.skipped.values()) + len(stats.skipped)
    assert all("\n" not in p for p in stats.problems)
    return stats


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    _read_bytes(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(json_values | otlp_like, max_size=4))
def test_any_json_lines_beside_a_valid_one(units: list[Any]) -> None:
    lines = [json.dumps(u).encode() for u in units]
    stats = _read_bytes(b"\n".join([_VALID, *lines]))
    assert stats.spans >= 1  # the valid first line is read whatever follows


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=0, max_value=len(_VALID)))
def test_valid_line_with_bytes_spliced_in(noise: bytes, at: int) -> None:
    _read_bytes(_VALID + b"\n" + _VALID[:at] + noise + _VALID[at:] + b"\n" + _VALID)
