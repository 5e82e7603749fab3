"""latency-ledger: where endpoint latency goes, and whether a rewrite would help.

The offline analyzer (``latency-ledger analyze``) needs none of the in-app collection
machinery, so ``instrument`` and ``LedgerMiddleware`` are imported lazily on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["LedgerMiddleware", "__version__", "instrument"]

if TYPE_CHECKING:
    from latency_ledger.collect import LedgerMiddleware, instrument


def __getattr__(name: str) -> Any:
    if name in ("LedgerMiddleware", "instrument"):
        from latency_ledger import collect

        return getattr(collect, name)
    raise AttributeError(f"module 'latency_ledger' has no attribute {name!r}")
