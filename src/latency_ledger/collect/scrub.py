"""Secrets out of what the collector records: exception text and request paths.

Contract: pure functions over attacker-controlled text; they never raise and run in time
linear in their (capped) input.

- :func:`scrub_exception_text`: an exception's message or stack trace with what a
  request or a statement put in it taken out, the way SQL text is redacted: a driver's
  echoed statement (``[SQL: ...]``) is redacted by :func:`latency_ledger.sql.
  redact_statement`, its bound parameters (``[parameters: ...]``) and PostgreSQL's row
  details (``Key (email)=(...)``, ``Failing row contains (...)``) become ``?``, as do
  single-quoted literals, e-mail addresses and long random tokens (bcrypt hashes, API
  keys, session ids). What is left names the error and where it happened.
- :func:`scrub_span`: an SDK span with its exception events and error description
  scrubbed (the sink applies it to every span it is given, whoever made it).
- :func:`scrub_path`: a raw request path for ``url.path`` when no route template is
  known: id-like segments collapsed as the analysis does, and segments that look like a
  secret (e-mails, tokens) replaced.
"""

from __future__ import annotations

import re
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import Status

from latency_ledger.endpoint import collapse_path
from latency_ledger.sql import redact_statement

MAX_TEXT_CHARS = 16_384  # a stack trace longer than this is cut: its end names the error

_SQL_ECHO = re.compile(r"\[SQL: (.*?)\](?=\n|\Z)", re.DOTALL)
_PARAMETERS = re.compile(r"\[parameters: [^\n]*")
_PG_KEY = re.compile(
    r"(\bKey \([^)\n]{0,200}\)=\()[^\n]*?(\)(?: already exists| is not present|\s*$))", re.M
)
_PG_ROW = re.compile(r"(Failing row contains \()[^\n]*(\))")
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.){0,2000}'")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})+")
_BCRYPT = re.compile(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}")
# A run of token characters that mixes letters and digits, 20 or more long; path
# separators are not token characters, so file paths in a stack trace survive.
_TOKEN = re.compile(
    r"(?<![A-Za-z0-9_\-+=~$])(?=[A-Za-z_\-+=~$]*[0-9])(?=[0-9_\-+=~$]*[A-Za-z])[A-Za-z0-9_\-+=~$]{20,}"
)
_EXCEPTION_TEXT_KEYS = frozenset({"exception.message", "exception.stacktrace"})
_SECRET_SEGMENT = re.compile(r"@|^[A-Za-z0-9_\-+=~.$]{20,}$")


def scrub_exception_text(text: str) -> str:
    """``text`` (an exception's message or stack trace) with literals and secrets as ``?``."""
    if len(text) > MAX_TEXT_CHARS:
        text = "..." + text[-MAX_TEXT_CHARS:]
    text = _SQL_ECHO.sub(lambda m: f"[SQL: {redact_statement(m.group(1))}]", text)
    text = _PARAMETERS.sub("[parameters: ?]", text)
    text = _PG_KEY.sub(r"\1?\2", text)
    text = _PG_ROW.sub(r"\1?\2", text)
    text = _BCRYPT.sub("?", text)
    text = _EMAIL.sub("?", text)
    text = _QUOTED.sub("'?'", text)
    return _TOKEN.sub("?", text)


def scrub_path(path: str) -> str:
    """A raw request path fit to record: ids collapsed, secret-looking segments replaced."""
    collapsed = collapse_path(path)
    if "@" not in collapsed and not re.search(r"[^/]{20,}", collapsed):
        return collapsed
    return "/".join(
        "{secret}" if segment and _SECRET_SEGMENT.search(segment) else segment
        for segment in collapsed.split("/")
    )


def _scrub_event(event: Any) -> Any:
    attrs = event.attributes or {}
    if not any(key in attrs for key in _EXCEPTION_TEXT_KEYS):
        return event
    clean = {
        key: scrub_exception_text(value)
        if key in _EXCEPTION_TEXT_KEYS and isinstance(value, str)
        else value
        for key, value in attrs.items()
    }
    return Event(event.name, clean, event.timestamp)


def scrub_span(span: Any) -> Any:
    """``span`` itself, or a copy whose exception events and error description (which
    instrumentations fill with ``str(exc)``) went through :func:`scrub_exception_text`."""
    events = getattr(span, "events", ())
    status = getattr(span, "status", None)
    description = getattr(status, "description", None)
    if not description and not any(event.name == "exception" for event in events):
        return span
    return replaced_span(
        span,
        events=tuple(_scrub_event(event) for event in events),
        status=Status(status.status_code, scrub_exception_text(description))
        if status is not None and description
        else span.status,
    )


def replaced_span(
    span: Any,
    *,
    attributes: Any = None,
    events: Any = None,
    status: Any = None,
) -> ReadableSpan:
    """A copy of the finished ``span`` with the given fields replaced (``ReadableSpan`` is
    immutable and the SDK has no copy-with-changes)."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes if attributes is None else attributes,
        events=span.events if events is None else events,
        links=span.links,
        kind=span.kind,
        status=span.status if status is None else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )
