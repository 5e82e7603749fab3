"""Take secrets out of span attributes before any span processor sees them.

Contract: pure functions, never raise on any input (statements and URLs are
attacker-controlled), output is a string.

- :func:`sanitize_sql` turns every literal (strings, dollar-quoted bodies, numbers) into
  ``?`` and drops comments; identifiers, keywords and bind placeholders (``?``, ``$1``,
  ``%s``, ``%(name)s``, ``:name``) stay, so ORM statements come out unchanged.
- :func:`strip_query_values` keeps scheme, host, port, path and the query's keys; it drops
  credentials, every query value and the fragment.
- :func:`sanitize_attribute` applies the right one to a span attribute by its key (old and
  new semantic conventions).
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit, urlunsplit

_SQL_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*(?:.*?\*/|.*\Z))
    | (?P<ident>"(?:[^"]|"")*"|`[^`]*`)
    | (?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<string>[NnBbXx]?'(?:[^']|'')*(?:'|\Z))
    | (?P<dollar>\$\$.*?(?:\$\$|\Z)|\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<param>\$\d+|%\([^)]*\)s|%s|:[A-Za-z_]\w*|\?)
    | (?P<word>[A-Za-z_][A-Za-z_0-9$]*)
    | (?P<number>0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    """,
    re.DOTALL | re.VERBOSE,
)
_LITERALS = frozenset({"estring", "string", "dollar", "number"})
_SPACES = re.compile(r"\s+")

# Attribute keys carrying a statement or a URL, in old and new semantic conventions.
SQL_KEYS = frozenset({"db.statement", "db.query.text"})
URL_KEYS = frozenset({"http.url", "url.full"})


def _replace(match: re.Match[str]) -> str:
    group = match.lastgroup
    if group in _LITERALS:
        return "?"
    if group == "comment":
        return " "
    return match.group()


# Cached: an app runs the same few hundred statements over and over, and the regex pass
# costs tens of microseconds on a long one. Bounded, so unique statements cannot grow it.
@lru_cache(maxsize=1024)
def sanitize_sql(statement: str) -> str:
    """``statement`` with every literal replaced by ``?`` and comments removed."""
    return _SPACES.sub(" ", _SQL_TOKEN.sub(_replace, statement)).strip()


def strip_query_values(url: str) -> str:
    """``url`` without credentials, query values or fragment; keys are kept (``?q=&page=``)."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc.rpartition("@")[2]
        query = "&".join(item.split("=", 1)[0] + "=" for item in parts.query.split("&") if item)
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:  # e.g. a bad IPv6 netloc: keep only what cannot hold a value
        return url.split("?", 1)[0].split("#", 1)[0].rpartition("@")[2]


def sanitize_attribute(key: str, value: object) -> object:
    """The value to record for attribute ``key``: sanitized when it holds SQL or a URL."""
    if isinstance(value, str):
        if key in SQL_KEYS:
            return sanitize_sql(value)
        if key in URL_KEYS:
            return strip_query_values(value)
    return value
