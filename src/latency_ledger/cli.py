"""Command line: ``latency-ledger analyze | run | demo``.

Contract: the one place that talks to the terminal. Every project error is caught here
once and becomes a one-line message and a non-zero exit, never a traceback. Exit codes:
0 when something was analyzed (even with skipped input: the report counts it), 2 when
nothing could be read or an option is bad.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from latency_ledger.errors import ConfigError, LedgerError
from latency_ledger.model import Report, TargetRuntime
from latency_ledger.read.limits import ReadLimits

if TYPE_CHECKING:
    from latency_ledger.plugins import ClassifyRule

PROGRESS_MIN_BYTES = 8 * 2**20
EXIT_NOTHING_READ = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latency-ledger")
def main() -> None:
    """Where your endpoint latency goes, and whether a rewrite would make it faster."""


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
    )
    with _progress(paths, progress and not quiet) as on_bytes:
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
    return 0


def _print_problems(report: Report) -> None:
    for line in report.inputs.problems:
        click.echo(f"latency-ledger: {line}", err=True)
    hidden = sum(report.inputs.skipped.values()) - len(report.inputs.problems)
    if report.inputs.problems and hidden > 0:
        click.echo(f"latency-ledger: ... {hidden} more skipped (counted in the report)", err=True)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report (schema latency-ledger/2) here.",
)
@click.option(
    "-o",
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the self-contained HTML report here.",
)
@click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME=FACTOR|NAME=LOW:HIGH",
    help="A runtime to project a port to, e.g. node=5 or go=3:10 (repeatable).",
)
@click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1),
    default=ReadLimits().max_line_bytes,
    show_default=True,
    help="Skip (and report) JSON lines longer than this.",
)
@click.option(
    "--max-file-bytes",
    type=click.IntRange(min=1),
    default=ReadLimits().max_file_bytes,
    show_default=True,
    help="Stop reading a compressed file past this many decompressed bytes (and report it).",
)
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Your own classification rules (TOML or JSON, see README); they win over built-ins.",
)
@click.option(
    "--runtime",
    "runtimes",
    multiple=True,
    metavar="SERVICE=RUNTIME",
    help="The runtime a service runs when its traces do not say (or say wrong), e.g. "
    "shop=python; SERVICE * means every service (repeatable).",
)
@click.option("--progress/--no-progress", default=True, help="Progress bar for large inputs.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but problems.")
def analyze(
    paths: tuple[str, ...],
    json_path: Path | None,
    html_path: Path | None,
    targets: tuple[str, ...],
    max_line_bytes: int,
    max_file_bytes: int,
    rules_path: Path | None,
    runtimes: tuple[str, ...],
    progress: bool,
    quiet: bool,
) -> None:
    """Analyze OTLP trace files, directories or globs (JSON lines, JSON, protobuf, gz, zst)."""
    from latency_ledger.rules import load_rules

    try:
        rules = () if rules_path is None else load_rules(rules_path)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--rules") from exc
    try:
        code = analyze_paths(
            paths,
            json_path=json_path,
            html_path=html_path,
            targets=targets,
            progress=progress,
            quiet=quiet,
            limits=ReadLimits(max_line_bytes=max_line_bytes, max_file_bytes=max_file_bytes),
            rules=rules,
            runtimes=runtimes,
        )
    except ConfigError as exc:
        hint = "--runtime" if str(exc).startswith("--runtime") else "--target"
        raise click.BadParameter(str(exc), param_hint=hint) from exc
    except (LedgerError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(command: tuple[str, ...]) -> None:
    """Run an ASGI server with collection switched on: latency-ledger run -- uvicorn app:app"""
    from latency_ledger.collect.run import run_command

    try:
        code = run_command(list(command))
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)


@main.command()
@click.option(
    "--app",
    "app_name",
    type=click.Choice(["fastapi", "django"]),
    default="fastapi",
    show_default=True,
    help="Which example app to drive.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=40.0,
    show_default=True,
    help="Seconds of load.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ledger-out"),
    show_default=True,
    help="Where traces and reports go.",
)
def demo(app_name: str, duration: float, out_dir: Path) -> None:
    """Start an example app on a free port, drive load, and write the verdict report."""
    from latency_ledger.demo import run_demo

    try:
        code = run_demo(app=app_name, duration_s=duration, out_dir=out_dir)
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)
