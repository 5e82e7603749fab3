"""The trace generator the benchmarks reuse: counts, determinism, realistic content."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from types import ModuleType


def test_generated_file_has_the_promised_shape(tmp_path: Path, gen: ModuleType) -> None:
    path = tmp_path / "g.jsonl"
    assert gen.write_otlp_jsonl(path, requests=200, spans_per_request=8, seed=5) == 1600
    kinds: Counter[int] = Counter()
    per_trace: Counter[str] = Counter()
    lines_of_trace: dict[str, set[int]] = {}
    attrs_by_kind: dict[int, set[str]] = {}
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    kinds[s["kind"]] += 1
                    per_trace[s["traceId"]] += 1
                    lines_of_trace.setdefault(s["traceId"], set()).add(number)
                    keys = {a["key"] for a in s["attributes"]}
                    attrs_by_kind.setdefault(s["kind"], set()).update(keys)
    assert kinds[2] == 200  # one SERVER span per request
    assert set(per_trace.values()) == {8}
    assert len(lines) < 200  # several requests per line
    assert any(len(n) > 1 for n in lines_of_trace.values())  # some split over lines
    assert {"http.route", "http.request.method", "http.response.status_code"} <= attrs_by_kind[2]
    assert {"db.system", "db.statement", "db.system.name", "db.query.text"} <= attrs_by_kind[3]
    assert "url.full" in attrs_by_kind[3]
    assert "code.function" in attrs_by_kind[1]


def test_same_seed_same_bytes(tmp_path: Path, gen: ModuleType) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    gen.write_otlp_jsonl(a, requests=30, spans_per_request=4, seed=1)
    gen.write_otlp_jsonl(b, requests=30, spans_per_request=4, seed=1)
    gen.write_otlp_jsonl(c, requests=30, spans_per_request=4, seed=2)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
