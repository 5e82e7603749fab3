"""Loaded by ``latency-ledger run`` through PYTHONPATH: instrument Starlette apps, zero code.

Wraps every Starlette (hence FastAPI) application's middleware stack in
``LedgerMiddleware`` when the stack is built, then imports any ``sitecustomize`` this
one shadows, so the user's own keeps working. Never raises: a failure here must not stop
the app from starting.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def _patch_starlette() -> None:
    try:
        from starlette.applications import Starlette
    except ImportError:
        return
    from latency_ledger.collect import LedgerMiddleware, disable_native_request_spans

    original = Starlette.__call__
    if getattr(original, "_latency_ledger", False):
        return

    # Patched where every Starlette app (FastAPI included, which builds its own stack but
    # calls Starlette.__call__ to run it) passes on each call: wrap the built stack once.
    async def __call__(self: Starlette, scope: Any, receive: Any, send: Any) -> None:
        if not getattr(self, "_latency_ledger_wrapped", False):
            stack = self.middleware_stack or self.build_middleware_stack()
            by_hand = any(m.cls is LedgerMiddleware for m in self.user_middleware)  # type: ignore[comparison-overlap]
            if not by_hand:
                disable_native_request_spans(self)
                title = getattr(self, "title", None)
                stack = LedgerMiddleware(stack, app_title=title if isinstance(title, str) else None)
            self.middleware_stack = stack
            self._latency_ledger_wrapped = True  # type: ignore[attr-defined]
        await original(self, scope, receive, send)

    __call__._latency_ledger = True  # type: ignore[attr-defined]
    Starlette.__call__ = __call__  # type: ignore[method-assign]


def _chain_user_sitecustomize() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    own = sys.modules.pop("sitecustomize", None)
    try:
        importlib.import_module("sitecustomize")
    except ImportError:
        if own is not None:
            sys.modules["sitecustomize"] = own
    finally:
        sys.path[:] = saved


try:
    _patch_starlette()
except Exception as exc:  # never stop the app from starting
    print(f"latency-ledger: could not instrument: {exc!r}", file=sys.stderr)
_chain_user_sitecustomize()
