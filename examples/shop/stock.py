"""The stock ledger's seed rows, shared by both shops (pure Python: no ORM imported).

Contract: :func:`stock_moves` returns the same ``(product_id, quantity, reason)`` rows
every time for the same arguments: receipts add stock, sales take it away.
"""

from __future__ import annotations

import random

REASONS = ("received", "sold", "sold", "sold", "returned", "counted")


def stock_moves(count: int, products: int, *, seed: int = 20261207) -> list[tuple[int, int, str]]:
    rng = random.Random(seed)
    moves = []
    for _ in range(count):
        reason = rng.choice(REASONS)
        quantity = rng.randrange(1, 40) if reason == "received" else rng.randrange(1, 4)
        moves.append(
            (rng.randrange(1, products + 1), -quantity if reason == "sold" else quantity, reason)
        )
    return moves
