"""Endpoint naming: route templates, and ids collapsed when there is none."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from latency_ledger.endpoint import (
    collapse_path,
    endpoint_name,
    is_catch_all,
    regex_route,
    split_url,
)
from latency_ledger.model import AttributeValue, Span, SpanKind


def server(attrs: Mapping[str, AttributeValue], name: str = "request") -> Span:
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
        service="shop",
    )


def test_route_template_is_used_as_recorded() -> None:
    span = server(
        {"http.request.method": "GET", "http.route": "/orders/{order_id}", "url.path": "/orders/7"}
    )
    assert endpoint_name(span) == ("GET", "GET /orders/{order_id}")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/orders/123", "/orders/{id}"),
        ("/orders/9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f", "/orders/{uuid}"),
        ("/orders/9F8E7D6C5B4A4C3D9E2F1A0B9C8D7E6F/items", "/orders/{uuid}/items"),
        ("/objects/507f1f77bcf86cd799439011", "/objects/{id}"),  # Mongo ObjectId
        ("/files/deadbeefcafebabe", "/files/{id}"),
        ("/t/dGhpcyBpcyBhIHRva2VuMTIz", "/t/{id}"),  # base64
        ("/users/user-12345/posts/2024-01-31", "/users/{id}/posts/{id}"),
        ("/api/v2/health", "/api/v2/health"),
        ("/api/products/1YMWWN1N4O", "/api/products/{id}"),  # OpenTelemetry demo product ids
        ("/api/products/OLJCESPC7Z", "/api/products/{id}"),
        ("/api/checkout/UTF8MB4", "/api/checkout/UTF8MB4"),  # too short for a code
        ("/docs/Base64Encoded", "/docs/Base64Encoded"),  # mixed case: a word
        ("/oauth2/callback", "/oauth2/callback"),
        ("/orders/12?secret=abc#frag", "/orders/{id}"),
        ("/users/alice@example.com/reset", "/users/{email}/reset"),  # no digit, still personal
        ("/u/bob.smith%40mail.example", "/u/{email}"),  # percent-encoded
        ("/", "/"),
        ("", ""),
    ],
)
def test_collapse_path(path: str, expected: str) -> None:
    assert collapse_path(path) == expected


def test_no_route_collapses_the_path_of_either_convention() -> None:
    new = server({"http.request.method": "get", "url.path": "/orders/123"})
    old = server({"http.method": "GET", "http.target": "/orders/456?page=2"})
    uuid = server(
        {"http.method": "GET", "http.target": "/orders/9f8e7d6c-5b4a-4c3d-9e2f-1a0b9c8d7e6f"}
    )
    assert endpoint_name(new) == endpoint_name(old) == ("GET", "GET /orders/{id}")
    assert endpoint_name(uuid) == ("GET", "GET /orders/{uuid}")


def test_full_url_without_credentials_or_query() -> None:
    span = server(
        {"http.method": "POST", "http.url": "https://u:pw@shop.example:8443/carts/77?x=1"}
    )
    assert endpoint_name(span) == ("POST", "POST /carts/{id}")
    assert split_url("https://u:pw@Shop.Example:8443/carts/77?x=1") == (
        "shop.example:8443",
        "/carts/77",
    )
    assert split_url("http://host") == ("host", "/")
    assert split_url("http://host?q=secret") == ("host", "/")
    assert split_url("/relative/1?x") == ("", "/relative/1?x")


def test_span_name_is_the_last_resort_and_is_collapsed() -> None:
    span = server({"http.method": "GET"}, name="GET /api/items/991?success=false")
    assert endpoint_name(span) == ("GET", "GET /api/items/{id}")
    grpc = server({"rpc.system": "grpc"}, name="shop.Orders/Get")
    assert endpoint_name(grpc) == ("", "shop.Orders/Get")
    # Istio/Envoy name server spans "host:port/path": the host part is kept.
    envoy = server({}, name="reviews.bookinfo.svc.cluster.local:9080/reviews/0")
    assert endpoint_name(envoy) == ("", "reviews.bookinfo.svc.cluster.local:9080/reviews/{id}")


def test_methods() -> None:
    assert (
        endpoint_name(server({"http.request.method": "_OTHER", "http.route": "/"}))[0] == "_OTHER"
    )
    assert (
        endpoint_name(server({"http.request.method": "GE T<x>", "http.route": "/"}))[0] == "_OTHER"
    )
    assert endpoint_name(server({"http.request.method": "patch", "http.route": "/"})) == (
        "PATCH",
        "PATCH /",
    )


def test_hostile_input_is_bounded() -> None:
    # A megabyte path is truncated, never echoed whole; odd attribute types are ignored.
    span = server({"http.method": "GET", "url.path": "/a" * 500_000, "http.route": 5})
    method, endpoint = endpoint_name(span)
    assert method == "GET"
    assert len(endpoint) < 600


@pytest.mark.parametrize(
    ("pattern", "template", "catch_all"),
    [
        (r"^orders/(?P<order_id>\d+)/$", "/orders/{order_id}/", False),
        (r"^api/v1/items/([^/]+)/$", "/api/v1/items/{param}/", False),
        (r"^blog/(?P<slug>[-\w]+)/$", "/blog/{slug}/", False),
        (r"^about\.html$", "/about.html", False),
        (r"^$", "/", False),
        (r"^((?:[\w\-]+/)*)$", "/{path}", True),  # Wagtail's page-serving pattern
        (r"^(?P<url>.*)$", "/{url}", True),
        (r"^static/(?P<path>.+)$", "/static/{path}", True),
        (r"^files/(.*)", "/files/{path}", True),
    ],
)
def test_regex_routes_become_templates(pattern: str, template: str, catch_all: bool) -> None:
    assert regex_route(pattern) == (template, catch_all)


@pytest.mark.parametrize(
    ("route", "catch_all"),
    [
        ("/{path:path}", True),  # Starlette
        ("/<path:url>", True),  # Flask, Django
        ("/{*rest}", True),  # ASP.NET
        ("/*filepath", True),  # Gin, httprouter
        ("/:slug*", True),  # Express / path-to-regexp
        ("/[...slug]", True),  # Next.js
        ("/[[...slug]]", True),
        ("/*", True),
        ("/docs/**", True),
        ("/orders/{id}", False),
        ("/{page}", False),
        ("/", False),
        ("/orders/<int:order_id>", False),
    ],
)
def test_catch_all_routes_are_recognised(route: str, catch_all: bool) -> None:
    assert is_catch_all(route) is catch_all


def test_a_regex_route_is_never_shown_raw() -> None:
    span = server({"http.request.method": "GET", "http.route": r"^orders/(?P<order_id>\d+)/$"})
    assert endpoint_name(span) == ("GET", "GET /orders/{order_id}/")


def test_catch_all_split_by_page_type_then_view_then_path() -> None:
    base = {"http.request.method": "GET", "http.route": r"^((?:[\w\-]+/)*)$"}
    page = server(base | {"ledger.page_type": "blog.BlogPage", "url.path": "/blog/a-post/"})
    view = server(
        base | {"code.namespace": "cms.views", "code.function": "serve", "url.path": "/x/"}
    )
    new_view = server(base | {"code.function.name": "cms.views.serve_page"})
    about = server(base | {"url.path": "/about/"})
    order = server(base | {"http.target": "/orders/12345/?coupon=x"})
    home = server(base | {"url.path": "/"})
    assert endpoint_name(page)[1] == "GET /{path} → blog.BlogPage"
    assert endpoint_name(view)[1] == "GET /{path} → cms.views.serve"
    assert endpoint_name(new_view)[1] == "GET /{path} → cms.views.serve_page"
    assert endpoint_name(about)[1] == "GET /{path} → /about/"
    assert endpoint_name(order)[1] == "GET /{path} → /orders/{id}/"  # ids still collapsed
    assert endpoint_name(home)[1] == "GET /{path} → /"
    # Nothing more said: the catch-all stays one endpoint, shown as a template.
    assert endpoint_name(server(base))[1] == "GET /{path}"
