"""The pages a person reads in a browser: the job's report.html and `clients drift --html`.

Jinja2 templates (absenteeism/templates/) with autoescaping on, since reject values and category
names are user text. A histogram is data here (`Histogram`: one row per bin, one bar per series,
widths as fractions of the widest bar) and SVG in the template: no JavaScript, no network, a page
in milliseconds (docs/etl.md, "report.html", says why not a plotting library).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class Bar:
    share: float  # of the series' total
    width: float  # share / the largest share of any bar in the histogram: 0..1
    count: int


@dataclass(frozen=True)
class HistogramRow:
    label: str
    bars: list[Bar]  # one per series


@dataclass(frozen=True)
class Histogram:
    series: list[str]  # e.g. ["training"] or ["training", "window"]
    rows: list[HistogramRow]


def histogram(labels: Sequence[str], series: dict[str, Sequence[int]]) -> Histogram:
    """Counts per bin for each named series, as shares of that series' total (a series with no
    count: every share 0), scaled so the largest bar of all spans the width."""
    shares = {}
    for name, counts in series.items():
        total = sum(counts)
        shares[name] = [count / total if total else 0.0 for count in counts]
    widest = max((max(values, default=0.0) for values in shares.values()), default=0.0) or 1.0
    rows = [HistogramRow(label, [Bar(shares[name][i], shares[name][i] / widest, int(series[name][i]))
                                 for name in series])
            for i, label in enumerate(labels)]
    return Histogram(list(series), rows)


_ENVIRONMENT = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                  undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(template: str, **context) -> str:
    """The page `template` (a file of absenteeism/templates/) with `context`; a name the template
    uses but the context lacks is an error, not an empty cell."""
    return _ENVIRONMENT.get_template(template).render(**context)
