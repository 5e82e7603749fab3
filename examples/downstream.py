"""A stand-in for another service: a shipping-rates API that answers after ~50 ms.

Contract: a bare ASGI app (no framework, so its own cost is tiny) serving
``GET /rates?weight_grams=N&country=CC`` -> JSON ``{"carrier", "price_cents", "days"}``
after ``DOWNSTREAM_DELAY_S`` (default 0.05) of non-blocking waiting, as a real remote
service would; any other path is a 404. ``GET /health`` answers at once. Run it with
``uvicorn --app-dir examples downstream:app --port 8001``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

DELAY_S = float(os.environ.get("DOWNSTREAM_DELAY_S", "0.05"))


def quote_rate(weight_grams: int, country: str) -> dict[str, object]:
    """The rate the stub quotes: deterministic, so callers can check it."""
    zone = 1 if country in ("DE", "NL", "FR") else 2 if country in ("GB", "SE") else 3
    return {
        "carrier": ("parcelpost", "eurofreight", "globalship")[zone - 1],
        "price_cents": 350 * zone + weight_grams // 100 * 12,
        "days": zone + 1,
    }


async def _respond(send: Send, status: int, body: dict[str, object]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/health":
        await _respond(send, 200, {"status": "ok"})
        return
    if path != "/rates":
        await _respond(send, 404, {"detail": "not found"})
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        weight = int(query.get("weight_grams", ["0"])[0])
    except ValueError:
        await _respond(send, 422, {"detail": "weight_grams must be an integer"})
        return
    country = query.get("country", ["DE"])[0][:2].upper()
    await asyncio.sleep(DELAY_S)
    await _respond(send, 200, quote_rate(weight, country))
