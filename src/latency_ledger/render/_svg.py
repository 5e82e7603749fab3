"""The report's charts: inline SVG drawn server-side, readable without JavaScript.

Contract: the only ``Markup`` built from a report's strings is built here.
:func:`bar_svg` draws a ledger as one 100%-wide stacked bar of :class:`Part` segments
(positions in percent, a ``<title>`` tooltip per segment, CSS class ``p-<key>`` for the
parts in ``PART_ORDER``, ``p-other`` for the rest); :func:`share_svg` draws one share as
a bar. Every string interpolated into the SVG (labels, part names, tooltips) is cleaned
of control and bidi-override characters and goes through ``markupsafe.escape`` first;
numbers are formatted here.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

from . import _format as fmt

# The ledger's parts in the order drawn and listed; each has its own colour (report.css).
PART_ORDER = ("database", "network", "interpreter", "native", "waiting", "app")


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """One part of a ledger, formatted: a segment of its bar and a cell of its row."""

    key: str
    name: str
    ms: str
    share: str
    fraction: float


def bar_svg(parts: tuple[Part, ...], label: str) -> Markup:
    """A 100%-wide stacked bar; positions in percent so it scales without distortion."""
    rects = []
    x = 0.0
    for part in parts:
        if part.fraction <= 0:
            continue
        width = part.fraction * 100
        css = f"p-{part.key}" if part.key in PART_ORDER else "p-other"
        tip = f"{part.name}: {part.ms} ({part.share})"
        rects.append(
            f'<rect class="{css}" x="{x:.2f}%" width="{width:.2f}%" height="100%">'
            f"<title>{escape(fmt.clean(tip))}</title></rect>"
        )
        x += width
    return Markup(
        f'<svg class="bar" role="img" aria-label="{escape(fmt.clean(label))}">'
        + "".join(rects)
        + "</svg>"
    )


def share_svg(fraction: float, label: str) -> Markup:
    width = min(max(fraction, 0.0), 1.0) * 100
    return Markup(
        f'<svg class="bar" role="img" aria-label="{escape(fmt.clean(label))}">'
        f'<rect class="bucket" x="0%" width="{width:.2f}%" height="100%"></rect></svg>'
    )
