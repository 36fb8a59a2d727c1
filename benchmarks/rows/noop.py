"""Row 2, no-op: `dvc repro` with nothing changed, against the same command in a bare
2-stage DVC project on the same machine (DVC's own floor: reading dvc.yaml and dvc.lock,
hashing, git), the two alternating. Target ≤ 1.3x. What rerunning all the books' scripts
would cost instead (their way has no cache: checking means running everything again) is
in the measure's text."""

from __future__ import annotations

import shutil
import statistics
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.findings import joined, seconds_text
from benchmarks.render import Row
from benchmarks.workspace import BenchError, Timed, Workspace, say

if TYPE_CHECKING:
    from benchmarks.suite import Suite


TARGET = 1.3
BARE_DVC_YAML = """stages:
  first:
    cmd: python -c "open('a.txt', 'w').write('a')"
    outs: [a.txt]
  second:
    cmd: python -c "open('b.txt', 'w').write(open('a.txt').read())"
    deps: [a.txt]
    outs: [b.txt]
"""


def bare_project(ws: Workspace) -> Workspace:
    """A git + DVC project beside the workspace with two tiny stages, built once."""
    bare = Workspace(Path(f"{ws.path}-bare"), {})
    for folder in (bare.path, bare.logs):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"]):
        result = subprocess.run(cmd, cwd=bare.path, env=bare.env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise BenchError(f"bare project: `{' '.join(cmd)}` failed: {result.stderr[-300:]}")
    (bare.path / "dvc.yaml").write_text(BARE_DVC_YAML)
    bare.repro()
    return bare


def build(suite: Suite) -> list[Row]:
    """--noop-repeats no-op runs of each, alternating which goes first."""
    runs = suite.paired_runs() if "time" in suite.args.only else []  # made already
    say("no-op dvc repro ...")
    suite.ws.repro()  # bring every output up to date (the paired runs end on another seed)
    bare = bare_project(suite.ws)
    timed: list[Timed] = []
    floor: list[float] = []
    for r in range(suite.args.noop_repeats):
        for side in (("pipeline", "bare") if r % 2 == 0 else ("bare", "pipeline")):
            if side == "pipeline":
                timed.append(suite.ws.repro())
            else:
                floor.append(bare.repro().seconds)
    noop = [t.seconds for t in timed]
    ratios = [p / b for p, b in zip(noop, floor, strict=True)]
    ratio = statistics.median(ratios)
    met = ratio <= TARGET
    books = (f"; rerunning the books' scripts instead: "
             f"{statistics.median(r['books_seconds'] for r in runs):.1f} s" if runs else "")
    return [Row("2 time", f"no-op `dvc repro` ({len(suite.datasets)} datasets) vs a bare "
                f"2-stage DVC project's, n={len(noop)}{books}",
                seconds_text(noop), seconds_text(floor), ratio, min(ratios), max(ratios),
                f"≤ {TARGET}x", met,
                "" if met else finding(timed, suite.imports),
                {"pipeline": noop, "bare": floor})]


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
