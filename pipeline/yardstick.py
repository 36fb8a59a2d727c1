"""The books' published figures as the report's yardstick, and the gap to them.

A dataset's `published:` entries (params.yaml) give each figure as the books print it:
"~2.5" (about), "0.978-0.982" (a range), "~0.78-0.80". Parsed here once, so a typo fails
in `check` and the report can say "test mae 2.5758, book ~2.5: 0.0758 worse", which way
is worse decided by pipeline/metrics.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline import metrics

NUMBER = r"\d+(?:\.\d+)?"
VALUE = re.compile(rf"~?(?P<low>{NUMBER})(?:-(?P<high>{NUMBER}))?")
COLUMNS = ("cv", "test")  # the report's columns a published figure can be set against


@dataclass(frozen=True)
class Figure:
    """A published figure: [low, high] (low == high for a single value), and as printed."""

    low: float
    high: float
    text: str


def parse(text: object) -> Figure | None:
    """'~2.5', '0.978-0.982', '~0.78-0.80' (or a bare number); None if it is none of those."""
    match = VALUE.fullmatch(str(text).strip())
    if match is None:
        return None
    low = float(match["low"])
    high = float(match["high"]) if match["high"] else low
    if high < low:
        return None
    return Figure(low, high, str(text).strip())


def column(metric: str) -> str:
    """`test_accuracy` -> 'test', `cv_accuracy` -> 'cv': the report column it compares with."""
    return metric.split("_", 1)[0]


def gap(metric: str, measured: float | None, published: Figure) -> str:
    """'book ~2.5: 0.0758 worse', 'book 0.978-0.982: within', '-' when nothing was measured.
    Against a range, the distance to its nearest end; against '~x', to x."""
    if measured is None:
        return "-"
    head = f"book {published.text}"
    if published.low <= measured <= published.high:
        return f"{head}: {'about equal' if published.low == published.high else 'within'}"
    distance = published.low - measured if measured < published.low \
        else measured - published.high
    above = measured > published.high
    better = above == metrics.higher_is_better(metric)
    return f"{head}: {distance:.4f} {'better' if better else 'worse'}"
