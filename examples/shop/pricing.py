"""Checkout pricing: deliberately heavy pure-Python work, no I/O.

Contract: :func:`price_cart` is a pure function of the cart, the products and the
customer; it does a fixed amount of interpreter work (promotion rules evaluated against
every line, integer tax and rounding per line, and a risk score mixed over
``RISK_STEPS`` steps) so POST /checkout spends about 20 ms on the CPU here, nearly all of
it in bytecode that a faster runtime would really run faster. The amount of work is
fixed by constants, not by a clock, so the endpoint is honest under load.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

RISK_STEPS = 110_000  # calibrated: ~20 ms of CPU here (CPython 3.11), whatever the cart size
TAX_BASIS_POINTS = {"DE": 1900, "FR": 2000, "NL": 2100, "US": 725, "GB": 2000, "SE": 2500}


@dataclass(frozen=True, slots=True, kw_only=True)
class PricedProduct:
    id: int
    name: str
    category: str
    price_cents: int
    weight_grams: int


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


def _risk_score(lines: Sequence[tuple[int, int]], customer_id: int) -> int:
    # FNV-style mixing over the cart, a fixed number of steps: stands in for a scoring model.
    state = 0x811C9DC5 ^ customer_id
    count = len(lines)
    if count == 0:
        return 0
    for step in range(RISK_STEPS):
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
