"""The example shop: a FastAPI app whose endpoints each spend their time one known way.

Contract: ``app`` serves bare, or instrumented by latency-ledger when ``LATENCY_LEDGER=1``
is in the environment, so the same code can be measured with and without the collector.
:func:`create_app` builds a fresh app (its own engine; ``database_url`` and a
``downstream`` client can be injected for tests). Tables are seeded on startup if empty.

Each endpoint is written to be what it says, so a verdict can be checked against it:

======================================  ==================================================
``GET /products/search?q=``             database-bound: a LIKE scan over names and
                                        descriptions joined to every order line and
                                        aggregated; the Python around it is small.
``GET /orders/{order_id}``              N+1, database-bound: loads the order with its
                                        customer, then its items, then each item's product
                                        and stock level with its own query (20-31 of them),
                                        each a scan of the unindexed stock ledger (db.py).
``POST /checkout``                      CPU-bound: one query for the cart's products, then
                                        ~20 ms of pure-Python pricing on any machine
                                        (pricing.py calibrates it at startup).
``GET /shipping/{order_id}/quote``      downstream HTTP: one small query, then a call to
                                        the rates service (``SHOP_DOWNSTREAM_URL``,
                                        examples/downstream.py, ~50 ms).
``GET /health``                         trivial.
======================================  ==================================================

Sync (``def``) endpoints use the sync engine from FastAPI's thread pool; the shipping
endpoint is ``async`` and awaits an ``httpx.AsyncClient``.

Designed so the verdicts hold on any machine and every run: the database-bound endpoints
spend their time in the database engine's own work (scans), which a faster application
runtime does not change, so a slower or faster CPU moves both sides of their ledger alike;
checkout's CPU is calibrated to ~20 ms wherever it runs.
"""

# No "from __future__ import annotations" here: FastAPI must resolve the local DB alias
# in the endpoint signatures at definition time.
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import Engine, bindparam, func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from .db import (
    SEED_CUSTOMERS,
    SEED_ORDERS,
    SEED_PRODUCTS,
    Customer,
    Order,
    OrderItem,
    Product,
    StockMove,
    make_engine,
    seed,
)
from .pricing import price_cart, priced_products, risk_passes

DEFAULT_DOWNSTREAM_URL = "http://127.0.0.1:8001"


class CartLine(BaseModel):
    product_id: int = Field(ge=1)
    quantity: int = Field(ge=1, le=20)


class CheckoutRequest(BaseModel):
    customer_id: int = Field(ge=1)
    items: list[CartLine] = Field(min_length=1, max_length=30)


def _search(session: Session, q: str) -> list[dict[str, object]]:
    pattern = f"%{q.lower()}%"
    sold = func.coalesce(func.sum(OrderItem.quantity), 0).label("sold")
    revenue = func.coalesce(func.sum(OrderItem.quantity * OrderItem.unit_price_cents), 0)
    stmt = (
        select(
            Product.id,
            Product.name,
            Product.category,
            Product.price_cents,
            func.count(OrderItem.id).label("order_lines"),
            sold,
            revenue.label("revenue_cents"),
        )
        .outerjoin(OrderItem, OrderItem.product_id == Product.id)
        .where(
            or_(
                func.lower(Product.name).like(pattern),
                func.lower(Product.description).like(pattern),
            )
        )
        .group_by(Product.id, Product.name, Product.category, Product.price_cents)
        .order_by(sold.desc(), Product.id)
        .limit(20)
    )
    return [dict(row._mapping) for row in session.execute(stmt)]


# One product line of an order, with its stock level: a scan of the unindexed stock
# ledger inside the database (db.py). Run once per line: the N+1 GET /orders/{id} shows.
_IN_STOCK = (
    select(func.coalesce(func.sum(StockMove.quantity), 0))
    .where(StockMove.product_id == Product.id)
    .scalar_subquery()
)
_LINE = select(Product.id, Product.sku, Product.name, _IN_STOCK.label("in_stock")).where(
    Product.id == bindparam("product_id")
)


def _order_detail(session: Session, order_id: int) -> dict[str, object] | None:
    head = session.execute(
        select(Order.id, Order.status, Customer.id, Customer.name, Customer.country)
        .join(Customer, Customer.id == Order.customer_id)
        .where(Order.id == order_id)
    ).first()
    if head is None:
        return None
    items = session.execute(
        select(OrderItem.product_id, OrderItem.quantity, OrderItem.unit_price_cents)
        .where(OrderItem.order_id == order_id)
        .order_by(OrderItem.id)
    ).all()
    lines = []
    total = 0
    for product_id, quantity, unit_price in items:
        product = session.execute(_LINE, {"product_id": product_id}).one()  # one per line
        lines.append(
            {
                "product_id": product.id,
                "sku": product.sku,
                "name": product.name,
                "in_stock": product.in_stock,
                "quantity": quantity,
                "unit_price_cents": unit_price,
                "line_total_cents": quantity * unit_price,
            }
        )
        total += quantity * unit_price
    order_id, status, customer_id, name, country = head
    return {
        "order_id": order_id,
        "status": status,
        "customer": {"id": customer_id, "name": name, "country": country},
        "lines": lines,
        "total_cents": total,
    }


def _checkout(session: Session, request: CheckoutRequest) -> dict[str, object] | None:
    customer = session.get(Customer, request.customer_id)
    cart: dict[int, int] = {}
    for line in request.items:
        cart[line.product_id] = cart.get(line.product_id, 0) + line.quantity
    rows = session.scalars(select(Product).where(Product.id.in_(cart))).all()
    if customer is None or len(rows) != len(cart):
        return None
    products = priced_products(rows)
    return price_cart(
        cart,
        products,
        customer_id=customer.id,
        country=customer.country,
        loyalty_tier=customer.loyalty_tier,
    )


def _shipment(engine: Engine, order_id: int) -> tuple[int, str] | None:
    stmt = (
        select(func.sum(OrderItem.quantity * Product.weight_grams), Customer.country)
        .join(Product, Product.id == OrderItem.product_id)
        .join(Order, Order.id == OrderItem.order_id)
        .join(Customer, Customer.id == Order.customer_id)
        .where(OrderItem.order_id == order_id)
        .group_by(Customer.country)
    )
    with Session(engine) as session:
        row = session.execute(stmt).first()
    return None if row is None else (int(row[0]), str(row[1]))


def create_app(
    *, database_url: str | None = None, downstream: httpx.AsyncClient | None = None
) -> FastAPI:
    engine = make_engine(database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(seed, engine)
        risk_passes()  # calibrated now, not in the first checkout
        client = downstream or httpx.AsyncClient(
            base_url=os.environ.get("SHOP_DOWNSTREAM_URL", DEFAULT_DOWNSTREAM_URL), timeout=5.0
        )
        app.state.downstream = client
        try:
            yield
        finally:
            if downstream is None:
                await client.aclose()
            engine.dispose()

    app = FastAPI(title="latency-ledger example shop", lifespan=lifespan)

    def session() -> Iterator[Session]:
        with Session(engine) as db:
            yield db

    DB = Annotated[Session, Depends(session)]

    @app.get("/health")
    async def health() -> dict[str, object]:
        return {
            "status": "ok",
            "products": SEED_PRODUCTS,
            "customers": SEED_CUSTOMERS,
            "orders": SEED_ORDERS,
        }

    @app.get("/products/search")
    def search_products(
        db: DB, q: Annotated[str, Query(min_length=1, max_length=40)]
    ) -> dict[str, object]:
        results = _search(db, q)
        return {"query": q, "count": len(results), "results": results}

    @app.get("/orders/{order_id}")
    def get_order(db: DB, order_id: int) -> dict[str, object]:
        detail = _order_detail(db, order_id)
        if detail is None:
            raise HTTPException(status_code=404, detail="no such order")
        return detail

    @app.post("/checkout")
    def checkout(db: DB, request: CheckoutRequest) -> dict[str, object]:
        receipt = _checkout(db, request)
        if receipt is None:
            raise HTTPException(status_code=404, detail="unknown customer or product")
        return receipt

    @app.get("/shipping/{order_id}/quote")
    async def shipping_quote(order_id: int) -> dict[str, object]:
        shipment = await run_in_threadpool(_shipment, engine, order_id)
        if shipment is None:
            raise HTTPException(status_code=404, detail="no such order")
        weight, country = shipment
        response = await app.state.downstream.get(
            "/rates", params={"weight_grams": weight, "country": country}
        )
        if response.status_code != 200:
            raise HTTPException(status_code=502, detail="shipping rates unavailable")
        return {"order_id": order_id, "weight_grams": weight, "country": country, **response.json()}

    return app


def build_app() -> FastAPI:
    """The app to serve: instrumented when ``LATENCY_LEDGER=1``."""
    app = create_app()
    if os.environ.get("LATENCY_LEDGER") == "1":
        from latency_ledger.collect import instrument

        app = instrument(app)
    return app


app = build_app()
