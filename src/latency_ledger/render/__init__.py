"""Render a finished :class:`~latency_ledger.model.Report` for people and tools.

Contract: the last stage. Every function here takes a ``Report`` and only formats it:
no analysis, no I/O besides the ``write_*`` helpers. Milliseconds and percentages exist
only in this package. Strings that come from traces (span names, SQL, routes, service
names, problems) are attacker-controlled and are escaped for the medium they land in.

- :mod:`.json`: the ``latency-ledger/3`` JSON contract (``report_to_json``, ``write_json``)
- :mod:`.text`: the terminal summary (``render_text``)
- :mod:`.html`: one self-contained HTML document (``render_html``, ``write_html``)
"""
