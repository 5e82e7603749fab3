"""Which requests are long-lived streams, not request/response calls.

Contract: :func:`stream_kind` looks at a request's SERVER span and returns ``"grpc
stream"``, ``"websocket"`` or ``"server-sent events"``, or ``""`` for an ordinary
request. Pure, and never raises on odd attribute types. A stream's span lasts as long as
the client stays connected (a gRPC ``EventStream`` of 37 s, a websocket of an hour): its
duration is not a latency, so the analysis lists streams separately and keeps them out of
percentiles, findings and verdicts.

Rules, from what instrumentations record (README, "What a request is"):

- gRPC / Connect stream: an ``rpc.system`` (or ``rpc.system.name``) span, or one with
  ``component=grpc`` (OpenTracing), whose method (``rpc.method``, else the span name
  after its last ``/``) has the word Stream, Streaming, Watch, Subscribe or Listen in it
  (``EventStream``, ``StreamLogs``, ``WatchPods``; not ``ListStreams``). gRPC spans do
  not say whether a method streams; the method's name is what there is.
- WebSocket: response status 101 (Switching Protocols), a ``ws``/``wss`` scheme
  (``url.scheme``, ``http.scheme``: what the ASGI instrumentation records for a
  websocket scope), an ``Upgrade: websocket`` request header
  (``http.request.header.upgrade``), or a span name starting with "websocket".
- Server-sent events: a ``text/event-stream`` response content type
  (``http.response.header.content-type`` / ``content_type``) or ``Accept`` header.
"""

from __future__ import annotations

import re

from latency_ledger.model import Attributes, AttributeValue, Span

GRPC_STREAM = "grpc stream"
WEBSOCKET = "websocket"
SSE = "server-sent events"

_STREAM_WORDS = frozenset({"stream", "streaming", "watch", "subscribe", "listen"})
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")
_WS_SCHEMES = frozenset({"ws", "wss"})
_CONTENT_TYPE_KEYS = ("http.response.header.content-type", "http.response.header.content_type")
_ACCEPT_KEYS = ("http.request.header.accept",)
_UPGRADE_KEYS = ("http.request.header.upgrade",)
_HEADER_KEYS = frozenset(_CONTENT_TYPE_KEYS + _ACCEPT_KEYS + _UPGRADE_KEYS)
# every attribute whose presence alone can make a request a gRPC stream or an SSE one
_HINT_KEYS = _HEADER_KEYS | {"rpc.system", "rpc.system.name", "component"}


def _texts(attrs: Attributes, keys: tuple[str, ...]) -> list[str]:
    """The string values under ``keys``; captured headers are lists of strings."""
    out: list[str] = []
    for key in keys:
        value: AttributeValue = attrs.get(key)
        if isinstance(value, str):
            out.append(value.lower())
        elif isinstance(value, tuple):
            out.extend(v.lower() for v in value if isinstance(v, str))
    return out


def _is_stream_method(name: str) -> bool:
    method = name.rsplit("/", 1)[-1][:200]
    return any(word.lower() in _STREAM_WORDS for word in _WORDS.findall(method))


def _status(attrs: Attributes) -> str:
    value = attrs.get("http.response.status_code", attrs.get("http.status_code"))
    if isinstance(value, bool):
        return ""
    return str(value).strip() if isinstance(value, int | str) else ""


def stream_kind(span: Span) -> str:
    """The kind of long-lived stream a request span is, or ``""``."""
    attrs = span.attributes
    if _HINT_KEYS.isdisjoint(attrs):
        # The usual request: no RPC, component or header attribute; only its status,
        # scheme and name can still say stream (the same checks as below, in order).
        if _status(attrs) == "101":
            return WEBSOCKET
        scheme = attrs.get("url.scheme") or attrs.get("http.scheme")
        if isinstance(scheme, str) and scheme.lower() in _WS_SCHEMES:
            return WEBSOCKET
        return WEBSOCKET if span.name[:9].lower() == "websocket" else ""
    rpc = attrs.get("rpc.system") or attrs.get("rpc.system.name")
    component = attrs.get("component")
    if (isinstance(rpc, str) and rpc) or (
        isinstance(component, str) and component.lower() == "grpc"
    ):
        method = attrs.get("rpc.method")
        if _is_stream_method(method if isinstance(method, str) and method else span.name):
            return GRPC_STREAM
    if _status(attrs) == "101":
        return WEBSOCKET
    scheme = attrs.get("url.scheme") or attrs.get("http.scheme")
    if isinstance(scheme, str) and scheme.lower() in _WS_SCHEMES:
        return WEBSOCKET
    if span.name[:9].lower() == "websocket":
        return WEBSOCKET
    if _HEADER_KEYS.isdisjoint(attrs):  # the usual request: no header says anything
        return ""
    if any("websocket" in value for value in _texts(attrs, _UPGRADE_KEYS)):
        return WEBSOCKET
    for value in _texts(attrs, _CONTENT_TYPE_KEYS + _ACCEPT_KEYS):
        if value.startswith("text/event-stream"):
            return SSE
    return ""
