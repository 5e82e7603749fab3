"""Command line: ``latency-ledger analyze | run | demo``.

Contract: parses options and calls down (``commands``, ``demo``, ``collect.run``); nothing
imports this module. Every project error is caught here once and becomes a one-line
message and a non-zero exit, never a traceback. Exit codes:
0 when something was analyzed (even with skipped input: the report counts it), 1 when
the rest was analyzed but a ClickHouse source could not be read, 2 when nothing could
be read or an option is bad.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from latency_ledger.commands import analyze_paths
from latency_ledger.errors import ConfigError, LedgerError
from latency_ledger.read.limits import ReadLimits


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="latency-ledger")
def main() -> None:
    """Where your endpoint latency goes, and whether a rewrite would make it faster."""


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the JSON report (schema latency-ledger/3) here.",
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
@click.option(
    "--max-endpoints",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="More distinct endpoints than this fold into one '(other endpoints)' row.",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Only requests that started at or after TIME: ISO (2026-12-07T10:00Z; UTC when "
    "no offset) or a duration ago (15m, 2h, 7d).",
)
@click.option("--until", metavar="TIME", help="Only requests that started before TIME.")
@click.option(
    "--service",
    "services",
    multiple=True,
    metavar="NAME",
    help="Only requests of this service (repeatable).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (each trace is analyzed whole by one of them) [default: every "
    "core for inputs over 50 MB, else 1].",
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
    max_endpoints: int,
    since: str | None,
    until: str | None,
    services: tuple[str, ...],
    jobs: int | None,
    progress: bool,
    quiet: bool,
) -> None:
    """Analyze trace files, directories or globs: OTLP (JSON lines, JSON, protobuf),
    Jaeger JSON, Zipkin v2 JSON; gz or zst compressed. Or the Collector's ClickHouse
    table: 'clickhouse://USER@HOST:8123/DB?table=otel_traces', 'chdb:///DIR?table=otel_traces'."""
    from latency_ledger.request_filter import RequestFilter, parse_time
    from latency_ledger.rules import load_rules

    try:
        select = RequestFilter(
            since_ns=None if since is None else parse_time(since, option="--since"),
            until_ns=None if until is None else parse_time(until, option="--until"),
            services=frozenset(services),
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from exc

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
            max_endpoints=max_endpoints,
            select=select,
            jobs=jobs,
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
    default=None,
    help="Where traces and reports go.  [default: ledger-out/APP]",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=None,
    help="The example app's port on 127.0.0.1.  [default: a free one]",
)
def demo(app_name: str, duration: float, out_dir: Path | None, port: int | None) -> None:
    """Start an example app, drive load, and write the verdict report."""
    from latency_ledger.demo import run_demo

    try:
        code = run_demo(
            app=app_name,
            duration_s=duration,
            out_dir=out_dir or Path("ledger-out") / app_name,
            port=port,
        )
    except LedgerError as exc:
        raise click.ClickException(str(exc)) from exc
    sys.exit(code)
