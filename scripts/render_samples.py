"""Render the sample reports in reports/ from the trace sets in examples/traces/.

Run from anywhere:  uv run python scripts/render_samples.py [--check]

Each entry of examples/traces/ (a file or a folder) is one trace set; it becomes
reports/<name>.html, reports/<name>.json and reports/<name>.txt. Paths are given to the
analyzer relative to the repository root so the output is the same on every machine.
With --check nothing is written: exit 1 and name the stale files when a committed report
differs from a fresh render (tests/test_reports.py runs this).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from latency_ledger.analyze import analyze
from latency_ledger.render.html import render_html
from latency_ledger.render.json import report_to_json
from latency_ledger.render.text import render_text

ROOT = Path(__file__).resolve().parents[1]
TRACES = Path("examples") / "traces"
REPORTS = Path("reports")


def trace_sets() -> list[Path]:
    return sorted(p for p in (ROOT / TRACES).iterdir() if not p.name.startswith((".", "README")))


def render_set(path: Path) -> dict[str, str]:
    report = analyze([str(path.relative_to(ROOT))])
    return {
        "html": render_html(report),
        "json": json.dumps(report_to_json(report), indent=1, sort_keys=False) + "\n",
        "txt": render_text(report, width=100) + "\n",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    os.chdir(ROOT)
    stale = []
    for trace_set in trace_sets():
        name = trace_set.name.split(".")[0]
        for ext, text in render_set(trace_set).items():
            target = ROOT / REPORTS / f"{name}.{ext}"
            if args.check:
                if not target.exists() or target.read_text() != text:
                    stale.append(str(target.relative_to(ROOT)))
            else:
                target.parent.mkdir(exist_ok=True)
                target.write_text(text)
                print(f"wrote {target.relative_to(ROOT)}")
    if stale:
        print(
            "stale sample reports (run: uv run python scripts/render_samples.py): "
            + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
