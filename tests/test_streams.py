"""Which requests are long-lived streams, from their SERVER span's attributes."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latency_ledger.model import AttributeValue, Span, SpanKind
from latency_ledger.streams import GRPC_STREAM, SSE, WEBSOCKET, stream_kind


def server(attrs: Mapping[str, AttributeValue], name: str = "op") -> Span:
    return Span(
        trace_id="t",
        span_id="s",
        parent_span_id="",
        name=name,
        kind=SpanKind.SERVER,
        start_ns=0,
        end_ns=1,
        is_error=False,
        attributes=dict(attrs),
        service="svc",
    )


@pytest.mark.parametrize(
    ("attrs", "name", "expected"),
    [
        # The OTel demo's flagd: Connect and gRPC EventStream.
        ({"rpc.system": "connect_rpc", "rpc.method": "EventStream"}, "x", GRPC_STREAM),
        ({"rpc.system.name": "grpc", "rpc.method": "StreamLogs"}, "x", GRPC_STREAM),
        ({"rpc.system": "grpc"}, "k8s.Pods/WatchPods", GRPC_STREAM),
        ({"component": "gRPC"}, "/chat.Chat/Subscribe", GRPC_STREAM),
        ({"rpc.system": "grpc", "rpc.method": "server_streaming_call"}, "x", GRPC_STREAM),
        # Unary methods, and names that only contain the letters.
        ({"rpc.system": "grpc", "rpc.method": "ListStreams"}, "x", ""),
        ({"rpc.system": "grpc", "rpc.method": "GetUpstream"}, "x", ""),
        ({"rpc.system": "grpc", "rpc.method": "Get"}, "StreamService/Get", ""),
        # A method name without an RPC system says nothing.
        ({"http.request.method": "GET", "http.route": "/stream"}, "GET /stream", ""),
        # Websockets: 101, a ws scheme, the Upgrade header, the span name.
        ({"http.response.status_code": 101}, "GET /ws", WEBSOCKET),
        ({"http.status_code": "101"}, "GET /ws", WEBSOCKET),
        ({"url.scheme": "wss"}, "/ws", WEBSOCKET),
        ({"http.scheme": "ws"}, "/ws", WEBSOCKET),
        ({"http.request.header.upgrade": ("WebSocket",)}, "GET /ws", WEBSOCKET),
        ({}, "websocket /chat", WEBSOCKET),
        # Server-sent events.
        ({"http.response.header.content-type": ("text/event-stream; charset=utf-8",)}, "x", SSE),
        ({"http.response.header.content_type": "text/event-stream"}, "x", SSE),
        ({"http.request.header.accept": ("text/event-stream",)}, "x", SSE),
        ({"http.response.header.content-type": ("text/html",)}, "x", ""),
        # Odd types count as absent.
        ({"rpc.system": 5, "http.status_code": True, "url.scheme": ("ws",)}, "Stream", ""),
    ],
)
def test_stream_kind(attrs: Mapping[str, AttributeValue], name: str, expected: str) -> None:
    assert stream_kind(server(attrs, name)) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "http.response.status_code",
                "http.status_code",
                "url.scheme",
                "http.scheme",
                "http.route",
                "rpc.method",
            ]
        ),
        st.one_of(
            st.sampled_from([101, "101", " 101 ", 200, "ws", "WSS", "https", True, 101.0]),
            st.none(),
        ),
    ),
    st.sampled_from(["op", "WebSocket /chat", "websocketx", "GET /"]),
)
def test_the_usual_request_answers_as_the_full_rules_do(
    attrs: dict[str, AttributeValue], name: str
) -> None:
    """Without an RPC, component or header attribute only status, scheme and name are
    looked at (a shortcut); with an inert ``component`` added the full rules run: the
    answers agree."""
    assert stream_kind(server(attrs, name)) == stream_kind(
        server({**attrs, "component": None}, name)
    )
