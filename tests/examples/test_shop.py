"""The example shop, served bare in-process: every endpoint answers 200 with a plausible body.

Nothing heavy starts: the shop runs through ``httpx.ASGITransport`` on a temporary SQLite
file, its downstream rates service is examples/downstream.py through another
ASGITransport (it really waits its ~50 ms), and the load script is pointed at a stub app.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def examples() -> Iterator[Any]:
    sys.path.insert(0, str(EXAMPLES))
    try:
        import downstream
        import load
        from shop import app as shop_app
        from shop import db

        yield type(
            "Examples", (), {"downstream": downstream, "load": load, "app": shop_app, "db": db}
        )
    finally:
        sys.path.remove(str(EXAMPLES))


def _call_shop(examples: Any, db_path: Path, calls: list[tuple[str, str, Any]]) -> list[Any]:
    async def run() -> list[Any]:
        rates = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=examples.downstream.app), base_url="http://rates"
        )
        app = examples.app.create_app(database_url=f"sqlite:///{db_path}", downstream=rates)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://shop"
            ) as client,
        ):
            responses = [await client.request(m, path, json=body) for m, path, body in calls]
        await rates.aclose()
        return responses

    return asyncio.run(run())


def test_every_endpoint_answers(examples: Any, tmp_path: Path) -> None:
    db = examples.db
    cart = {
        "customer_id": 5,
        "items": [{"product_id": 3, "quantity": 2}, {"product_id": 9, "quantity": 1}],
    }
    health, search, order, checkout, shipping, missing = _call_shop(
        examples,
        tmp_path / "shop.sqlite3",
        [
            ("GET", "/health", None),
            ("GET", "/products/search?q=oak", None),
            ("GET", "/orders/7", None),
            ("POST", "/checkout", cart),
            ("GET", "/shipping/7/quote", None),
            ("GET", "/orders/999999", None),
        ],
    )
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "products": db.SEED_PRODUCTS,
        "customers": db.SEED_CUSTOMERS,
        "orders": db.SEED_ORDERS,
    }

    assert search.status_code == 200
    found = search.json()
    assert found["count"] == len(found["results"]) == 20  # "oak" is in many descriptions
    sold = [row["sold"] for row in found["results"]]
    assert sold == sorted(sold, reverse=True)

    assert order.status_code == 200
    detail = order.json()
    low, high = db.SEED_ITEMS_PER_ORDER
    assert low <= len(detail["lines"]) < high
    assert len({line["product_id"] for line in detail["lines"]}) == len(detail["lines"])
    assert detail["total_cents"] == sum(line["line_total_cents"] for line in detail["lines"])

    assert checkout.status_code == 200
    receipt = checkout.json()
    assert [line["product_id"] for line in receipt["lines"]] == [3, 9]
    assert receipt["total_cents"] == (
        receipt["subtotal_cents"] - receipt["discount_cents"] + receipt["tax_cents"]
    )
    assert 0 <= receipt["risk_score"] < 1000

    assert shipping.status_code == 200
    quote = shipping.json()
    expected = examples.downstream.quote_rate(quote["weight_grams"], quote["country"])
    assert {k: quote[k] for k in expected} == expected

    assert missing.status_code == 404


def test_checkout_rejects_unknown_products_and_empty_carts(examples: Any, tmp_path: Path) -> None:
    unknown, empty = _call_shop(
        examples,
        tmp_path / "shop.sqlite3",
        [
            (
                "POST",
                "/checkout",
                {"customer_id": 1, "items": [{"product_id": 99999, "quantity": 1}]},
            ),
            ("POST", "/checkout", {"customer_id": 1, "items": []}),
        ],
    )
    assert unknown.status_code == 404
    assert empty.status_code == 422


def test_n_plus_one_endpoint_runs_one_query_per_item(examples: Any, tmp_path: Path) -> None:
    # Expected: 1 (order and customer) + 1 (items) + one per item (product and stock).
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    db = examples.db
    engine = db.make_engine(f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    db.seed(engine)
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with Session(engine) as session:
        detail = examples.app._order_detail(session, 11)
    assert detail is not None
    assert len(statements) == 2 + len(detail["lines"])
    engine.dispose()
    # each line's stock is the sum of its product's moves in the ledger, read here
    # with plain sqlite3, and the ledger has no index a lookup could use
    with closing(sqlite3.connect(tmp_path / "shop.sqlite3")) as raw:
        for line in detail["lines"]:
            (expected,) = raw.execute(
                "SELECT coalesce(sum(quantity), 0) FROM shop_stock_moves WHERE product_id = ?",
                (line["product_id"],),
            ).fetchone()
            assert line["in_stock"] == expected
        indexes = raw.execute("PRAGMA index_list('shop_stock_moves')").fetchall()
        (moves,) = raw.execute("SELECT count(*) FROM shop_stock_moves").fetchone()
    assert indexes == []
    assert moves == db.SEED_STOCK_MOVES


def test_load_mix_is_bounded_and_local(examples: Any) -> None:
    seen: Counter[str] = Counter()

    async def stub(scope: Any, receive: Any, send: Any) -> None:
        seen[scope["path"].split("/")[1]] += 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    progress: list[float] = []
    counts = examples.load.run_load(
        "http://127.0.0.1:9",
        duration_s=30.0,
        concurrency=4,
        max_requests=200,
        on_progress=progress.append,
        transport=httpx.ASGITransport(app=stub),
    )
    assert sum(counts.values()) == 200
    assert counts["errors"] == 0
    assert set(counts) == {"order", "search", "checkout", "shipping", "health", "errors"}
    assert counts["order"] > counts["health"]  # 60% vs 5% of 200
    assert seen["orders"] == counts["order"]
    assert seen["checkout"] == counts["checkout"]
    assert progress[-1] == 1.0
    with pytest.raises(ValueError, match="only sent to this machine"):
        examples.load.run_load("http://10.0.0.1:8000", duration_s=1.0)
