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
``GET /orders/{order_id}``              N+1: loads the order, then its items, then each
                                        item's product with its own query (20-31 lazy
                                        loads), then the customer.
``POST /checkout``                      CPU-bound: one query for the cart's products, then
                                        ~20 ms of pure-Python pricing on any machine
                                        (pricing.py calibrates it at startup).
``GET /shipping/{order_id}/quote``      downstream HTTP: one small query, then a call to
                                        the rates service (``SHOP_DOWNSTREAM_URL``,
                                        examples/downstream.py, ~25 ms).
``GET /health``                         trivial.
======================================  ==================================================

Sync (``def``) endpoints use the sync engine from FastAPI's thread pool; the shipping
endpoint is ``async`` and awaits an ``httpx.AsyncClient``.
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
from sqlalchemy import Engine, func, or_, select
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


def _order_detail(session: Session, order_id: int) -> dict[str, object] | None:
    order = session.get(Order, order_id)
    if order is None:
        return None
    lines = []
    total = 0
    for item in order.items:  # one query for the items...
        product = item.product  # ...and one more per item: the N+1 this endpoint shows
        lines.append(
            {
                "product_id": product.id,
                "sku": product.sku,
                "name": product.name,
                "quantity": item.quantity,
                "unit_price_cents": item.unit_price_cents,
                "line_total_cents": item.quantity * item.unit_price_cents,
            }
        )
        total += item.quantity * item.unit_price_cents
    customer = order.customer
    return {
        "order_id": order.id,
        "status": order.status,
        "customer": {"id": customer.id, "name": customer.name, "country": customer.country},
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
