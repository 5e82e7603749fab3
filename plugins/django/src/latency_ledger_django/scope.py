"""A Django request as the shared collector reads it: its ASGI-shaped scope and its route.

Contract: :func:`request_scope` builds, from any ``HttpRequest`` (WSGI or ASGI), the
mapping ``Collector.begin``/``finish`` read (method, path, scheme, server address, the
``traceparent``/``tracestate`` headers); :func:`route_template` names a resolved request
by its URLconf route (``/orders/<int:order_id>``, plus the script prefix), never by the
raw path, cut to ``MAX_ROUTE_CHARS``, and ``""`` when nothing resolved. Nested inside the
ASGI ``LedgerMiddleware``, :func:`name_outer` hands that middleware the route through the
ASGI scope (its ``route`` key, when unset): the one write to a request. The one cache
(resolver route -> template) is bounded.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

MAX_ROUTE_CHARS = 512
_ROUTES: dict[str, str] = {}  # resolver route -> "/route"; routes come from the URLconf


def _normalized(route: str) -> str:
    normal = _ROUTES.get(route)
    if normal is None:
        bare = route.removeprefix("^")
        if bare.endswith("$") and not bare.endswith("\\$"):
            bare = bare[:-1]
        normal = ("/" + bare.removesuffix("\\Z"))[:MAX_ROUTE_CHARS]
        if len(_ROUTES) < 4096:  # a URLconf built at run time must not grow it forever
            _ROUTES[route] = normal
    return normal


def route_template(request: HttpRequest, *, with_prefix: bool = True) -> str:
    """``/orders/<int:order_id>`` (plus the script prefix) for a resolved request, else ``""``."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not isinstance(route, str):
        return ""
    normal = _normalized(route)
    if with_prefix:
        path, info = request.path, request.path_info
        if len(path) > len(info) and path.endswith(info):
            prefix = path[: len(path) - len(info)].rstrip("/")
            return f"{prefix}{normal}"[:MAX_ROUTE_CHARS]
    return normal


def request_scope(request: HttpRequest) -> dict[str, Any]:
    """The ASGI-scope-shaped mapping ``Collector.begin``/``finish`` read, from any request:
    method, path, scheme, server address and the ``traceparent``/``tracestate`` headers."""
    meta = request.META
    scope: dict[str, Any] = {
        "method": request.method or "",
        "path": request.path,
        "scheme": _scheme(request, meta),
    }
    host = meta.get("SERVER_NAME")
    if host:
        port = meta.get("SERVER_PORT")
        try:
            scope["server"] = (str(host), int(port) if port else None)
        except (TypeError, ValueError):
            scope["server"] = (str(host), None)
    parent = meta.get("HTTP_TRACEPARENT")
    if isinstance(parent, str):
        headers = [(b"traceparent", parent.encode("latin-1", "replace"))]
        state = meta.get("HTTP_TRACESTATE")
        if isinstance(state, str):
            headers.append((b"tracestate", state.encode("latin-1", "replace")))
        scope["headers"] = headers
    return scope


def _scheme(request: HttpRequest, meta: Any) -> str:
    # ``request.scheme`` reads a setting and the environ through two calls per request;
    # the WSGI environ says it directly unless a proxy header setting may override it
    if not settings.SECURE_PROXY_SSL_HEADER:
        scheme = meta.get("wsgi.url_scheme")
        if isinstance(scheme, str) and scheme:
            return scheme
    return request.scheme or "http"


class _ScopeRoute:
    """``scope["route"]`` as the ASGI collector reads it (``.path``, as Starlette's route).

    Only for the nested case (Django's ASGI app inside the ASGI ``LedgerMiddleware``),
    whose ``Collector.finish`` call is not ours to give ``route=``.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def name_outer(request: HttpRequest) -> None:
    """Inside the ASGI ``LedgerMiddleware``: hand it the route through the ASGI scope."""
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict) and "route" not in scope:
        route = route_template(request, with_prefix=False)
        if route:
            scope["route"] = _ScopeRoute(route)
