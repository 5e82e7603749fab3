"""Where the traces live: a ClickHouse URL -> a connection that runs parameterized SQL.

Contract: :func:`parse_url` accepts exactly two forms and raises ``ConfigError`` with a
one-line message for anything else:

- ``clickhouse://USER[:PASSWORD]@HOST[:PORT]/DB?table=otel_traces`` (HTTP interface,
  port 8123; ``?secure=1`` for HTTPS, port 8443), read with ``clickhouse-connect`` (the
  ``latency-ledger[clickhouse]`` extra). The password may come from ``CLICKHOUSE_PASSWORD``
  instead of the URL.
- ``chdb:///PATH?table=otel_traces`` (``&database=DB``, default ``default``): a ClickHouse
  data directory opened in this process with ``chdb``.

Database and table names must be plain identifiers (letters, digits, ``_``): they are
the only values written into SQL text, backquoted; every other user value travels as a
query parameter (``{name:Type}``). :func:`connect` opens the connection and checks the
table exists; an unreachable server, a missing directory or table, or a missing driver
is one ``LedgerError`` line naming the URL (without its password).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from latency_ledger.errors import ConfigError, LedgerError

SCHEMES = ("clickhouse", "chdb")
DEFAULT_TABLE = "otel_traces"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_QUERY_KEYS = frozenset({"table", "database", "secure"})


def is_database_url(text: str) -> bool:
    """Whether an ``analyze`` input names a ClickHouse table rather than files."""
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """A parsed URL. ``shown`` is the URL as messages print it (no password)."""

    kind: str  # "clickhouse" | "chdb"
    database: str
    table: str
    shown: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    secure: bool = False
    path: str = ""  # chdb's data directory

    @property
    def table_sql(self) -> str:
        """The backquoted ``db.table`` (both validated identifiers)."""
        return f"`{self.database}`.`{self.table}`"


def _identifier(value: str, what: str, url: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ConfigError(f"{url}: {what} {value!r} is not a plain identifier (A-Z, 0-9, _)")
    return value


def parse_url(text: str) -> Source:
    """A ``clickhouse://`` or ``chdb://`` URL -> :class:`Source` (ConfigError if bad)."""
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"{_hide_password(text)}: not a valid URL ({exc})") from None
    shown = _hide_password(text)
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - _QUERY_KEYS)
    if unknown:
        raise ConfigError(f"{shown}: unknown URL parameter {unknown[0]!r} (table, database)")
    table = _identifier(query.get("table", [DEFAULT_TABLE])[-1], "table", shown)
    scheme = parts.scheme.lower()
    if scheme == "chdb":
        if parts.netloc:
            raise ConfigError(f"{shown}: expected chdb:///PATH (three slashes, a local directory)")
        path = unquote(parts.path)
        if not path or path == "/":
            raise ConfigError(f"{shown}: no directory given (chdb:///PATH?table=...)")
        database = _identifier(query.get("database", ["default"])[-1], "database", shown)
        return Source(kind="chdb", database=database, table=table, shown=shown, path=path)
    if scheme != "clickhouse":
        raise ConfigError(f"{shown}: expected a clickhouse:// or chdb:/// URL")
    if not parts.hostname:
        raise ConfigError(f"{shown}: no host given (clickhouse://USER@HOST:8123/DB)")
    secure = query.get("secure", ["0"])[-1].lower() in ("1", "true", "yes")
    path_db = unquote(parts.path.strip("/")) or query.get("database", ["default"])[-1]
    database = _identifier(path_db, "database", shown)
    password = unquote(parts.password or "") or os.environ.get("CLICKHOUSE_PASSWORD", "")
    return Source(
        kind="clickhouse",
        database=database,
        table=table,
        shown=shown,
        host=parts.hostname,
        port=port or (8443 if secure else 8123),
        user=unquote(parts.username or "") or "default",
        password=password,
        secure=secure,
    )


def _hide_password(text: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", text)


class Connection(Protocol):
    """Runs one query with ``{name:Type}`` parameters: ``rows`` streams its rows as lists,
    ``all_rows`` returns them at once (for queries whose result is bounded)."""

    def rows(self, sql: str, params: Mapping[str, object]) -> Iterator[list[Any]]: ...

    def all_rows(self, sql: str, params: Mapping[str, object]) -> list[list[Any]]: ...

    def close(self) -> None: ...


def connect(source: Source) -> Connection:
    """Open ``source`` and check that its table exists (LedgerError otherwise)."""
    connection: Connection
    connection = ChdbConnection(source) if source.kind == "chdb" else HttpConnection(source)
    try:
        found = list(
            connection.rows(
                "SELECT count() FROM system.tables "
                "WHERE database = {db:String} AND name = {t:String}",
                {"db": source.database, "t": source.table},
            )
        )
    except LedgerError:
        connection.close()
        raise
    if not found or not found[0][0]:
        connection.close()
        raise LedgerError(f"{source.shown}: no table {source.database}.{source.table}")
    return connection


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] + ("..." if len(text) > 300 else "")


# ClickHouse's text form of a parameter value (chdb takes parameters as text): a string
# in its escaped format, an array in its quoted format (each element quoted and escaped).
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0"})


def param_text(value: object) -> str:
    if isinstance(value, str):
        return value.translate(_ESCAPES)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_quoted(v) for v in value) + "]"
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _quoted(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.translate(_ESCAPES).replace("'", "\\'") + "'"
    return str(int(value))  # type: ignore[call-overload]


_SETTINGS = " SETTINGS output_format_json_quote_64bit_integers = 0"


class ChdbConnection:
    """ClickHouse's engine in this process, on a data directory (one per process)."""

    def __init__(self, source: Source) -> None:
        try:
            from chdb import session
        except ImportError:
            raise LedgerError(
                f"{source.shown}: reading chdb:// needs the chdb package (pip install chdb)"
            ) from None
        if not Path(source.path).is_dir():
            raise LedgerError(f"{source.shown}: no such directory {source.path}")
        self._shown = source.shown
        try:
            self._session = session.Session(source.path)  # type: ignore[no-untyped-call]
        except Exception as exc:  # chdb raises RuntimeError and its own ChdbError
            raise LedgerError(f"{source.shown}: {_one_line(exc)}") from None

    def rows(self, sql: str, params: Mapping[str, object]) -> Iterator[list[Any]]:
        texts = {name: param_text(value) for name, value in params.items()}
        decode = msgspec.json.Decoder(list[Any]).decode
        stream = None
        try:
            stream = self._session.send_query(sql + _SETTINGS, "JSONCompactEachRow", params=texts)
            for chunk in stream:
                data = chunk.bytes()
                for line in data.splitlines():
                    if line:
                        yield decode(line)
        except Exception as exc:
            raise LedgerError(f"{self._shown}: {_one_line(exc)}") from None
        finally:
            # A stream left unread (its reader stopped early) is cancelled now: left to
            # the garbage collector, its cancellation could hit the next query instead.
            if stream is not None:
                stream.close()  # type: ignore[no-untyped-call]

    def all_rows(self, sql: str, params: Mapping[str, object]) -> list[list[Any]]:
        # Not streamed: chdb 4.4's streaming cancels the recursive queries of tree.py
        # once their result spans several blocks (QUERY_WAS_CANCELLED); its plain query
        # returns them whole.
        texts = {name: param_text(value) for name, value in params.items()}
        decode = msgspec.json.Decoder(list[Any]).decode
        try:
            result = self._session.query(sql + _SETTINGS, "JSONCompactEachRow", params=texts)  # type: ignore[no-untyped-call]
        except Exception as exc:
            raise LedgerError(f"{self._shown}: {_one_line(exc)}") from None
        return [decode(line) for line in result.bytes().splitlines() if line]

    def close(self) -> None:
        self._session.close()  # type: ignore[no-untyped-call]


class HttpConnection:
    """A ClickHouse server over HTTP(S), through clickhouse-connect."""

    def __init__(self, source: Source) -> None:
        try:
            import clickhouse_connect
        except ImportError:
            raise LedgerError(
                f"{source.shown}: reading clickhouse:// needs clickhouse-connect "
                "(pip install 'latency-ledger[clickhouse]')"
            ) from None
        # Its failures become our one-line message; without a handler of the app's own,
        # Python's last-resort handler would print its log records as well.
        logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())
        self._shown = source.shown
        try:
            self._client = clickhouse_connect.get_client(
                host=source.host,
                port=source.port,
                username=source.user,
                password=source.password,
                database=source.database,
                secure=source.secure,
                connect_timeout=10,
            )
        except Exception as exc:  # its OperationalError, DatabaseError, socket errors
            raise LedgerError(f"{source.shown}: {_one_line(exc)}") from None

    def rows(self, sql: str, params: Mapping[str, object]) -> Iterator[list[Any]]:
        try:
            with self._client.query_rows_stream(sql, parameters=dict(params)) as stream:
                for row in stream:
                    yield list(row)
        except Exception as exc:
            raise LedgerError(f"{self._shown}: {_one_line(exc)}") from None

    def all_rows(self, sql: str, params: Mapping[str, object]) -> list[list[Any]]:
        try:
            return [
                list(row) for row in self._client.query(sql, parameters=dict(params)).result_rows
            ]
        except Exception as exc:
            raise LedgerError(f"{self._shown}: {_one_line(exc)}") from None

    def close(self) -> None:
        self._client.close()
