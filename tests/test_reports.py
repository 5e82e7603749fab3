"""The committed sample reports in reports/ match a fresh render of examples/traces/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_sample_reports_exist_for_every_trace_set() -> None:
    sets = [p for p in (ROOT / "examples" / "traces").iterdir() if not p.name.startswith(".")]
    sets = [p for p in sets if not p.name.startswith("README")]
    assert sets, "examples/traces/ holds no trace set"
    for trace_set in sets:
        name = trace_set.name.split(".")[0]
        for ext in ("html", "json", "txt"):
            assert (ROOT / "reports" / f"{name}.{ext}").is_file()


def test_sample_reports_are_not_stale() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "render_samples.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
