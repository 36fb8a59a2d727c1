"""Row 2, no-op: `dvc repro` with nothing changed, against rerunning all the books'
scripts (the books' way has no cache: checking means running everything again)."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING

from benchmarks.findings import joined, summary
from benchmarks.render import Row
from benchmarks.workspace import Timed, say

if TYPE_CHECKING:
    from benchmarks.suite import Suite


def build(suite: Suite) -> list[Row]:
    """Against the books' median full run: what rerunning them to 'check' costs."""
    runs = suite.paired_runs()
    books = statistics.median(r["books_seconds"] for r in runs)
    say("no-op dvc repro ...")
    suite.ws.repro()  # the paired runs end on another seed: bring the outputs back first
    timed = [suite.ws.repro() for _ in range(suite.args.noop_repeats)]
    noop = [t.seconds for t in timed]
    n = summary(noop)
    met = n[0] < 3
    return [Row("2 time", f"no-op `dvc repro`, n={len(noop)} (vs rerunning the scripts)",
                f"{n[0]:.2f} s ({n[1]:.2f}-{n[2]:.2f})", f"{books:.1f} s",
                n[0] / books, n[1] / books, n[2] / books, "< 3 s", met,
                "" if met else finding(timed, suite.imports),
                {"pipeline": noop})]


def finding(timed: list[Timed], imports: dict[str, float] | None) -> str:
    """Where a no-op's seconds went, per the hook: the dvc process itself, what it
    imported, and any other Python process it started (medians over the repeats)."""
    dvc = [p for t in timed for p in t.procs if p.name == "dvc"]
    others: dict[str, list[float]] = {}
    for t in timed:
        for p in t.procs:
            if p.name != "dvc":
                others.setdefault(p.name, []).append(p.seconds)
    wall = statistics.median(t.seconds for t in timed)
    if dvc:
        modules = sorted({m for p in dvc for m in p.imported})
        text = (f"of {wall:.2f} s wall, the dvc process ran "
                f"{statistics.median(p.seconds for p in dvc):.2f} s (imported: "
                f"{joined(modules)})")
    else:
        text = f"{wall:.2f} s wall, no dvc process record"
    text += "; other Python processes: " + joined(
        (f"{name} {statistics.median(s):.2f} s in {len(s)} of {len(timed)} runs"
         for name, s in sorted(others.items())), "none")
    if imports:
        text += f"; a bare `python -c pass` here: {imports['python']:.2f} s"
    return text
