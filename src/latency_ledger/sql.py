"""SQL statement text -> a grouping key without literals, and a redacted display form.

Contract: both functions are pure, total (any text gives an answer, never an exception)
and linear in the length of their input. Statements come from traces and are
attacker-controlled, so the scanner is a hand-written loop: every step consumes what it
looks at, the regexes are anchored one-token matches without nested repetition or
one-character searches, and closing delimiters are found with ``str.find`` (an
unterminated string, comment or dollar quote runs to the end of the text instead of
being retried). Input beyond :data:`MAX_STATEMENT_CHARS` is not looked at, and outputs
are capped.

``normalize_statement`` is the key findings group calls by (pg_stat_statements and
Sentry's N+1 fingerprint do the same job):

- string, number, hex, bit and dollar-quoted literals and ``TRUE``/``FALSE`` become
  ``?``; so do driver placeholders (``%s``, ``%(name)s``, ``$1``, ``:name``, ``@p1``,
  ``?``), so one statement groups the same whether it was recorded before or after
  binding;
- a sign directly before a number in value position is part of the literal;
- ``IN (...)``, ``ARRAY[...]`` and ``VALUES (...), (...)`` lists of values collapse to
  ``(?...)`` / ``[?...]`` whatever their length;
- comments go, whitespace runs become one space (none just inside brackets or before
  a comma), keywords keep the case they were written in.

``redact_statement`` only swaps literals for ``?`` and drops comments (they can carry
values, e.g. sqlcommenter tags), keeping the layout as written, for display.

``statement_fingerprint`` turns a normalized statement into a stable 63-bit int, the key
of the collector's per-request statement tallies.

Dialect choices: ``"..."`` and backticks quote identifiers (kept); a backslash escapes
the next character inside ``'...'`` (MySQL; in PostgreSQL only ``E'...'`` does, and a
PostgreSQL string ending in a backslash is rare), and ``''`` is an escaped quote; but
``ESCAPE '\\'`` (a LIKE's escape character, as Django writes every ``contains`` lookup on
SQLite and Oracle) is the one-backslash string it is in every dialect, not an open quote.
"""

from __future__ import annotations

import re
from hashlib import blake2b
from types import MappingProxyType
from typing import Final

MAX_STATEMENT_CHARS: Final = 32_768  # input looked at; the rest is treated as cut off
MAX_OUTPUT_CHARS: Final = 8_192  # normalized / redacted text kept, then "..."
ELLIPSIS: Final = "..."

# Token kinds.
_WS: Final = 0
_COMMENT: Final = 1
_NUMBER: Final = 2  # a numeric literal
_LITERAL: Final = 3  # any other literal (string, hex/bit string, dollar quote, boolean)
_PLACEHOLDER: Final = 4
_WORD: Final = 5  # keyword or bare identifier
_QUOTED: Final = 6  # quoted identifier
_PUNCT: Final = 7
_OP: Final = 8

_VALUE_KINDS: Final = frozenset({_NUMBER, _LITERAL, _PLACEHOLDER})

# Whitespace | a word (keyword or bare identifier) | a bracket or separator.
_COMMON_RE: Final = re.compile(r"(\s+)|([^\W\d][\w$]*)|([(),;\[\]])")
_NUMBER_RE: Final = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DOLLAR_NUM_RE: Final = re.compile(r"\$\d+")
_DOLLAR_TAG_RE: Final = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_PYFORMAT_RE: Final = re.compile(r"%(?:\([^)\n]{0,64}\))?s")
_NAMED_RE: Final = re.compile(r"[:@][^\W\d]\w*")
# Next character that can end (or escape inside) a quoted run.
_STOP_SQ: Final = re.compile(r"['\\]")
_STOP: Final = MappingProxyType({q: re.compile(q) for q in ("'", '"', "`")})

_STRING_PREFIXES: Final = frozenset({"E", "N", "B", "X"})
_BOOLEANS: Final = frozenset({"TRUE", "FALSE"})
# Words after which a sign starts a value (``WHERE x BETWEEN -1 AND 1``).
_SIGN_AFTER_WORDS: Final = frozenset(
    {"AND", "OR", "NOT", "BETWEEN", "WHEN", "THEN", "ELSE", "SELECT", "WHERE", "LIMIT",
     "OFFSET", "RETURNING", "LIKE", "IS", "IN", "VALUES", "SET", "BY", "ON", "HAVING"}
)  # fmt: skip
# Words that may stand in a value list without breaking the collapse.
_LIST_WORDS: Final = frozenset({"NULL", "DEFAULT"})
_NO_SPACE_AFTER: Final = frozenset({"(", "[", "."})
_NO_SPACE_BEFORE: Final = frozenset({")", "]", ",", ".", ";"})

_Token = tuple[int, str]


def _quoted_end(text: str, start: int, quote: str, backslash: bool) -> int:
    """Index just past the closing quote of a run opened before ``start`` (or the end)."""
    stop = _STOP_SQ if backslash else _STOP[quote]
    n = len(text)
    i = start
    while True:
        m = stop.search(text, i)
        if m is None:
            return n
        j = m.start()
        # A backslash escape, or a doubled quote (an escaped quote): skip both characters.
        if text[j] == "\\" or (j + 1 < n and text[j + 1] == quote):
            i = j + 2
        else:
            return j + 1


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    append = tokens.append
    n = len(text)
    i = 0
    while i < n:
        # Fast path: whitespace, words and brackets are most of any statement.
        m = _COMMON_RE.match(text, i)
        if m is not None:
            end = m.end()
            group = m.lastindex
            if group == 1:
                append((_WS, m.group()))
            elif group == 3:
                append((_PUNCT, m.group()))
            else:
                word = m.group()
                if (
                    len(word) == 1
                    and end < n
                    and text[end] == "'"
                    and word.upper() in _STRING_PREFIXES
                ):
                    end = _quoted_end(text, end + 1, "'", backslash=True)
                    append((_LITERAL, text[i:end]))
                elif len(word) in (4, 5) and word.upper() in _BOOLEANS:
                    append((_LITERAL, word))
                else:
                    append((_WORD, word))
            i = end
            continue
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "'":
            if text.startswith("'\\'", i) and _after_escape(tokens):
                end = i + 3  # LIKE ... ESCAPE '\' (Django on SQLite): one backslash
            else:
                end = _quoted_end(text, i + 1, "'", backslash=True)
            append((_LITERAL, text[i:end]))
        elif c in '"`':
            end = _quoted_end(text, i + 1, c, backslash=False)
            append((_QUOTED, text[i:end]))
        elif c == "-" and nxt == "-":
            end = text.find("\n", i)
            end = n if end < 0 else end
            append((_COMMENT, text[i:end]))
        elif c == "/" and nxt == "*":
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            append((_COMMENT, text[i:end]))
        elif c.isdigit() or (c == "." and nxt.isdigit()):
            m = _NUMBER_RE.match(text, i)
            end = m.end() if m else i + 1
            append((_NUMBER, text[i:end]))
        elif c == "$":
            end = _dollar(text, i, tokens)
        elif c == "%":
            m = _PYFORMAT_RE.match(text, i)
            end = m.end() if m else i + 1
            append((_PLACEHOLDER if m else _OP, text[i:end]))
        elif c == ":" and nxt == ":":
            end = i + 2
            append((_OP, "::"))
        elif c in ":@" and not (i and (text[i - 1].isalnum() or text[i - 1] in "_:@")):
            m = _NAMED_RE.match(text, i)
            end = m.end() if m else i + 1
            append((_PLACEHOLDER if m else _OP, text[i:end]))
        elif c == "?":
            end = i + 1
            append((_PLACEHOLDER, "?"))
        elif c == ".":
            end = i + 1
            append((_PUNCT, c))
        else:
            end = i + 1
            append((_OP, c))
        i = end
    return tokens


def _after_escape(tokens: list[_Token]) -> bool:
    """The last token but whitespace and comments is the word ESCAPE."""
    for kind, value in reversed(tokens):
        if kind not in (_WS, _COMMENT):
            return kind == _WORD and value.upper() == "ESCAPE"
    return False


def _dollar(text: str, i: int, tokens: list[_Token]) -> int:
    """``$1`` placeholders and ``$tag$...$tag$`` literals; a lone ``$`` is an operator."""
    m = _DOLLAR_NUM_RE.match(text, i)
    if m:
        tokens.append((_PLACEHOLDER, m.group()))
        return m.end()
    m = _DOLLAR_TAG_RE.match(text, i)
    if m:
        close = text.find(m.group(), m.end())
        end = len(text) if close < 0 else close + len(m.group())
        tokens.append((_LITERAL, text[i:end]))
        return end
    tokens.append((_OP, "$"))
    return i + 1


def _cap(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_STATEMENT_CHARS:
        return text, False
    return text[:MAX_STATEMENT_CHARS], True


def _cap_output(text: str) -> str:
    if len(text) <= MAX_OUTPUT_CHARS:
        return text
    return text[: MAX_OUTPUT_CHARS - len(ELLIPSIS)] + ELLIPSIS


def _is_list_item(token: _Token) -> bool:
    kind, text = token
    return kind in _VALUE_KINDS or (kind == _WORD and text.upper() in _LIST_WORDS)


def _list_end(sig: list[_Token], start: int, close: str, cut: bool) -> int:
    """Index past ``close`` if ``sig[start:]`` is ``value (, value)* close``, else -1.

    Scans only value and comma tokens, so no token is scanned by two lists. Running
    into the end of cut-off text counts as a closed list.
    """
    n = len(sig)
    i = start
    while True:
        if i >= n:
            return n if cut and i > start else -1
        if not _is_list_item(sig[i]):
            return -1
        i += 1
        if i >= n:
            return n if cut else -1
        if sig[i] == (_PUNCT, ","):
            i += 1
        elif sig[i] == (_PUNCT, close):
            return i + 1
        else:
            return -1


def _rows_end(sig: list[_Token], start: int, cut: bool) -> int:
    """Index past ``(values), (values)...`` starting at ``start``, else -1."""
    n = len(sig)
    i = start
    end = -1
    while i < n and sig[i] == (_PUNCT, "("):
        row_end = _list_end(sig, i + 1, ")", cut)
        if row_end < 0:
            return end
        end = i = row_end
        if i < n and sig[i] == (_PUNCT, ",") and i + 1 < n and sig[i + 1] == (_PUNCT, "("):
            i += 1
        else:
            break
    return end


def _significant(tokens: list[_Token]) -> tuple[list[_Token], list[bool]]:
    """Tokens without whitespace and comments, values as ``?``, signs folded in."""
    sig: list[_Token] = []
    space: list[bool] = []
    pending = False
    for kind, text in tokens:
        if kind in (_WS, _COMMENT):
            pending = True
            continue
        if kind == _NUMBER and sig and sig[-1] in ((_OP, "-"), (_OP, "+")):
            before = sig[-2] if len(sig) >= 2 else None
            if (
                before is None
                or before[0] == _OP
                or before in ((_PUNCT, "("), (_PUNCT, ","), (_PUNCT, "["))
                or (before[0] == _WORD and before[1].upper() in _SIGN_AFTER_WORDS)
            ):
                sig.pop()
                pending = space.pop() or pending
                sig.append((_PLACEHOLDER, "?"))
                space.append(pending)
                pending = False
                continue
        sig.append((_PLACEHOLDER, "?") if kind in _VALUE_KINDS else (kind, text))
        space.append(pending)
        pending = False
    return sig, space


def normalize_statement(sql: str) -> str:
    """The statement's shape for grouping: literals and lists collapsed, comments gone."""
    text, cut = _cap(sql)
    sig, space = _significant(_tokenize(text))
    out: list[str] = []
    n = len(sig)
    i = 0
    while i < n:
        kind, tok = sig[i]
        collapsed = ""
        end = -1
        if kind == _WORD and i + 1 < n:
            upper = tok.upper()
            if upper == "IN" and sig[i + 1] == (_PUNCT, "("):
                end, collapsed = _list_end(sig, i + 2, ")", cut), " (?...)"
            elif upper == "ARRAY" and sig[i + 1] == (_PUNCT, "["):
                end, collapsed = _list_end(sig, i + 2, "]", cut), "[?...]"
            elif upper == "VALUES":
                end, collapsed = _rows_end(sig, i + 1, cut), " (?...)"
        if out and space[i] and out[-1][-1:] not in _NO_SPACE_AFTER and tok not in _NO_SPACE_BEFORE:
            out.append(" ")
        out.append(tok)
        if end >= 0:
            out.append(collapsed)
            i = end
        else:
            i += 1
    return _cap_output("".join(out))


def statement_fingerprint(normalized: str) -> int:
    """A normalized statement's fingerprint: the first 63 bits of its BLAKE2b digest, never
    0 (0 stands for statements folded together). The same in every process and version
    (Python's ``hash`` of a str is not), so the collector's per-request tallies
    (``ledger.statement.fingerprints``) meet the statements of kept trees offline; 63
    bits: an OTLP int64, and two of 100,000 distinct statements collide with odds ~1e-9."""
    digest = blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 1) or 1


def redact_statement(sql: str) -> str:
    """The statement as written with every literal replaced by ``?`` and comments removed."""
    text, cut = _cap(sql)
    out: list[str] = []
    for kind, tok in _tokenize(text):
        if kind == _COMMENT:
            if out and not out[-1][-1:].isspace():
                out.append(" ")
        elif kind in (_NUMBER, _LITERAL):
            out.append("?")
        else:
            out.append(tok)
    result = "".join(out).strip()
    if cut:
        result += ELLIPSIS
    return _cap_output(result)
