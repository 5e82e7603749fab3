"""Endpoint and route naming: a span -> ``("GET", "GET /orders/{order_id}")``.

Contract: pure functions over attacker-controlled text. A reported endpoint is never a
raw path with ids in it: the route template (``http.route``) when the server recorded
one, else the path (``url.path`` / ``http.target`` / the path of ``url.full`` /
``http.url``, query stripped) with id-like segments collapsed, else the span name
collapsed the same way. Work is linear in the input, and inputs are capped so a hostile
trace cannot make names (or the number of distinct names) grow without bound per span.
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
_ID_HINT = re.compile(r"[0-9]|[a-fA-F]{16}")
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


def route_template(span: Span) -> str:
    """The span's route: ``http.route`` as recorded, else a collapsed path or name."""
    attrs = span.attributes
    route = attr_str(attrs, "http.route")
    if route:
        return route[:MAX_PATH_CHARS]
    path = attr_str(attrs, "url.path", "http.target")
    if not path:
        url = attr_str(attrs, "url.full", "http.url")
        if url:
            path = split_url(url)[1]
    if path:
        return collapse_path(path)
    return collapse_path(span.name)


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
