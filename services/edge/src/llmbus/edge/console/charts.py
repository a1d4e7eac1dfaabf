"""Usage charts as inline SVG, drawn on the server: one stacked bar per UTC day, one
colour per group (a key, provider or model), the largest groups first and the rest
summed as "other". No script, no library: the page shows them as they arrive."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape

__all__ = ["MAX_GROUPS", "PALETTE", "Point", "daily_bars", "last_days"]

PALETTE = (
    "#0969da",
    "#1f883d",
    "#bf3989",
    "#9a6700",
    "#8250df",
    "#cf222e",
    "#1b7c83",
    "#bc4c00",
)
OTHER_COLOUR = "#8c959f"
MAX_GROUPS = len(PALETTE)
"""Groups drawn in their own colour; the rest are summed as "other"."""

_WIDTH = 720
_HEIGHT = 220
_LEFT = 56
_BOTTOM = 24
_TOP = 8


@dataclass(frozen=True, slots=True)
class Point:
    day: str
    """`YYYY-MM-DD` (UTC)."""
    group: str
    value: int


def last_days(days: int, today: date | None = None) -> list[str]:
    """The last `days` UTC days, oldest first, today included."""
    end = today or datetime.now(UTC).date()
    return [(end - timedelta(days=back)).isoformat() for back in range(days - 1, -1, -1)]


def _ranked(points: Iterable[Point]) -> list[str]:
    """Groups largest first, the tail beyond `MAX_GROUPS` folded into "other"."""
    totals: dict[str, int] = {}
    for point in points:
        totals[point.group] = totals.get(point.group, 0) + point.value
    ranked = sorted(totals, key=lambda group: (-totals[group], group))
    if len(ranked) <= MAX_GROUPS:
        return ranked
    return [*ranked[: MAX_GROUPS - 1], "other"]


def _nice_ceiling(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value`."""
    if value <= 0:
        return 1
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= value:
                return step * scale
        scale *= 10


def daily_bars(points: Sequence[Point], days: Sequence[str], title: str, labels: dict[str, str]) -> str:
    """The chart of `points` over `days`; `labels` names groups (a key's name for its id)."""
    groups = _ranked(points)
    kept = set(groups) - {"other"}
    by_day: dict[str, dict[str, int]] = {day: {} for day in days}
    for point in points:
        if point.day not in by_day:
            continue
        group = point.group if point.group in kept else "other"
        by_day[point.day][group] = by_day[point.day].get(group, 0) + point.value
    top = _nice_ceiling(max((sum(values.values()) for values in by_day.values()), default=0))
    plot_width = _WIDTH - _LEFT - 8
    plot_height = _HEIGHT - _BOTTOM - _TOP
    slot = plot_width / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    colours = {group: PALETTE[i] if group != "other" else OTHER_COLOUR for i, group in enumerate(groups)}
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _TOP + plot_height * (1 - fraction)
        parts.append(f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_WIDTH - 8}" y2="{y:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{int(top * fraction)}</text>"
        )
    label_every = max(1, len(days) // 10)
    for index, day in enumerate(days):
        x = _LEFT + index * slot + (slot - bar) / 2
        y = _TOP + plot_height
        for group in groups:
            value = by_day[day].get(group, 0)
            if not value:
                continue
            height = plot_height * value / top
            y -= height
            name = labels.get(group, group)
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{colours[group]}" data-group="{escape(group)}" data-day="{day}" data-value="{value}">'
                f"<title>{escape(name)} · {day}: {value}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{_HEIGHT - 6}" text-anchor="middle" class="axis">'
                f"{day[5:]}</text>"
            )
    parts.append("</svg>")
    legend = "".join(
        f'<li><svg class="swatch" viewBox="0 0 10 10">'
        f'<rect width="10" height="10" fill="{colours[g]}"/></svg>'
        f"{escape(labels.get(g, g))}</li>"
        for g in groups
    )
    if not groups:
        return "".join(parts) + '<p class="empty">No usage in these days.</p>'
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'
