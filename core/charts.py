"""Small charts drawn on the server as inline SVG: no script, no CDN, no JavaScript library.

A chart is a row of bars (one per time bucket) under its largest value, with the start and end
times below; a bucket with no data is left empty and marked on the baseline, never drawn as 0.
Each bar carries a ``<title>`` (the browser shows it on hover) and the chart a text summary for
screen readers. Colours are the admin's CSS variables, so they follow its light and dark themes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 300, 72
PLOT_TOP, PLOT_BOTTOM, LEFT = 14, 58, 2  # the bars' area; labels above and below it
COLOURS = {
    "normal": "var(--primary, #79aec8)",
    "alert": "var(--error-fg, #ba2121)",
    "text": "var(--body-quiet-color, #666)",
    "rule": "var(--hairline-color, #e8e8e8)",
}


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def bar_chart_count(value: float) -> str:
    """A bar's value as a count: ``1,234``."""
    return _number(value)


def bar_chart_svg(
    values: Sequence[float | None],
    *,
    end: datetime,
    bucket: timedelta,
    title: str,
    show: Callable[[float], str] = bar_chart_count,
    tone: str = "normal",
) -> SafeString:
    """An SVG bar chart of ``values``, one per ``bucket``, the last ending at ``end`` (UTC);
    ``show`` writes a value (a count by default, a duration for a lag)."""
    count = len(values)
    known = [v for v in values if v is not None]
    top = max(known, default=0)
    scale = (PLOT_BOTTOM - PLOT_TOP) / top if top > 0 else 0.0
    slot = (WIDTH - 2 * LEFT) / max(count, 1)
    gap = 1 if slot >= 3 else 0
    begin = end - bucket * count
    # A day or more: the date too, or both ends would read the same time.
    time_format = "%d %b %H:%M" if bucket * count >= timedelta(days=1) else "%H:%M"
    parts: list[str] = []
    for index, value in enumerate(values):
        x = LEFT + index * slot
        label = f"{begin + bucket * index:{time_format}}"
        if value is None:
            parts.append(
                f'<rect x="{x:.1f}" y="{PLOT_BOTTOM - 1}" width="{max(slot - gap, 0.5):.1f}" height="1" '
                f'style="fill: {COLOURS["rule"]}"><title>{label}: no data</title></rect>'
            )
            continue
        height = max(value * scale, 1.0 if value > 0 else 0.0)
        parts.append(
            f'<rect x="{x:.1f}" y="{PLOT_BOTTOM - height:.1f}" width="{max(slot - gap, 0.5):.1f}" '
            f'height="{height:.1f}" style="fill: {COLOURS[tone]}">'
            f"<title>{label}: {escape(show(value))}</title></rect>"
        )
    window = f"from {begin:{time_format}} to {end:{time_format}} UTC"
    summary = f"{title} {window}: highest {show(top)}" if known else f"{title}: no data {window}"
    text = f'font-size="9" style="fill: {COLOURS["text"]}"'
    svg = (
        f'<svg class="activity-svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(summary)}</title>'
        f'<line x1="{LEFT}" y1="{PLOT_TOP}" x2="{WIDTH - LEFT}" y2="{PLOT_TOP}" '
        f'style="stroke: {COLOURS["rule"]}" stroke-dasharray="2 2"/>'
        f'<text x="{LEFT}" y="{PLOT_TOP - 4}" {text}>{escape(show(top))}</text>'
        f"{''.join(parts)}"
        f'<line x1="{LEFT}" y1="{PLOT_BOTTOM}" x2="{WIDTH - LEFT}" y2="{PLOT_BOTTOM}" '
        f'style="stroke: {COLOURS["text"]}"/>'
        f'<text x="{LEFT}" y="{HEIGHT - 3}" {text}>{begin:{time_format}}</text>'
        f'<text x="{WIDTH - LEFT}" y="{HEIGHT - 3}" text-anchor="end" {text}>{end:{time_format}} UTC</text>'
        "</svg>"
    )
    return mark_safe(svg)  # noqa: S308 - numbers and times formatted here; the only text is escaped
