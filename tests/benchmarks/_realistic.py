"""The realistic endpoint the server benchmarks share: a JSON API over PostgreSQL.

``GET /api``: one customer's order page, as a typical JSON API serves it: in one
transaction (BEGIN ... COMMIT) four statements (the customer, its last 10 orders, those
orders' lines joined to their products, an UPDATE of the customer's last-seen time),
the rows validated into pydantic models and the response built from them (~1-2 ms of
CPU per request on these machines). FastAPI runs it through SQLAlchemy Core on psycopg
(a ``def`` endpoint), Django through its ORM (bench_django.py); both answer the same
JSON. The customer is chosen from the request's counter so each request reads other
rows, as a real endpoint does.

The tables live in the PostgreSQL database ``test`` on 127.0.0.1:5432 (``PG_DSN``),
prefixed ``llbench_`` and created (idempotently) by :func:`make_pg`.
"""

from __future__ import annotations

import itertools
import os
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DSN = os.environ.get("PG_DSN", "host=127.0.0.1 port=5432 dbname=test user=postgres")
CUSTOMERS = 200
ORDERS_PER_CUSTOMER = 12
LINES_PER_ORDER = 3
PRODUCTS = 50

# SQLAlchemy Core text (FastAPI); Django runs the same through its ORM
SQL_CUSTOMER = "SELECT id, name, email, tier FROM llbench_customer WHERE id = :id"
SQL_ORDERS = (
    "SELECT id, placed_at, status, total FROM llbench_order WHERE customer_id = :id "
    "ORDER BY placed_at DESC LIMIT 10"
)
SQL_LINES = (
    "SELECT l.order_id, p.sku, p.title, l.quantity, l.unit_price FROM llbench_line l "
    "JOIN llbench_product p ON p.id = l.product_id WHERE l.order_id = ANY(:orders) "
    "ORDER BY l.order_id, l.id"
)
SQL_TOUCH = "UPDATE llbench_customer SET last_seen = now() WHERE id = :id"


def make_pg() -> None:
    """Create and fill the tables once (they are read-mostly: only ``last_seen`` moves)."""
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('llbench_line') IS NOT NULL").fetchone()
        if row and row[0]:
            count = conn.execute("SELECT count(*) FROM llbench_line").fetchone()
            if count and count[0] == CUSTOMERS * ORDERS_PER_CUSTOMER * LINES_PER_ORDER:
                return
        conn.execute(
            "DROP TABLE IF EXISTS llbench_line, llbench_order, llbench_product, llbench_customer"
        )
        conn.execute(
            "CREATE TABLE llbench_customer (id int PRIMARY KEY, name text, email text, "
            "tier text, last_seen timestamptz)"
        )
        conn.execute(
            "CREATE TABLE llbench_product (id int PRIMARY KEY, sku text, title text, "
            "price numeric(10,2))"
        )
        conn.execute(
            "CREATE TABLE llbench_order (id int PRIMARY KEY, customer_id int, "
            "placed_at timestamptz, status text, total numeric(12,2))"
        )
        conn.execute("CREATE INDEX ON llbench_order (customer_id, placed_at)")
        conn.execute(
            "CREATE TABLE llbench_line (id int PRIMARY KEY, order_id int, product_id int, "
            "quantity int, unit_price numeric(10,2))"
        )
        conn.execute("CREATE INDEX ON llbench_line (order_id)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO llbench_customer VALUES (%s, %s, %s, %s, now())",
                [
                    (i, f"Customer {i}", f"c{i}@example.com", ("gold", "silver")[i % 2])
                    for i in range(1, CUSTOMERS + 1)
                ],
            )
            cur.executemany(
                "INSERT INTO llbench_product VALUES (%s, %s, %s, %s)",
                [
                    (i, f"SKU-{i:04d}", f"Product {i}", Decimal(i) + Decimal("0.99"))
                    for i in range(PRODUCTS)
                ],
            )
            orders, lines = [], []
            for c in range(1, CUSTOMERS + 1):
                for k in range(ORDERS_PER_CUSTOMER):
                    oid = c * 100 + k
                    orders.append((oid, c, f"2026-01-{k + 1:02d}", "shipped", Decimal("12.50")))
                    for j in range(LINES_PER_ORDER):
                        lines.append(
                            (oid * 10 + j, oid, (oid + j) % PRODUCTS, j + 1, Decimal("4.25"))
                        )
            cur.executemany("INSERT INTO llbench_order VALUES (%s, %s, %s, %s, %s)", orders)
            cur.executemany("INSERT INTO llbench_line VALUES (%s, %s, %s, %s, %s)", lines)
        conn.execute("ANALYZE")


class Line(BaseModel):
    sku: str
    title: str
    quantity: int
    unit_price: Decimal


class Order(BaseModel):
    id: int
    placed_at: datetime
    status: str
    total: Decimal
    lines: list[Line]


class Customer(BaseModel):
    id: int
    name: str
    email: str
    tier: str


class OrderPage(BaseModel):
    customer: Customer
    orders: list[Order]
    items: int
    spent: Decimal


_counter = itertools.count()


def next_customer() -> int:
    return next(_counter) % CUSTOMERS + 1


def build_page(customer: Any, orders: Any, lines: Any) -> OrderPage:
    """The response from the rows (tuples in the statements' column order)."""
    by_order: dict[int, list[Line]] = {}
    for order_id, sku, title, quantity, unit_price in lines:
        by_order.setdefault(order_id, []).append(
            Line(sku=sku, title=title, quantity=quantity, unit_price=unit_price)
        )
    models = [
        Order(id=o[0], placed_at=o[1], status=o[2], total=o[3], lines=by_order.get(o[0], []))
        for o in orders
    ]
    items = sum(line.quantity for order in models for line in order.lines)
    spent = sum((line.unit_price * line.quantity for o in models for line in o.lines), Decimal(0))
    return OrderPage(
        customer=Customer(id=customer[0], name=customer[1], email=customer[2], tier=customer[3]),
        orders=models,
        items=items,
        spent=spent,
    )
