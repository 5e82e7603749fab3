"""The shop's schema, engine and seed data (SQLAlchemy 2.0 ORM, sync engine).

Contract: :func:`make_engine` opens ``SHOP_DATABASE_URL`` (a SQLite file in the temp
directory when unset; any SQLAlchemy URL, e.g. ``postgresql+psycopg://postgres@127.0.0.1/test``,
when set); :func:`seed` fills empty tables with the same deterministic data every time
(``SEED_*`` sizes), so endpoint costs are comparable across runs. Tables are prefixed
``shop_`` so the shop can share a database with other things.

The stock ledger (``shop_stock_moves``: every receipt, sale and return of every product)
has no index on ``product_id``, as ledgers grown by appending often lack one: a product's
stock level is a scan of the whole ledger, real work inside the database engine (SQLite's,
in this process; PostgreSQL's elsewhere), ``SEED_STOCK_MOVES`` rows per lookup.
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

from sqlalchemy import Engine, ForeignKey, String, Text, create_engine, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from .stock import stock_moves

SEED_PRODUCTS = 600
SEED_CUSTOMERS = 200
SEED_ORDERS = 400
SEED_ITEMS_PER_ORDER = (20, 32)  # distinct products per order: the N+1 endpoint's N
SEED_STOCK_MOVES = 150_000  # rows each stock lookup scans: ~5-8 ms of database work

# Words the seed builds product names from; the load script searches for them.
WORDS = (
    "alpine", "amber", "arctic", "basalt", "bamboo", "cedar", "cobalt", "copper", "coral",
    "crimson", "desert", "ember", "fjord", "glacier", "granite", "harbor", "indigo", "ivory",
    "jade", "juniper", "lagoon", "linen", "maple", "marble", "meadow", "midnight", "moss",
    "nickel", "oak", "onyx", "orchid", "pebble", "pine", "quartz", "river", "saffron",
    "sage", "slate", "spruce", "summit", "tundra", "velvet", "walnut", "willow", "zephyr",
)  # fmt: skip
KINDS = ("kettle", "lamp", "chair", "mug", "backpack", "jacket", "blanket", "desk", "pan", "rug")


class Base(DeclarativeBase):
    pass


class Product(Base):
    __tablename__ = "shop_products"

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(40))
    price_cents: Mapped[int]
    weight_grams: Mapped[int]


class Customer(Base):
    __tablename__ = "shop_customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    country: Mapped[str] = mapped_column(String(2))
    postcode: Mapped[str] = mapped_column(String(12))
    loyalty_tier: Mapped[int]


class Order(Base):
    __tablename__ = "shop_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("shop_customers.id"))
    status: Mapped[str] = mapped_column(String(16))
    customer: Mapped[Customer] = relationship(lazy="select")
    items: Mapped[list[OrderItem]] = relationship(lazy="select", order_by="OrderItem.id")


class OrderItem(Base):
    __tablename__ = "shop_order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("shop_orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("shop_products.id"))
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]
    product: Mapped[Product] = relationship(lazy="select")


class StockMove(Base):
    __tablename__ = "shop_stock_moves"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Not indexed, on purpose (module docstring): a stock lookup scans the ledger.
    product_id: Mapped[int] = mapped_column(ForeignKey("shop_products.id"))
    quantity: Mapped[int]
    reason: Mapped[str] = mapped_column(String(12))


def database_url() -> str:
    url = os.environ.get("SHOP_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{Path(tempfile.gettempdir()) / 'latency-ledger-shop.sqlite3'}"


def make_engine(url: str | None = None) -> Engine:
    url = url or database_url()
    if url.startswith("sqlite"):
        # FastAPI runs sync endpoints in a thread pool: connections cross threads.
        return create_engine(url, connect_args={"check_same_thread": False})
    return create_engine(url, pool_size=10, max_overflow=10)


def seed(engine: Engine) -> int:
    """Create the tables and fill them if empty; returns the number of products."""
    Base.metadata.create_all(engine)
    products = _seed_catalog(engine)
    _seed_stock_moves(engine)  # after the products it refers to
    return products


def _seed_catalog(engine: Engine) -> int:
    with Session(engine) as session:
        existing = session.scalar(select(func.count()).select_from(Product)) or 0
        if existing:
            return existing
        rng = random.Random(20261126)
        products = [
            {
                "id": i,
                "sku": f"SKU-{i:05d}",
                "name": f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(KINDS)}",
                "description": " ".join(rng.choices(WORDS, k=40)),
                "category": rng.choice(KINDS),
                "price_cents": rng.randrange(299, 49_999),
                "weight_grams": rng.randrange(80, 9_000),
            }
            for i in range(1, SEED_PRODUCTS + 1)
        ]
        customers = [
            {
                "id": i,
                "name": f"customer {i}",
                "country": rng.choice(("DE", "FR", "NL", "US", "GB", "SE")),
                "postcode": f"{rng.randrange(10_000, 99_999)}",
                "loyalty_tier": rng.randrange(0, 4),
            }
            for i in range(1, SEED_CUSTOMERS + 1)
        ]
        orders = []
        items = []
        for order_id in range(1, SEED_ORDERS + 1):
            orders.append(
                {
                    "id": order_id,
                    "customer_id": rng.randrange(1, SEED_CUSTOMERS + 1),
                    "status": rng.choice(("paid", "shipped", "delivered")),
                }
            )
            count = rng.randrange(*SEED_ITEMS_PER_ORDER)
            for product_id in rng.sample(range(1, SEED_PRODUCTS + 1), count):
                items.append(
                    {
                        "order_id": order_id,
                        "product_id": product_id,
                        "quantity": rng.randrange(1, 5),
                        "unit_price_cents": products[product_id - 1]["price_cents"],
                    }
                )
        try:
            session.execute(insert(Product), products)
            session.execute(insert(Customer), customers)
            session.execute(insert(Order), orders)
            session.execute(insert(OrderItem), items)
            session.commit()
        except IntegrityError:  # another worker seeded the same rows first
            session.rollback()
        return SEED_PRODUCTS


def _seed_stock_moves(engine: Engine) -> None:
    """The stock ledger, filled on its own (a database seeded before it existed gets it)."""
    with Session(engine) as session:
        if session.scalar(select(func.count()).select_from(StockMove)):
            return
        moves = [
            {"product_id": product_id, "quantity": quantity, "reason": reason}
            for product_id, quantity, reason in stock_moves(SEED_STOCK_MOVES, SEED_PRODUCTS)
        ]
        try:
            session.execute(insert(StockMove), moves)
            session.commit()
        except IntegrityError:  # another worker seeded the same rows first
            session.rollback()
