"""``summarize_records``: pyinstrument's records -> the ``ledger.profile`` summary."""

from __future__ import annotations

import json

from latency_ledger.collect.profiling import summarize_records


def _frame(function: str, file: str, line: int = 1) -> str:
    return f"{function}\x00{file}\x00{line}"


def test_time_in_a_builtin_is_named_by_its_python_caller() -> None:
    # Expected: 30 ms sampled inside time.thread_time_ns called from burn() and 10 ms in
    # burn() itself are all burn()'s; the builtin never appears on its own.
    app = "/srv/app/views.py"
    burn = [_frame("handler", app), _frame("burn", app, 7)]
    records = [
        ([*burn, _frame("thread_time_ns", "<built-in>", 0)], 0.030),
        (burn, 0.010),
    ]
    doc = json.loads(summarize_records(records, 40))
    assert doc["samples"] == 40
    assert doc["top"] == [["burn (views.py)", 0.04]]
    assert doc["buckets"] == {"application": 0.04}
