"""Charts drawn on the server as SVG geometry: the Analytics page's time series and funnel.

Only numbers leave here; the template writes the markup (escaped like everything else), with
a <title> and <desc> per chart and the same figures in a table beside it. No script, no chart
library: Studio serves its own files only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

WIDTH = 720
HEIGHT = 260
LEFT = 56
RIGHT = 16
TOP = 16
BOTTOM = 32
# Each series' colour (presentation attributes: the page's CSP allows no inline style).
COLOURS = {
    "sent": "#4c6ef5",
    "delivered": "#2f9e44",
    "opened": "#f08c00",
    "clicked": "#ae3ec9",
    "bounced": "#e03131",
    "complained": "#862e9c",
    "unsubscribed": "#495057",
}


@dataclass(frozen=True, slots=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True, slots=True)
class Line:
    metric: str
    colour: str
    points: str
    total: int


@dataclass(frozen=True, slots=True)
class SeriesChart:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    lines: list[Line]


@dataclass(frozen=True, slots=True)
class FunnelBar:
    stage: str
    colour: str
    count: int
    percent: str
    y: float
    width: float


@dataclass(frozen=True, slots=True)
class FunnelChart:
    width: int
    height: int
    label_width: int
    bar_height: int
    bars: list[FunnelBar]


def nice_step(value: int) -> int:
    """The smallest 1, 2, 2.5 or 5 times a power of ten (rounded down to whole numbers) at
    or above `value` (at least 1): the distance between gridlines."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (power, 2 * power, 5 * power // 2, 5 * power, 10 * power):
        if step >= value:
            return step
    return 10 * power


def time_series(
    starts: list[datetime], values: dict[str, list[int]], label_format: str
) -> SeriesChart:
    """A line per metric over the buckets starting at `starts`; five y gridlines, 0 and four
    round steps, and up to seven x labels."""
    count = len(starts)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    step = nice_step(math.ceil(max((max(v) for v in values.values() if v), default=0) / 4))
    top_value = 4 * step

    def x(index: int) -> float:
        return LEFT + (plot_width * index / (count - 1) if count > 1 else plot_width / 2)

    def y(value: int) -> float:
        return TOP + plot_height * (1 - value / top_value)

    y_ticks = [Tick(round(y(step * i), 1), f"{step * i:,}") for i in range(5)]
    every = max(1, math.ceil(count / 7))
    x_ticks = [
        Tick(round(x(i), 1), starts[i].strftime(label_format)) for i in range(0, count, every)
    ]
    lines = [
        Line(
            metric,
            COLOURS[metric],
            " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(series)),
            sum(series),
        )
        for metric, series in values.items()
    ]
    return SeriesChart(WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM, y_ticks, x_ticks, lines)


def funnel(stages: list[tuple[str, int]]) -> FunnelChart:
    """A bar per stage, as wide as its share of the first stage."""
    label_width, bar_height, gap = 150, 34, 10
    first = stages[0][1] if stages else 0
    room = WIDTH - label_width - 90
    bars = [
        FunnelBar(
            stage,
            COLOURS[stage],
            count,
            f"{count / first:.0%}" if first else "n/a",
            i * (bar_height + gap),
            max(room * count / first, 1.0) if first else 1.0,
        )
        for i, (stage, count) in enumerate(stages)
    ]
    height = len(stages) * (bar_height + gap)
    return FunnelChart(WIDTH, height, label_width, bar_height, bars)
