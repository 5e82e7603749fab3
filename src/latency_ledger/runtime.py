"""Which runtime a service runs, and how much faster each port target runs its CPU work.

Contract: pure functions and constant tables. :func:`detect_runtime` reads a resource's
attributes (``process.runtime.name``, ``telemetry.sdk.language``,
``process.runtime.version`` / ``.description``) and returns a :class:`RuntimeInfo`
whose ``name`` is a key of :data:`RUNTIME_NAMES` or ``"unknown"``.
:func:`port_targets` turns the configured targets into the ones offered to a service of
a given runtime, with source-to-target factors, and says why the others are not offered:
a service is never offered its own runtime, nor one that is not faster on CPU work.

Why a pair and not a target alone: a factor says how many times faster the target runs
the work that is the source's interpreter time. CPython -> Go is tens of times on pure
loops; Node.js -> Go is within a factor of two; Go -> anything is no gain. Every pair
below cites where its range comes from, and the report prints that text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from latency_ledger.errors import ConfigError
from latency_ledger.model import Attributes, TargetRuntime

UNKNOWN = "unknown"
CPYTHON = "cpython"
# The runtime assumed when none is recorded: the one the in-app collector runs on.
ASSUMED = CPYTHON

RUNTIME_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "cpython": "CPython",
        "pypy": "PyPy",
        "nodejs": "Node.js",
        "go": "Go",
        "java": "Java",
        "dotnet": ".NET",
        "ruby": "Ruby",
        "php": "PHP",
        "rust": "Rust",
        "cpp": "C++",
        "erlang": "Erlang",
        "swift": "Swift",
        "webjs": "browser JavaScript",
        UNKNOWN: "unknown",
    }
)

# Spellings seen in process.runtime.name, telemetry.sdk.language and --runtime / --target
# (OTel semantic conventions list the sdk.language values; runtime names are the SDKs').
_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "python": CPYTHON,
        "cpython": CPYTHON,
        "py": CPYTHON,
        "pypy": "pypy",
        "pypy3": "pypy",
        "node": "nodejs",
        "nodejs": "nodejs",
        "node.js": "nodejs",
        "js": "nodejs",
        "javascript": "nodejs",
        "go": "go",
        "golang": "go",
        "gc": "go",
        "java": "java",
        "jvm": "java",
        "dotnet": "dotnet",
        ".net": "dotnet",
        ".net core": "dotnet",
        ".net framework": "dotnet",
        "csharp": "dotnet",
        "ruby": "ruby",
        "php": "php",
        "rust": "rust",
        "cpp": "cpp",
        "c++": "cpp",
        "erlang": "erlang",
        "elixir": "erlang",
        "swift": "swift",
        "webjs": "webjs",
    }
)
_JAVA_RUNTIME = re.compile(r"openjdk|java|jdk|jre|graalvm|hotspot", re.IGNORECASE)
MAX_TEXT = 80


@dataclass(frozen=True, slots=True, kw_only=True)
class RuntimeInfo:
    """A service's runtime: ``name`` (a :data:`RUNTIME_NAMES` key), version, evidence."""

    name: str
    version: str = ""
    detected_from: str = ""  # the attribute it was read from, "--runtime", or ""

    @property
    def display(self) -> str:
        text = RUNTIME_NAMES.get(self.name, self.name)
        return f"{text} {self.version}" if self.version else text


def normalize_runtime(text: str) -> str:
    """A runtime spelling -> its key, or ``"unknown"``."""
    lowered = text.strip().lower()
    found = _ALIASES.get(lowered)
    if found is not None:
        return found
    if lowered.startswith(".net"):
        return "dotnet"
    if _JAVA_RUNTIME.search(lowered):
        return "java"
    return UNKNOWN


def _text(attrs: Attributes, key: str) -> str:
    value = attrs.get(key)
    return value[:MAX_TEXT] if isinstance(value, str) else ""


def detect_runtime(resource: Attributes) -> RuntimeInfo:
    """The runtime a resource reports; ``"unknown"`` when it reports none we know.

    ``process.runtime.name`` first (it tells PyPy from CPython), then
    ``telemetry.sdk.language`` (a Python SDK on an unnamed runtime is CPython, the
    runtime almost every Python service runs), ``process.runtime.description``, and a
    Jaeger client's ``jaeger.version`` process tag.
    """
    version = _text(resource, "process.runtime.version")
    for key in ("process.runtime.name", "telemetry.sdk.language"):
        raw = _text(resource, key)
        if raw:
            name = normalize_runtime(raw)
            if name != UNKNOWN:
                return RuntimeInfo(name=name, version=_short_version(version), detected_from=key)
    description = _text(resource, "process.runtime.description")
    if description:
        name = normalize_runtime(description.split()[0])
        if name != UNKNOWN:
            return RuntimeInfo(
                name=name,
                version=_short_version(version),
                detected_from="process.runtime.description",
            )
    # Jaeger's own clients tag their process with the client's language and version:
    # "Go-2.30.0", "Java-1.8.1", "Python-4.8.0", "Node-3.18.1", "CSharp-1.0.0".
    client = _text(resource, "jaeger.version")
    if client:
        name = normalize_runtime(client.split("-", 1)[0])
        if name != UNKNOWN:
            return RuntimeInfo(name=name, detected_from="jaeger.version")
    return RuntimeInfo(name=UNKNOWN)


def _short_version(version: str) -> str:
    # "go1.22.2" -> "1.22.2"; a version string is shown as it is otherwise.
    return version.removeprefix("go") if version[:3].startswith("go1") else version


def parse_runtime_override(text: str) -> tuple[str, str]:
    """``"SERVICE=RUNTIME"`` (``*`` for every service) -> ``(service, runtime key)``."""
    service, sep, name = text.partition("=")
    service, name = service.strip(), name.strip()
    runtime = normalize_runtime(name) if name else UNKNOWN
    if not sep or not service or runtime == UNKNOWN:
        known = ", ".join(sorted(k for k in RUNTIME_NAMES if k != UNKNOWN))
        raise ConfigError(
            f"--runtime {text!r}: expected SERVICE=RUNTIME (SERVICE may be *), "
            f"RUNTIME one of {known} (or python, node, golang)"
        )
    return service, runtime


# --- Source-to-target factors ---------------------------------------------------------
#
# Two public sources bracket every pair:
# - The Computer Language Benchmarks Game (benchmarksgame-team.pages.debian.net) times
#   the same small CPU-bound programs per language: against CPython, Node.js and Go are
#   tens of times faster on pure loops and arithmetic (n-body, spectral-norm, mandelbrot)
#   and roughly even where CPython's hot path is already C (regex-redux, pidigits); Go
#   and Node.js are within about 2x of each other either way, Go ahead on most
#   programs; Java, C#, Rust and C++ are at or ahead of Go.
# - TechEmpower's Framework Benchmarks (techempower.com/benchmarks) time whole web
#   stacks (routing, JSON, database access, templates): typical Node.js frameworks come
#   out a few times ahead of typical Python ones and Go's ahead of both, with the spread
#   between frameworks of one language as large as between languages.
# A request's interpreter time is framework dispatch, validation, serialization and ORM
# work, some of it already in C or Rust, so it sits much nearer TechEmpower's few-fold
# than the Benchmarks Game's tens-fold. The ranges are planning figures to replace
# (--target) with a measured prototype.
_CPYTHON_NODE = (
    "CPython -> Node.js 2-10x, typically 5x, on the interpreter's work: the Benchmarks "
    "Game (CPU-bound programs) shows V8 tens of times faster than CPython on pure loops but "
    "about even where Python's hot path is C; TechEmpower's whole-stack web benchmarks "
    "show typical Node.js frameworks a few times ahead of Python ones. Request CPU is "
    "framework, serialization and ORM work, so the few-fold end applies."
)
_CPYTHON_GO = (
    "CPython -> Go 3-30x, typically 10x, on the interpreter's work: compiled ahead of time, "
    "at or above Node.js on most Benchmarks Game programs and tens of times faster than "
    "CPython on pure loops; TechEmpower's whole-stack web benchmarks put Go frameworks "
    "ahead of Node.js and Python ones. The range is wide because the gain depends on how "
    "much of the Python request already runs in C."
)
# PyPy's own benchmark suite (speed.pypy.org) puts its JIT at about 4-5x CPython's speed
# (geometric mean), which leaves Node.js about even and Go a small multiple ahead.
_PYPY_GO = (
    "PyPy -> Go 1-5x, typically 2x: speed.pypy.org measures PyPy's JIT at about 4-5x "
    "CPython's speed across its suite, so of CPython -> Go's typical 10x about 2x is left; "
    "the Benchmarks Game puts Go tens of times ahead of CPython on pure loops."
)
_NODE_GO = (
    "Node.js -> Go 1-2x, typically 1.5x: on the Benchmarks Game Go is ahead of Node.js on "
    "most CPU-bound programs, by up to about 2x, and behind on a few (V8's JIT and regex "
    "engine); TechEmpower's whole-stack web benchmarks put typical Go frameworks ahead of "
    "typical Node.js ones by a similar margin."
)
# CRuby and PHP run CPU-bound programs at about CPython's speed on the Benchmarks Game
# (PHP 8's JIT a little faster), and their web frameworks sit with Python's on TechEmpower.
_SCRIPT_NODE = (
    "{src} -> Node.js 2-8x, typically 4x: the Benchmarks Game puts {src} near CPython on "
    "CPU-bound programs, V8 several times ahead; TechEmpower's whole-stack web benchmarks "
    "put typical Node.js frameworks a few times ahead of typical {src} ones."
)
_SCRIPT_GO = (
    "{src} -> Go 3-20x, typically 8x: the Benchmarks Game puts {src} near CPython on "
    "CPU-bound programs and Go tens of times ahead on pure loops; TechEmpower's whole-stack "
    "web benchmarks put Go frameworks well ahead of {src} ones."
)
_NOT_FASTER = (
    "{target} is not faster than {src} on CPU-bound work (the Benchmarks Game puts {src} "
    "at or ahead of it), so a port would not shrink the CPU time"
)

# (source, target) -> (low, typical, high, source text). A pair not listed gets no
# projection: the target is not faster, or no public source gives a factor.
PAIRS: Mapping[tuple[str, str], tuple[float, float, float, str]] = MappingProxyType(
    {
        (CPYTHON, "nodejs"): (2.0, 5.0, 10.0, _CPYTHON_NODE),
        (CPYTHON, "go"): (3.0, 10.0, 30.0, _CPYTHON_GO),
        ("pypy", "go"): (1.0, 2.0, 5.0, _PYPY_GO),
        ("nodejs", "go"): (1.0, 1.5, 2.0, _NODE_GO),
        ("ruby", "nodejs"): (2.0, 4.0, 8.0, _SCRIPT_NODE.format(src="Ruby")),
        ("ruby", "go"): (3.0, 8.0, 20.0, _SCRIPT_GO.format(src="Ruby")),
        ("php", "nodejs"): (2.0, 4.0, 8.0, _SCRIPT_NODE.format(src="PHP")),
        ("php", "go"): (3.0, 8.0, 20.0, _SCRIPT_GO.format(src="PHP")),
    }
)
_ABOUT_EVEN: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("pypy", "nodejs"): (
            "PyPy's JIT runs about 4-5x CPython's speed (speed.pypy.org), about what Node.js "
            "does (the CPython -> Node.js range): no gain to project"
        ),
    }
)
# Runtimes no default target is faster than (compiled ahead of time, or a mature JIT).
_FAST = frozenset({"go", "java", "dotnet", "rust", "cpp", "swift"})


def target_runtime(name: str) -> str:
    """The runtime key a target name stands for (``node`` -> ``nodejs``); else the name."""
    found = _ALIASES.get(name.lower())
    return found if found is not None else name.lower()


def default_target(name: str, source: str = CPYTHON) -> TargetRuntime | None:
    """The built-in factors for porting ``source`` to ``name``, if there are any."""
    pair = PAIRS.get((source, target_runtime(name)))
    if pair is None:
        return None
    low, typical, high, text = pair
    return TargetRuntime(
        name=name, factor_low=low, factor_typical=typical, factor_high=high, source=text
    )


def port_targets(
    runtime: str, targets: Sequence[TargetRuntime], given: frozenset[str] = frozenset()
) -> tuple[tuple[TargetRuntime, ...], tuple[str, ...]]:
    """The targets offered to a service on ``runtime``, and why the others are not.

    ``targets`` are the configured ones with their CPython factors; names in ``given``
    came from the command line and keep their factors for any source runtime (they are
    the user's measurement). Built-in ones get the source-to-target pair's factors. An
    unknown runtime is judged as :data:`ASSUMED` (the caller says so).
    """
    source = ASSUMED if runtime == UNKNOWN else runtime
    offered: list[TargetRuntime] = []
    notes: list[str] = []
    src_name = RUNTIME_NAMES.get(source, source)
    for target in targets:
        key = target_runtime(target.name)
        t_name = RUNTIME_NAMES.get(key, target.name)
        if key == source:
            notes.append(f"{t_name}: not offered, the service already runs on it")
            continue
        if target.name in given:
            offered.append(target)
            continue
        if source == CPYTHON:
            offered.append(target)
            continue
        pair = default_target(target.name, source)
        if pair is not None:
            offered.append(pair)
        elif (source, key) in _ABOUT_EVEN:
            notes.append(f"{t_name}: not offered, {_ABOUT_EVEN[(source, key)]}")
        elif source in _FAST or key == CPYTHON:
            notes.append(
                f"{t_name}: not offered, " + _NOT_FASTER.format(target=t_name, src=src_name)
            )
        else:
            notes.append(
                f"{t_name}: not offered, no public source gives a factor from {src_name}; "
                f"give one with --target {target.name}=LOW:HIGH"
            )
    return tuple(offered), tuple(notes)
