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

import yaml

from benchmarks.findings import joined, seconds_text
from benchmarks.render import Row
from benchmarks.workspace import BenchError, Timed, Workspace, say
from pipeline.dvcfiles import pipeline_files

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
    cause = ""
    if not met:
        cause = (finding(timed, suite.imports) + "; " + profile(suite.ws) + "; "
                 + sizes(suite.ws, bare))
    books = (f"; rerunning the books' scripts instead: "
             f"{statistics.median(r['books_seconds'] for r in runs):.1f} s" if runs else "")
    return [Row("2 time", f"no-op `dvc repro` ({len(suite.datasets)} datasets) vs a bare "
                f"2-stage DVC project's, n={len(noop)}{books}",
                seconds_text(noop), seconds_text(floor), ratio, min(ratios), max(ratios),
                f"≤ {TARGET}x", met,
                cause, {"pipeline": noop, "bare": floor})]


# Where DVC spends a no-op, by the functions of DVC 3.x that own each part.
PARTS = {"rewriting the lock file after the always-run `check`": "dvcfile.py:_dump_lockfile",
         "reading params.yaml for each stage's params": "dependency/param.py:read_params",
         "loading dvc.yaml and dvc.lock": "repo/reproduce.py:collect_stages",
         "running `check`": "stage/run.py:run_stage"}


def profile(ws: Workspace) -> str:
    """One more no-op under DVC's own profiler (`--cprofile-dump`): each part's share of
    the profiled run (the profiler slows everything, so shares, not seconds)."""
    import pstats

    dump = ws.logs / "noop.prof"
    ws.repro("--cprofile-dump", str(dump))
    stats = pstats.Stats(str(dump)).stats  # {(file, line, function): (..., cumulative, ...)}
    total = max(v[3] for v in stats.values())
    shares = []
    for label, owner in PARTS.items():
        path, function = owner.split(":")
        cumulative = [v[3] for (file, _, name), v in stats.items()
                      if file.endswith(path) and name == function]
        if cumulative:
            shares.append(f"{label} {max(cumulative) / total:.0%}")
    return "under DVC's profiler: " + joined(shares)


def sizes(ws: Workspace, bare: Workspace) -> str:
    """What DVC reads on every run: stages, lock files and params.yaml, each side."""
    def facts(path: Path) -> str:
        locks = [lock for name in pipeline_files(path)
                 if (lock := (path / name).with_suffix(".lock")).exists()]
        stages = sum(len((yaml.safe_load(lock.read_text()) or {}).get("stages", {}))
                     for lock in locks)
        largest = max((lock.stat().st_size for lock in locks), default=0) / 1024
        params = path / "params.yaml"
        kb = params.stat().st_size / 1024 if params.exists() else 0
        return (f"{stages} stages in {len(locks)} lock file(s), the largest {largest:.0f} KB, "
                f"params.yaml {kb:.0f} KB")
    return f"pipeline: {facts(ws.path)}; bare: {facts(bare.path)}"


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
