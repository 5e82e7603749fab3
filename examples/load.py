"""Drive the example shop with a realistic mix of requests, bounded in count and time.

Contract: :func:`run_load` sends requests to ``base_url`` (loopback only: 127.0.0.0/8,
localhost or ::1, anything else is a ValueError) from ``concurrency`` asyncio workers
sharing one httpx client, until ``duration_s`` has passed or ``max_requests`` were sent,
whichever is first, then returns the count per endpoint plus ``errors`` (transport
failures and 5xx answers). ``on_progress`` gets the elapsed fraction in [0, 1], at most
about 20 times a second and once with 1.0 at the end. The mix, with ids and search
words drawn from a seeded generator so runs are comparable:

    60% GET /orders/{id}          (N+1, database-bound: the shop's hot page)
    12% GET /products/search?q=   (database-bound)
    15% POST /checkout            (CPU-bound)
     8% GET /shipping/{id}/quote  (downstream HTTP)
     5% GET /health

The order page is more than half of the requests and, by design, the slowest endpoint
(its N+1 of stock-ledger scans, several times the rates stub's wait), so the overall
median request is an order page and the overall verdict reads the same every run.

Run: ``python examples/load.py http://127.0.0.1:8000 --duration 20 --concurrency 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import random
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

MIX = (
    ("order", 60),
    ("search", 12),
    ("checkout", 15),
    ("shipping", 8),
    ("health", 5),
)
SEARCH_WORDS = ("oak", "slate", "amber", "willow", "quartz", "linen", "cedar", "moss", "onyx")
# Ranges of the seeded data (examples/shop/db.py); /health reports the same numbers.
ORDERS = 400
PRODUCTS = 600
CUSTOMERS = 200
PROGRESS_INTERVAL_S = 0.05


def _check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"load is only sent to this machine (127.0.0.1, ::1, localhost): {base_url}")


def _request(kind: str, rng: random.Random) -> tuple[str, str, dict[str, object] | None]:
    """(method, path, json body) for one request of ``kind``."""
    if kind == "order":
        return "GET", f"/orders/{rng.randrange(1, ORDERS + 1)}", None
    if kind == "search":
        return "GET", f"/products/search?q={rng.choice(SEARCH_WORDS)}", None
    if kind == "checkout":
        lines = [
            {"product_id": pid, "quantity": rng.randrange(1, 4)}
            for pid in rng.sample(range(1, PRODUCTS + 1), rng.randrange(2, 12))
        ]
        body = {"customer_id": rng.randrange(1, CUSTOMERS + 1), "items": lines}
        return "POST", "/checkout", body
    if kind == "shipping":
        return "GET", f"/shipping/{rng.randrange(1, ORDERS + 1)}/quote", None
    return "GET", "/health", None


async def _run(
    base_url: str,
    duration_s: float,
    concurrency: int,
    max_requests: int,
    on_progress: Callable[[float], None] | None,
    seed: int,
    transport: httpx.AsyncBaseTransport | None,
) -> dict[str, int]:
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIX]
    weights = [weight for _, weight in MIX]
    counts: Counter[str] = Counter()
    sent = 0
    start = time.monotonic()
    deadline = start + duration_s
    last_progress = start

    def progress(now: float) -> None:
        nonlocal last_progress
        if on_progress is not None and now - last_progress >= PROGRESS_INTERVAL_S:
            last_progress = now
            on_progress(min(1.0, (now - start) / duration_s))

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=10.0, limits=limits, transport=transport
    ) as client:

        async def worker() -> None:
            nonlocal sent
            while True:
                now = time.monotonic()
                if now >= deadline or sent >= max_requests:
                    return
                sent += 1
                kind = rng.choices(kinds, weights)[0]
                method, path, body = _request(kind, rng)
                try:
                    response = await client.request(method, path, json=body)
                except httpx.HTTPError:
                    counts["errors"] += 1
                else:
                    counts[kind] += 1
                    if response.status_code >= 500:
                        counts["errors"] += 1
                progress(time.monotonic())

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if on_progress is not None:
        on_progress(1.0)
    return {kind: counts[kind] for kind in (*kinds, "errors")}


def run_load(
    base_url: str,
    *,
    duration_s: float,
    concurrency: int = 8,
    on_progress: Callable[[float], None] | None = None,
    max_requests: int = 100_000,
    seed: int = 20261126,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, int]:
    """Send the mix to ``base_url`` for ``duration_s`` seconds; counts per endpoint.

    ``transport`` replaces the network (tests pass an ``httpx.ASGITransport``).
    """
    _check_loopback(base_url)
    if duration_s <= 0 or concurrency < 1 or max_requests < 1:
        raise ValueError("duration_s > 0, concurrency >= 1 and max_requests >= 1 are needed")
    return asyncio.run(
        _run(
            base_url.rstrip("/"),
            duration_s,
            concurrency,
            max_requests,
            on_progress,
            seed,
            transport,
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default 10)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--max-requests", type=int, default=100_000)
    args = parser.parse_args(argv)

    def show(fraction: float) -> None:
        print(f"\r{fraction * 100:5.1f}%", end="", flush=True)

    counts = run_load(
        args.base_url,
        duration_s=args.duration,
        concurrency=args.concurrency,
        on_progress=show,
        max_requests=args.max_requests,
    )
    print()
    for kind, count in counts.items():
        print(f"{kind:>9} {count}")


if __name__ == "__main__":
    main()
