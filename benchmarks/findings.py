"""Numbers the rows share, and the helpers that turn them into findings.

A row's finding (why a ratio is what it is) is built only from what this run measured:
wall times, the hook's per-process records (peak RSS, which heavy libraries each
process imported), fresh-process import costs. Nothing here is a sentence that could
go stale when the code changes: if the suite can't measure it, it doesn't say it.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING

from benchmarks.workspace import Proc

if TYPE_CHECKING:
    from benchmarks.suite import Suite

# What a fresh process pays to import each heavy library: label -> code it runs.
IMPORTS = {
    "python": "pass",
    "tensorflow+keras": "import keras, tensorflow",
    "mlflow": "import mlflow",
    "sklearn": "import sklearn.linear_model",
    "tensorflow+keras+mlflow": "import keras, tensorflow, mlflow",
}


def summary(values: list[float]) -> tuple[float, float, float]:
    """Median, min, max: these machines are noisy, so the range is part of the answer."""
    return statistics.median(values), min(values), max(values)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample sd (0 for one value): the accuracy row's tolerance rests on it."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def seconds_text(values: list[float]) -> str:
    """'12.3 s (10-14)': median and range of a side's wall times."""
    mid, low, high = summary(values)
    return f"{mid:.1f} s ({low:.0f}-{high:.0f})"


def share(part: float, whole: float) -> str:
    """'12 s of 40 s (30%)'."""
    pct = f" ({part / whole:.0%})" if whole > 0 else ""
    return f"{part:.0f} s of {whole:.0f} s{pct}"


def joined(items: Iterable[str], empty: str = "none") -> str:
    """A comma list that says `empty` rather than print nothing."""
    items = list(items)
    return ", ".join(items) if items else empty


def importing(procs: Iterable[Proc], module: str) -> int:
    """How many of these processes had `module` imported when they exited (the hook)."""
    return sum(module in p.imported for p in procs)


def measure_imports(suite: Suite) -> dict[str, float]:
    """Median seconds of a fresh process importing each of IMPORTS (and its peak RSS, in
    suite.details['import_rss_mb']), once per suite; {} with --import-repeats 0."""
    if suite.imports is not None:
        return suite.imports
    out: dict[str, float] = {}
    rss: dict[str, float] = {}
    if suite.args.import_repeats >= 1:
        for label, code in IMPORTS.items():
            runs = [suite.ws.run([sys.executable, "-c", code])
                    for _ in range(suite.args.import_repeats)]
            out[label] = statistics.median(r.seconds for r in runs)
            rss[label] = statistics.median(max(p.rss_mb for p in r.procs) for r in runs)
        suite.details["import_rss_mb"] = rss
    suite.imports = out
    return out


def import_tax(processes: list[list[str]], imports: dict[str, float]) -> float:
    """Estimated seconds these processes spent importing, from each one's `imported` list
    and the fresh-process import times: TensorFlow (which brings most of what sklearn
    needs) or sklearn alone, plus MLflow, each above a bare interpreter's start."""
    base = imports["python"]
    total = 0.0
    for modules in processes:
        if "tensorflow" in modules:
            total += imports["tensorflow+keras"] - base
        elif "sklearn" in modules:
            total += imports["sklearn"] - base
        if "mlflow" in modules:
            total += imports["mlflow"] - base
    return total


def import_costs_text(imports: dict[str, float]) -> str:
    """The fresh-process import times a finding's estimates rest on."""
    return (f"fresh-process imports here: TensorFlow+Keras {imports['tensorflow+keras']:.1f} s, "
            f"MLflow {imports['mlflow']:.1f} s, sklearn {imports['sklearn']:.1f} s, "
            f"bare Python {imports['python']:.2f} s")
