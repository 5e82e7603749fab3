"""What ``analyze`` does once its options are parsed: analyze, write the reports, print.

Contract: :func:`analyze_paths` is shared by the ``analyze`` command and the demo, which
both sit above it (``cli.py`` parses options and turns errors into one-line messages;
``demo.py`` runs an example first); nothing here imports either. It writes what it is
asked to, prints problems to stderr and the summary to stdout, and returns the exit
code: 0 when something was analyzed, ``EXIT_NOTHING_READ`` when nothing could be read,
``EXIT_SOURCE_FAILED`` when the rest was analyzed but a ClickHouse source was not.
Project errors (a bad ``--target``: ConfigError) propagate to the caller.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from latency_ledger.clickhouse import UNREADABLE_SOURCE, is_database_url
from latency_ledger.model import Report, TargetRuntime
from latency_ledger.read.limits import ReadLimits
from latency_ledger.request_filter import RequestFilter

if TYPE_CHECKING:
    from latency_ledger.plugins import ClassifyRule

PROGRESS_MIN_BYTES = 8 * 2**20
EXIT_NOTHING_READ = 2
EXIT_SOURCE_FAILED = 1  # the rest analyzed, but a ClickHouse source could not be read


def _merge_targets(
    defaults: Sequence[TargetRuntime], given: Sequence[TargetRuntime]
) -> tuple[TargetRuntime, ...]:
    """A given target replaces the default of the same name; new names are added."""
    by_name = {t.name: t for t in defaults}
    for target in given:
        by_name[target.name] = target
    return tuple(by_name.values())


@contextmanager
def _progress(paths: Sequence[str], enabled: bool) -> Iterator[Any]:
    from latency_ledger.read import total_input_bytes

    total = total_input_bytes(paths) if enabled else 0
    if total < PROGRESS_MIN_BYTES:
        yield None
        return
    with click.progressbar(length=total, label="reading traces", file=sys.stderr) as bar:
        yield bar.update


def analyze_paths(
    paths: Sequence[str],
    *,
    json_path: Path | None,
    html_path: Path | None,
    targets: Sequence[str],
    progress: bool,
    quiet: bool,
    limits: ReadLimits | None = None,
    rules: Sequence[ClassifyRule] = (),
    runtimes: Sequence[str] = (),
    max_endpoints: int = 1000,
    select: RequestFilter | None = None,
    jobs: int | None = None,
) -> int:
    """Run the analysis and write the requested reports; return the exit code.

    ``rules`` (from ``--rules``) run before the plugins' and the built-in rules."""
    from latency_ledger.analyze import AnalyzeOptions, analyze, default_rules
    from latency_ledger.render.html import write_html
    from latency_ledger.render.json import write_json
    from latency_ledger.render.text import render_text
    from latency_ledger.runtime import parse_runtime_override
    from latency_ledger.verdict import DEFAULT_TARGETS, parse_target

    given = [parse_target(t) for t in targets]
    options = AnalyzeOptions(
        limits=limits or ReadLimits(),
        rules=(*rules, *default_rules()) if rules else None,
        targets=_merge_targets(DEFAULT_TARGETS, given),
        given_targets=frozenset(t.name for t in given),
        runtimes=dict(parse_runtime_override(r) for r in runtimes),
        max_endpoints=max_endpoints,
        select=select or RequestFilter(),
        jobs=jobs,
    )
    files = [p for p in paths if not is_database_url(p)]
    with _progress(files, progress and not quiet) as on_bytes:
        report = analyze(paths, options=options, on_bytes=on_bytes)
    _print_problems(report)
    if report.inputs.spans == 0:
        click.echo("latency-ledger: no trace data could be read from the input", err=True)
        return EXIT_NOTHING_READ
    if json_path is not None:
        write_json(report, json_path)
    if html_path is not None:
        write_html(report, html_path)
    if not quiet:
        click.echo(render_text(report, color=sys.stdout.isatty()))
        for label, path in (("JSON", json_path), ("HTML", html_path)):
            if path is not None:
                click.echo(f"{label} report: {path}")
    # A table that could not be read is missing from the report: not a success.
    return EXIT_SOURCE_FAILED if report.inputs.skipped.get(UNREADABLE_SOURCE) else 0


def _print_problems(report: Report) -> None:
    for line in report.inputs.problems:
        click.echo(f"latency-ledger: {line}", err=True)
    # Problems are counted as problems (one message each), not as the skipped units
    # (spans, lines) they stand for: one bad line can skip many spans.
    shown = len(report.inputs.problems)
    hidden = max(report.inputs.problem_count, shown) - shown
    if hidden > 0:
        click.echo(
            f"latency-ledger: ... and {hidden:,} more problem{'s' if hidden != 1 else ''} "
            "not shown (every skipped unit is counted in the report)",
            err=True,
        )
