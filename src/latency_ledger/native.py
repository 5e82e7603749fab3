"""An endpoint whose CPU is mostly native code -> the finding that says a port won't help.

Contract: :func:`native_finding` is pure: one endpoint's
:class:`~latency_ledger.model.EndpointStats` (with its ``native`` share and ``profile``)
in, a ``native_cpu`` :class:`~latency_ledger.model.Finding` or None out. It fires when
native code is at least ``MIN_NATIVE_FRACTION`` of the endpoint's CPU (by the share's
lower bound, so an uncertain split does not fire) and costs at least ``MIN_NATIVE_NS`` per
request. Its cost is the mean native CPU per request: a port saves none of it, while
making the native work cheaper (a lower cost factor, a cached result) saves up to it.
The advice follows what the top native function does, from its name (hashing,
compression, serialization, regular expressions); anything else gets the general advice.
"""

from __future__ import annotations

import re

from latency_ledger.model import EndpointStats, Finding

NATIVE_CPU = "native_cpu"
MIN_NATIVE_FRACTION = 0.5  # native at least half the CPU: the port's saving is halved
MIN_NATIVE_NS = 2_000_000  # the verdict's smallest saving worth a rewrite (verdict.py)
_FUNCTION_CHARS = 60

# (name pattern, advice); the first match wins.
_ADVICE: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"hashpw|checkpw|bcrypt|argon2|scrypt|pbkdf2|kdf|hash_secret|verify_secret"),
        "lower the hash's cost factor or cache sessions so fewer requests hash",
    ),
    (
        re.compile(r"compress|zlib|gzip|brotli|zstd|lz4|deflate"),
        "compress at a lower level, or cache the compressed result",
    ),
    (
        re.compile(r"dumps|loads|json|validate|serializ|to_python|model_dump"),
        "validate and serialize less (smaller payloads), or cache the result",
    ),
    (
        re.compile(r"^(?:[\w.]*\.)?(?:match|search|sub|subn|findall|finditer|fullmatch|split)$"),
        "simplify the regular expressions or match less text",
    ),
)
_GENERAL = "make that work smaller or cache its result"


def native_finding(stats: EndpointStats) -> Finding | None:
    """The ``native_cpu`` finding for one endpoint, or None (module docstring)."""
    native = stats.native
    mean = stats.ledger_ns.get("mean", {})
    native_ns = mean.get("native", 0)
    if native is None or native.cpu_fraction_low < MIN_NATIVE_FRACTION:
        return None
    if native_ns < MIN_NATIVE_NS:
        return None
    functions = stats.profile.native_functions if stats.profile is not None else ()
    top = functions[0][0][:_FUNCTION_CHARS] if functions else ""
    advice = next((text for pattern, text in _ADVICE if pattern.search(top)), _GENERAL)
    share = f"{native.cpu_fraction * 100:.0f}%"
    where = f" ({top})" if top else ""
    return Finding(
        kind=NATIVE_CPU,
        detail=(
            f"CPU is {share} native code{where}: a port runs the same native code, so it "
            f"saves none of it; {advice}"
        ),
        target=top or "native code",
        count_per_request=1.0,
        ns_per_request=native_ns,
        requests_fraction=1.0,
        total_ns=native_ns * stats.count,
        count=stats.count,
        # how sure: the share's bound around it, from the profiled requests
        margin_fraction=max(
            native.cpu_fraction - native.cpu_fraction_low,
            native.cpu_fraction_high - native.cpu_fraction,
        )
        / native.cpu_fraction,
        sampled_requests=native.profiled,
    )
