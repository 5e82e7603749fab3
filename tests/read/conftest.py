"""Fixtures for the reader tests: the shared third-party traces and the generator."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

# Copied verbatim from the project's shared third-party exports; README.md there names
# each file's source. Tests read only this copy.
SHARED_TRACES = Path(__file__).resolve().parents[1] / "data" / "traces"


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    assert SHARED_TRACES.is_dir(), f"third-party traces missing from the repo: {SHARED_TRACES}"
    return SHARED_TRACES


@pytest.fixture(scope="session")
def gen() -> ModuleType:
    """tests/read/gen.py, loaded by path (tests are not a package)."""
    spec = importlib.util.spec_from_file_location("_read_gen", Path(__file__).with_name("gen.py"))
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
