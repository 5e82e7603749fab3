"""Checkout pricing: deliberately heavy pure-Python work, no I/O.

Contract: :func:`price_cart` is a pure function of the cart, the products and the
customer; it does interpreter work (promotion rules evaluated against every line, integer
tax and rounding per line, and a risk score) so POST /checkout spends about
``RISK_CPU_NS`` (20 ms) on the CPU on any machine, nearly all of it in bytecode that a
faster runtime would really run faster.

The risk score is a hash of the cart over ``RISK_PASS_STEPS`` steps, checked
:func:`risk_passes` times with the same answer each time. That count is measured once per
process, on the thread's own CPU clock (so a busy machine does not skew it), to make the
checks cost ``RISK_CPU_NS``: the example needs a known CPU cost, so checkout is
CPU-bound on a fast machine as on a slow one, while its answer never depends on the
machine. During a request the work is fixed by that count, never by a clock.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RISK_CPU_NS = 20_000_000  # the risk checks' CPU per checkout, whatever the machine
RISK_PASS_STEPS = 2_000
CALIBRATION_ROUNDS = 7  # the fastest of these is the pass's cost (others met interruptions)
TAX_BASIS_POINTS = {"DE": 1900, "FR": 2000, "NL": 2100, "US": 725, "GB": 2000, "SE": 2500}


@dataclass(frozen=True, slots=True, kw_only=True)
class PricedProduct:
    id: int
    name: str
    category: str
    price_cents: int
    weight_grams: int


def priced_products(rows: Iterable[Any]) -> dict[int, PricedProduct]:
    """Product rows of either shop's ORM (``id``, ``name``, ``category``, ``price_cents``,
    ``weight_grams`` attributes) as pricing's input, by id."""
    return {
        row.id: PricedProduct(
            id=row.id,
            name=row.name,
            category=row.category,
            price_cents=row.price_cents,
            weight_grams=row.weight_grams,
        )
        for row in rows
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Promotion:
    code: str
    category: str
    min_quantity: int
    percent_off: int


# Forty rules, evaluated against every line, as a rules engine would.
PROMOTIONS = tuple(
    Promotion(
        code=f"PROMO{i:02d}",
        category=("kettle", "lamp", "chair", "mug", "backpack")[i % 5],
        min_quantity=1 + i % 4,
        percent_off=5 + i % 15,
    )
    for i in range(40)
)


def _round_half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    twice = remainder * 2
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


@functools.cache
def risk_passes() -> int:
    """How many risk passes cost ``RISK_CPU_NS`` of CPU here; measured on first use."""
    lines = [(product_id, 1 + product_id % 3) for product_id in range(1, 8)]
    fastest = min(_timed_pass(lines) for _ in range(CALIBRATION_ROUNDS))
    return max(1, round(RISK_CPU_NS / max(fastest, 1)))


def _timed_pass(lines: Sequence[tuple[int, int]]) -> int:
    start = time.thread_time_ns()
    _risk_pass(lines, 0)
    return time.thread_time_ns() - start


def _risk_score(lines: Sequence[tuple[int, int]], customer_id: int) -> int:
    # The same pass every time, so the score is the pass's: only the cost is calibrated.
    score = 0
    for _ in range(risk_passes()):
        score = _risk_pass(lines, customer_id)
    return score


def _risk_pass(lines: Sequence[tuple[int, int]], customer_id: int) -> int:
    # FNV-style mixing over the cart, a fixed number of steps: stands in for a scoring model.
    state = 0x811C9DC5 ^ customer_id
    count = len(lines)
    if count == 0:
        return 0
    for step in range(RISK_PASS_STEPS):
        product_id, quantity = lines[step % count]
        state ^= (product_id * 31 + quantity + step) & 0xFFFFFFFF
        state = (state * 0x01000193) & 0xFFFFFFFF
    return state % 1000


def price_cart(
    cart: Mapping[int, int],
    products: Mapping[int, PricedProduct],
    *,
    customer_id: int,
    country: str,
    loyalty_tier: int,
) -> dict[str, object]:
    """The priced receipt for ``cart`` (product id -> quantity)."""
    tax_bp = TAX_BASIS_POINTS.get(country, 2000)
    lines: list[dict[str, object]] = []
    subtotal = discount_total = tax_total = weight = 0
    for product_id, quantity in sorted(cart.items()):
        product = products[product_id]
        gross = product.price_cents * quantity
        best = 0
        applied = ""
        for promo in PROMOTIONS:
            if promo.category == product.category and quantity >= promo.min_quantity:
                off = _round_half_even(gross * (promo.percent_off + loyalty_tier), 100)
                if off > best:
                    best, applied = off, promo.code
        net = gross - best
        tax = _round_half_even(net * tax_bp, 10_000)
        subtotal += gross
        discount_total += best
        tax_total += tax
        weight += product.weight_grams * quantity
        lines.append(
            {
                "product_id": product_id,
                "name": product.name,
                "quantity": quantity,
                "gross_cents": gross,
                "discount_cents": best,
                "promotion": applied,
                "tax_cents": tax,
                "total_cents": net + tax,
            }
        )
    risk = _risk_score(sorted(cart.items()), customer_id)
    return {
        "customer_id": customer_id,
        "lines": lines,
        "subtotal_cents": subtotal,
        "discount_cents": discount_total,
        "tax_cents": tax_total,
        "total_cents": subtotal - discount_total + tax_total,
        "weight_grams": weight,
        "risk_score": risk,
        "needs_review": risk > 900,
    }
