"""Row 4, throughput: samples/s of the pipeline's training loop (`fit_once`) against bare
`model.fit`, same arrays and model, one process (benchmarks/throughput.py), interleaved."""

from __future__ import annotations

import json
import statistics
import sys
from typing import TYPE_CHECKING, Any

from benchmarks.findings import summary
from benchmarks.render import Row
from benchmarks.workspace import ROOT, say
from pipeline.dvcfiles import target

if TYPE_CHECKING:
    from benchmarks.suite import Suite

TARGET = 0.95


def build(suite: Suite) -> list[Row]:
    """One line per model whose data is prepared (prepares it if none is)."""
    ws = suite.ws
    if not any(ws.manifest(d) for d in suite.datasets):
        say("throughput: preparing the data (dvc repro prepare@*) ...")
        ws.repro("--glob", target("prepare", "*"))
    models = [m for m, d in suite.models.items() if ws.manifest(d)]
    say(f"throughput: {', '.join(models)} ...")
    timed = ws.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), *models,
                    "--epochs", str(suite.args.throughput_epochs),
                    "--repeats", str(suite.args.throughput_repeats)])
    result = json.loads(timed.stdout.strip().splitlines()[-1])
    rows = []
    for model, r in result.items():
        ratios = [p / b for p, b in zip(r["pipeline"], r["bare"], strict=True)]
        ratio = statistics.median(ratios)
        pipe, bare = summary(r["pipeline"]), summary(r["bare"])
        rows.append(Row(
            "4 throughput", f"{model}: samples/s, `fit_once` vs bare `model.fit` "
            f"({r['rows']:,} rows, ≤{suite.args.throughput_epochs} epochs, "
            f"n={len(ratios)})",
            f"{pipe[0]:,.0f} ({pipe[1]:,.0f}-{pipe[2]:,.0f})",
            f"{bare[0]:,.0f} ({bare[1]:,.0f}-{bare[2]:,.0f})",
            ratio, min(ratios), max(ratios), f"≥ {TARGET}x", ratio >= TARGET,
            "" if ratio >= TARGET else finding(ratios, r), r))
    return rows


def finding(ratios: list[float], r: dict[str, Any]) -> str:
    """How long one fit took on each side and how many epochs it ran, the extra seconds
    per fit and per epoch, and whether the pairs' own range reaches the target."""
    median = statistics.median
    sec = {side: median(r[f"{side}_seconds"]) for side in ("pipeline", "bare")}
    ep = {side: median(r[f"{side}_epochs"]) for side in ("pipeline", "bare")}
    extra = sec["pipeline"] - sec["bare"]
    text = (f"one fit (build, compile, fit; medians): fit_once {sec['pipeline']:.2f} s for "
            f"{ep['pipeline']:g} epochs, bare {sec['bare']:.2f} s for {ep['bare']:g} epochs: "
            f"{extra:+.2f} s per fit, {extra / max(ep['pipeline'], 1):+.2f} s per epoch run")
    if max(ratios) >= TARGET:
        text += (f"; the pairs' ratios range {min(ratios):.2f}x-{max(ratios):.2f}x, "
                 f"reaching {TARGET}x within n={len(ratios)}")
    return text
