"""Records the ledger builds once per span or request, and how it builds them fast.

Contract: :func:`fast_constructor` returns a keyword constructor for a frozen slotted
dataclass that gives the same record as the class's own ``__init__`` (a test compares
them); ``new_call``, ``new_ledger`` and ``new_request`` are those of ``Call``, ``Ledger``
and ``Request``. :class:`BookedTrace` is what booking one trace returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import TypeVar

from latency_ledger.model import Call, Ledger, Request

_R = TypeVar("_R")


def fast_constructor(cls: type[_R]) -> Callable[..., _R]:
    """A keyword constructor for the frozen slotted dataclass ``cls`` that writes its
    slots directly: the records built once per span or request (Call, Ledger, Request).

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.
    Here the record is made as an instance of a plain twin class with the same slots,
    filled by ordinary attribute stores (the interpreter writes a slot inline), and then
    becomes a ``cls`` by one ``__class__`` assignment (allowed between classes of the
    same slot layout, as ``read.values`` makes spans). Counted with callgrind, a Call
    built through its slots' ``__set__`` descriptors (as this did before) cost ~3x the
    twin's stores: a third of booking a flat trace. The result is the same record (a
    test compares them). A class with a ``__post_init__``, a field not in ``__init__`` or
    a default factory gets its own constructor back; one whose layout the twin does not
    match (a probe record must come out right) gets the descriptor stores. Generated like
    ``dataclasses`` makes ``__init__`` (from the class's own fields), so it follows the
    class as it changes."""
    found = fields(cls)  # type: ignore[arg-type]
    if hasattr(cls, "__post_init__") or any(
        not f.init or f.default_factory is not MISSING for f in found
    ):
        return cls
    names = [f.name for f in found]
    twin = type(f"_Unfrozen{cls.__name__}", (), {"__slots__": tuple(names)})
    namespace: dict[str, object] = {"_new": object.__new__, "_cls": cls, "_twin": twin}
    params = []
    for f in found:
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is MISSING:
            params.append(f.name)
        else:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
    # positional too (in field order) where Python allows it: no default before a non-default
    defaults = [f.default is not MISSING for f in found]
    star = "" if defaults == sorted(defaults) else "*, "
    head = f"def make({star}{', '.join(params)}):\n"
    stores = "".join(f"    record.{name} = {name}\n" for name in names)
    source = (
        f"{head}    record = _new(_twin)\n{stores}    record.__class__ = _cls\n    return record\n"
    )
    exec(source, namespace)  # our own field names only, as dataclasses does
    make = namespace["make"]
    probe = {name: object() for name in names}  # distinct values: a swapped slot shows
    try:
        fast = make(**probe)  # type: ignore[operator]
        same = type(fast) is cls and all(getattr(fast, n) is v for n, v in probe.items())
    except TypeError:  # slot layouts differ: the __class__ assignment is refused
        same = False
    if same:
        return make  # type: ignore[return-value]
    body = "".join(f"    _set_{name}(record, {name})\n" for name in names)
    exec(f"{head}    record = _new(_cls)\n{body}    return record\n", namespace)
    return namespace["make"]  # type: ignore[return-value]


new_call = fast_constructor(Call)
new_ledger = fast_constructor(Ledger)
new_request = fast_constructor(Request)


@dataclass(frozen=True, slots=True, kw_only=True)
class BookedTrace:
    requests: tuple[Request, ...]
    unbooked_spans: int  # spans under no request
