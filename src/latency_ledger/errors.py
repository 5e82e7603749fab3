"""The project's exceptions.

LedgerError                  base; the CLI catches it once and exits non-zero
├── TraceFormatError         input that is not (valid) trace data; names file and place
│   └── UnsupportedFormatError   recognizable, but not a format we read (Jaeger, Zipkin)
├── PluginError              a plugin that does not meet the contract in plugins.py
└── ConfigError              a bad option (e.g. ``--target node=abc``)
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error this package raises on purpose."""


class TraceFormatError(LedgerError):
    """Input that is not valid trace data. The message starts with ``file:place:``."""


class UnsupportedFormatError(TraceFormatError):
    """Trace data in a format we recognize but do not read."""


class PluginError(LedgerError):
    """A plugin that does not meet the contract."""


class ConfigError(LedgerError):
    """A bad option or setting."""
