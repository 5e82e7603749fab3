"""Endpoint and route naming: a span -> ``("GET", "GET /orders/{order_id}")``.

Contract: pure functions over attacker-controlled text. A reported endpoint is never a
raw path with ids in it: the route template (``http.route``) when the server recorded
one, else the path (``url.path`` / ``http.target`` / the path of ``url.full`` /
``http.url``, query stripped) with id-like segments collapsed, else the span name
collapsed the same way. Work is linear in the input, and inputs are capped so a hostile
trace cannot make names (or the number of distinct names) grow without bound per span.

A route recorded as a regular expression (Django's ``re_path``, ``^orders/(?P<id>[0-9]+)/$``)
is shown as a template (``/orders/{id}/``), never as the raw regex. A *catch-all* route
(its last part takes any rest of the path: ``{path:path}``, ``<path:url>``, ``{*rest}``,
``:slug*``, ``[...slug]``, ``*``, or a regex group that can match ``/``; a CMS serving
every page through one view) is split into what the trace says more precisely, first
found of: a page type the app recorded (``ledger.page_type``), the function that
handled it (``code.function.name``, or ``code.namespace`` + ``code.function``), else the
page's own path with ids collapsed. The split endpoint reads
``"GET /{path} → /about/"``; :data:`SPLIT_MARK` separates the two, and
``analyze`` caps how many splits one catch-all route gets (``MAX_SPLITS``).
"""

from __future__ import annotations

import re

from latency_ledger.model import Attributes, Span

# Long routes are truncated, not rejected: the prefix still groups requests usefully.
MAX_PATH_CHARS = 512
MAX_METHOD_CHARS = 20
OTHER_METHOD = "_OTHER"  # what the HTTP semantic conventions use for unknown methods


def attr_str(attrs: Attributes, *keys: str) -> str:
    """The first non-empty string value among ``keys`` ("" when none)."""
    for key in keys:
        value = attrs.get(key)
        if value.__class__ is str and value:
            return str(value)
    return ""


def attr_port(attrs: Attributes, *keys: str) -> str:
    """A port recorded as an int or a decimal string, as text ("" when none)."""
    for key in keys:
        value = attrs.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
            return str(value)
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 5:
            return value
    return ""


def http_method(attrs: Attributes) -> str:
    """The request method, uppercase; ``""`` when the span has none."""
    raw = attr_str(attrs, "http.request.method", "http.method")
    if not raw:
        return ""
    method = raw.upper()
    if method == OTHER_METHOD:
        return method
    if len(method) > MAX_METHOD_CHARS or not method.isascii() or not method.isalpha():
        return OTHER_METHOD
    return method


# Precompiled character-class patterns: linear time on any input, and C-speed, since
# every request and outgoing call goes through here.
_DIGIT = re.compile(r"[0-9]")
_DIGIT_RUN = re.compile(r"[0-9]{4}")
_ID_HINT = re.compile(r"[0-9@]|[a-fA-F]{16}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}"
)
_TOKEN = re.compile(r"[A-Za-z0-9_\-+=.~]+")


_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#]*)([^?#]*)")


def collapse_segment(segment: str) -> str:
    """One path segment, or the segment itself when it does not look like an id."""
    # Fast paths first (str methods, no regex): most segments are words or numbers.
    if segment.isalpha() or not segment:
        # Only a long letter-only hex string ("deadbeefcafebabe") is an id.
        if len(segment) >= 16 and _HEX.fullmatch(segment):
            return "{id}"
        return segment
    if segment.isdigit() and segment.isascii():
        return "{id}"
    if "@" in segment or "%40" in segment:
        return "{email}"  # an address in a path is personal data, never a route
    if _DIGIT.search(segment) is None:
        return segment  # "app-directory", "v_x": words with punctuation
    if len(segment) in (32, 36) and _UUID.fullmatch(segment):
        return "{uuid}"
    if len(segment) >= 12 and _HEX.fullmatch(segment):
        return "{id}"  # object ids, hashes
    if len(segment) >= 16 and _TOKEN.fullmatch(segment):
        return "{id}"  # base64-ish tokens and slugs with numbers
    if _DIGIT_RUN.search(segment):
        return "{id}"  # "order-12345", dates
    if len(segment) >= 8 and segment.isalnum() and segment.isascii() and segment.upper() == segment:
        return "{id}"  # SKU-style upper-case codes with digits: "1YMWWN1N4O", "OLJCESPC7Z"
    return segment


def collapse_path(path: str) -> str:
    """``/orders/123/items/9f8e...`` -> ``/orders/{id}/items/{uuid}``; query dropped."""
    path = path[:MAX_PATH_CHARS].partition("?")[0].partition("#")[0]
    if _ID_HINT.search(path) is None:
        return path  # no digit and no long hex run: nothing to collapse
    # The first segment is "" for a path, or a host[:port] / "METHOD " for a span name
    # such as "reviews:9080/ratings/7": never an id.
    first, *rest = path.split("/")
    return "/".join([first, *[collapse_segment(segment) for segment in rest]])


def split_url(url: str) -> tuple[str, str]:
    """``(host[:port], path)`` of an absolute URL, without userinfo, query or fragment."""
    match = _URL.match(url, 0, MAX_PATH_CHARS * 2)
    if match is None:
        return "", url[: MAX_PATH_CHARS * 2]
    netloc, path = match.groups()
    # Credentials in a URL must never reach a report.
    return netloc.rpartition("@")[2].lower(), path or "/"


SPLIT_MARK = " → "  # between a catch-all route and what it was split by
MAX_SPLITS = 20  # split endpoints per catch-all route; the rest are pooled (analyze)
OTHER_SPLIT = "(other pages)"
PAGE_TYPE = "ledger.page_type"  # what an app or plugin records to name a CMS page's kind
MAX_DETAIL_CHARS = 120

# The last segment of a template route that takes the rest of the path, by framework:
# Starlette {p:path}, Flask/Django <path:p>, ASP.NET/Gin {*p} and *p, Express/path-to-
# regexp :p* and :p+ and (.*), Next.js [...p] and [[...p]], bare * and **.
_CATCH_ALL_SEGMENT = re.compile(
    r"\{[^{}/]*:path\}|<path:[^<>/]*>|\{\*[^{}/]*\}|\*[A-Za-z_]\w*|:[A-Za-z_]\w*[*+]"
    r"|\[\[?\.\.\.[^\]/]*\]\]?|\*\*?|\{[^{}/]*\*\}|\(\.[*+]\)"
)
_REGEX_HINT = re.compile(r"^\^|\$$|\(\?P?<|\(\?:|\\[dwsS]")
_NEGATED_CLASS = re.compile(r"\[\^[^\]]*\]")
_QUANTIFIER = re.compile(r"[*+?]|\{\d*,?\d*\}")


def _group_end(text: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``text[start]`` (len if none)."""
    depth = 0
    i = start
    in_class = False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text)


def _swallows_slash(body: str) -> bool:
    """Whether a regex group's body can match a ``/`` (so it takes the rest of a path)."""
    body = _NEGATED_CLASS.sub("", body)
    return "/" in body or ".*" in body or ".+" in body or "\\S" in body


def regex_route(pattern: str) -> tuple[str, bool]:
    """A route regex -> ``(template, catch_all)``: ``^orders/(?P<id>\\d+)/$`` ->
    ``("/orders/{id}/", False)``. Linear in the pattern; anything it cannot read as
    literal text becomes a ``{param}``."""
    text = pattern[:MAX_PATH_CHARS].removeprefix("^")
    for suffix in ("$", "\\Z", "\\z"):
        text = text.removesuffix(suffix)
    out: list[str] = []
    catch_all = False
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1] if not text[i + 1].isalnum() else "{param}")
            i += 2
            continue
        if c in "([" or (c == "." and text[i + 1 : i + 2] in ("*", "+")):
            if c == "(":
                end = _group_end(text, i)
                body = text[i + 1 : end]
            elif c == "[":
                end = text.find("]", i + 1)
                end = len(text) if end < 0 else end
                body = text[i : end + 1]
            else:
                end, body = i, ".*"
            name = "param"
            if body.startswith("?P<") and ">" in body:
                name = body[3 : body.index(">")] or name
            elif body.startswith("?<") and ">" in body and body[2] not in "=!":
                name = body[2 : body.index(">")] or name
            i = end + 1
            quantified = _QUANTIFIER.match(text, i)
            if quantified is not None:
                i = quantified.end()
            swallows = _swallows_slash(body) or (
                c == "." or (quantified is not None and "/" in body)
            )
            catch_all = swallows
            out.append("{" + ("path" if swallows and name == "param" else name) + "}")
            continue
        if c in "?*+|":
            i += 1
            continue
        catch_all = False if c == "/" else catch_all
        out.append(c)
        i += 1
    template = "".join(out)
    return ("/" + template.lstrip("/")) if not template.startswith("/") else template, catch_all


def is_catch_all(route: str) -> bool:
    """Whether a template route's last segment takes any rest of the path."""
    last = route.rstrip("/").rpartition("/")[2] or route
    return _CATCH_ALL_SEGMENT.fullmatch(last) is not None


def _route(attrs: Attributes) -> tuple[str, bool]:
    """``(http.route as a template, whether it is a catch-all)``; ``("", False)`` if none."""
    route = attr_str(attrs, "http.route")[:MAX_PATH_CHARS]
    if not route:
        return "", False
    if _REGEX_HINT.search(route):
        return regex_route(route)
    return route, is_catch_all(route)


def _split_detail(attrs: Attributes) -> str:
    """What a catch-all request was, more precisely (module docstring); "" if nothing."""
    page = attr_str(attrs, PAGE_TYPE)
    if page:
        return page[:MAX_DETAIL_CHARS]
    function = attr_str(attrs, "code.function.name")
    if not function:
        name = attr_str(attrs, "code.function")
        namespace = attr_str(attrs, "code.namespace")
        function = f"{namespace}.{name}" if namespace and name else name
    if function:
        return function[:MAX_DETAIL_CHARS]
    path = attr_str(attrs, "url.path", "http.target")
    if not path:
        url = attr_str(attrs, "url.full", "http.url")
        path = split_url(url)[1] if url else ""
    return collapse_path(path)[:MAX_DETAIL_CHARS] if path else ""


def route_template(span: Span) -> str:
    """The span's route: ``http.route`` as a template (a catch-all one split by what the
    request was), else a collapsed path or name."""
    attrs = span.attributes
    route, catch_all = _route(attrs)
    if route:
        if catch_all:
            detail = _split_detail(attrs)
            if detail and detail != route:
                return f"{route}{SPLIT_MARK}{detail}"
        return route
    path = attr_str(attrs, "url.path", "http.target")
    if not path:
        url = attr_str(attrs, "url.full", "http.url")
        if url:
            path = split_url(url)[1]
    if path:
        return collapse_path(path)
    return collapse_path(span.name)


def named_by_route(attrs: Attributes) -> bool:
    """Whether :func:`endpoint_name` of a span with these attributes depends on nothing
    but its method attributes and ``http.route``: a route template, not a catch-all
    (which is split by more of the request), so a caller may remember the name by them."""
    route, catch_all = _route(attrs)
    return bool(route) and not catch_all


def endpoint_name(span: Span) -> tuple[str, str]:
    """``(method, "METHOD route")`` for a request span; method ``""`` when not HTTP."""
    method = http_method(span.attributes)
    route = route_template(span)
    if not method:
        return "", route
    # Span names like "GET /orders/{id}" already carry the method.
    if route.startswith(method + " "):
        return method, route
    return method, f"{method} {route}"
