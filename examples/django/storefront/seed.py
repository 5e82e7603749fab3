"""Create the tables and fill them once: the same sizes as the FastAPI shop's seed.

Contract: :func:`seed` is idempotent (it does nothing when products exist) and
deterministic (a fixed random seed), so load runs are comparable. 600 products, 200
customers, 400 orders of 20-31 lines: the ranges ``examples/load.py`` draws ids from.
"""

from __future__ import annotations

import random

from django.core.management import call_command
from django.db import IntegrityError, transaction
from shop.stock import stock_moves

from storefront.models import Customer, Order, OrderItem, Product, StockMove

SEED_PRODUCTS = 600
SEED_CUSTOMERS = 200
SEED_ORDERS = 400
SEED_ITEMS_PER_ORDER = (20, 32)
SEED_STOCK_MOVES = 300_000  # rows each stock lookup scans (models.StockMove)
WORDS = ("oak", "slate", "amber", "willow", "quartz", "linen", "cedar", "moss", "onyx", "teal")
KINDS = ("kettle", "lamp", "chair", "mug", "backpack")


def seed() -> int:
    """Create missing tables, then the rows if there are none; returns the product count."""
    call_command("migrate", run_syncdb=True, verbosity=0)
    products = _seed_catalog()
    _seed_stock_moves()  # after the products it refers to
    return products


def _seed_catalog() -> int:
    if Product.objects.exists():
        return Product.objects.count()
    rng = random.Random(20261126)
    products = [
        Product(
            id=i,
            sku=f"SKU-{i:05d}",
            name=f"{rng.choice(WORDS)} {rng.choice(WORDS)} {rng.choice(KINDS)}",
            description=" ".join(rng.choices(WORDS, k=40)),
            category=rng.choice(KINDS),
            price_cents=rng.randrange(299, 49_999),
            weight_grams=rng.randrange(80, 9_000),
        )
        for i in range(1, SEED_PRODUCTS + 1)
    ]
    customers = [
        Customer(
            id=i,
            name=f"customer {i}",
            country=rng.choice(("DE", "FR", "NL", "US", "GB", "SE")),
            postcode=f"{rng.randrange(10_000, 99_999)}",
            loyalty_tier=rng.randrange(0, 4),
        )
        for i in range(1, SEED_CUSTOMERS + 1)
    ]
    orders, items = [], []
    for order_id in range(1, SEED_ORDERS + 1):
        orders.append(
            Order(
                id=order_id,
                customer_id=rng.randrange(1, SEED_CUSTOMERS + 1),
                status=rng.choice(("paid", "shipped", "delivered")),
            )
        )
        for product_id in rng.sample(
            range(1, SEED_PRODUCTS + 1), rng.randrange(*SEED_ITEMS_PER_ORDER)
        ):
            items.append(
                OrderItem(
                    order_id=order_id,
                    product_id=product_id,
                    quantity=rng.randrange(1, 5),
                    unit_price_cents=products[product_id - 1].price_cents,
                )
            )
    try:
        with transaction.atomic():
            Product.objects.bulk_create(products, batch_size=500)
            Customer.objects.bulk_create(customers, batch_size=500)
            Order.objects.bulk_create(orders, batch_size=500)
            OrderItem.objects.bulk_create(items, batch_size=500)
    except IntegrityError:  # another process seeded the same rows first
        pass
    return SEED_PRODUCTS


def _seed_stock_moves() -> None:
    """The stock ledger, filled on its own (a database seeded before it existed gets it)."""
    if StockMove.objects.exists():
        return
    moves = [
        StockMove(product_id=product_id, quantity=quantity, reason=reason)
        for product_id, quantity, reason in stock_moves(SEED_STOCK_MOVES, SEED_PRODUCTS)
    ]
    try:
        with transaction.atomic():
            StockMove.objects.bulk_create(moves, batch_size=1000)
    except IntegrityError:  # another process seeded the same rows first
        pass
