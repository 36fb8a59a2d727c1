"""Row 2, param change: change one param of one dataset; `dvc repro` reruns that chain
only, the books' way reruns that dataset's scripts. Reported, no target: how much a
cache saves depends on which param changed."""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Any

from benchmarks.findings import seconds_text
from benchmarks.render import Row
from benchmarks.workspace import BenchError, is_stage, say

if TYPE_CHECKING:
    from benchmarks.suite import Suite


def default_change(suite: Suite) -> str:
    if "imdb" in suite.datasets:
        return "datasets.imdb.load.num_words"  # the README's example: reruns imdb's chain
    return f"models.{next(iter(suite.models))}.epochs"


def nudged(key: str, original: Any) -> int | float:
    """A nearby value of a numeric param (fractions x0.9, counts ±1)."""
    if isinstance(original, bool) or not isinstance(original, int | float):
        raise BenchError(f"--change {key}: {original!r} is not a number to nudge")
    if isinstance(original, float):  # fractions (split.validation, learning rates)
        return round(original * 0.9, 10)
    return original - 1 if original > 1 else original + 1


def build(suite: Suite) -> list[Row]:
    """Toggle the value back and forth, --repeats times, alternating which side goes first."""
    key = suite.args.change or default_change(suite)
    parts = key.split(".")
    dataset = parts[1] if parts[0] == "datasets" else suite.models[parts[1]]
    original = suite.ws.get(key)
    changed = nudged(key, original)
    samples = []
    for r in range(suite.args.repeats):
        suite.ws.set(key, changed if r % 2 == 0 else original)
        say(f"param change {r + 1}/{suite.args.repeats}: {key}={suite.ws.get(key)} ...")
        order = ("pipeline", "books") if r % 2 == 0 else ("books", "pipeline")
        sample: dict[str, Any] = {}
        for side in order:
            if side == "pipeline":
                timed = suite.ws.repro("--no-run-cache")
                sample["pipeline"] = timed.seconds
                sample["stages"] = sorted(p.name for p in timed.procs
                                          if is_stage(p.name) and p.name != "check")
            else:
                sample["books"] = suite.run_books([dataset])[0]
        samples.append(sample)
    if suite.ws.get(key) != original:
        suite.ws.set(key, original)
        suite.ws.repro()  # leave the workspace as params.yaml says, for the next rows
    ratios = [s["pipeline"] / s["books"] for s in samples]
    return [Row("2 time", f"rerun after `{key}` {original}↔{changed} (stages: "
                f"{', '.join(samples[0]['stages'])}) vs {dataset}'s scripts, n={len(samples)}",
                seconds_text([s["pipeline"] for s in samples]),
                seconds_text([s["books"] for s in samples]),
                statistics.median(ratios), min(ratios), max(ratios), "(none set)", None, "",
                {"samples": samples})]
