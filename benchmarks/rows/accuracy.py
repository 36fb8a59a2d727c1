"""Row 1: every model's (and baseline's) test metric, pipeline next to its books' script,
over --seeds paired full runs (seed, seed+1, ...: the same seed on both sides in each run,
so each run is an independent sample and each seed a pair)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmarks.findings import joined, mean_std, summary
from benchmarks.render import Row
from benchmarks.workspace import BASELINE

if TYPE_CHECKING:
    from benchmarks.suite import Suite


def build(suite: Suite) -> list[Row]:
    """One line per model and baseline: mean ± sd over the seeds and the paired difference
    (mean ± sd of pipeline - books per seed: the seed's own luck cancels), against a
    tolerance as wide as the books' own run-to-run spread (at least 0.01, or 5% of the MAE)."""
    runs = suite.paired_runs(suite.args.seeds)
    rows = []
    for key in runs[0]["pipeline_metrics"]:
        dataset, entry = key.split("/")
        regression = suite.ws.params["datasets"][dataset]["task"] == "regression"
        metric = "test_mae" if regression else "test_accuracy"
        pipe = [run["pipeline_metrics"][key][metric] for run in runs]
        books = [run["books_metrics"][key][metric] for run in runs]
        ratios = [p / b for p, b in zip(pipe, books, strict=True) if b]
        (pm, ps), (bm, bs) = mean_std(pipe), mean_std(books)
        dm, ds = paired_difference(pipe, books)
        if regression:  # lower is better
            tolerance = max(2 * bs, 0.05 * bm)
            met, target = pm <= bm + tolerance, "≤ books + max(2 sd, 5%)"
        else:
            tolerance = max(2 * bs, 0.01)
            met, target = pm >= bm - tolerance, "≥ books - max(2 sd, 0.01)"
        epochs = {side: [run[f"{side}_metrics"][key].get("epochs") for run in runs]
                  for side in ("pipeline", "books")}
        label = "SGD baseline" if entry == BASELINE else entry
        rows.append(Row(
            "1 accuracy", f"{dataset} {label}: {metric}, n={len(runs)} seeds; paired "
            f"difference {dm:+.4f} ± {ds:.4f}",
            f"{pm:.4f} ± {ps:.4f}", f"{bm:.4f} ± {bs:.4f}",
            pm / bm if bm else None, *(summary(ratios)[1:] if ratios else (None, None)),
            target=target, met=met,
            cause="" if met else finding(pipe, books, tolerance, runs, epochs),
            values={"seeds": [run["seed"] for run in runs], "pipeline": pipe, "books": books,
                    "difference_mean": dm, "difference_sd": ds,
                    "pipeline_epochs": epochs["pipeline"], "books_epochs": epochs["books"]}))
    return rows


def paired_difference(pipe: list[float], books: list[float]) -> tuple[float, float]:
    """Mean and sample sd of the per-seed differences pipeline - books."""
    return mean_std([p - b for p, b in zip(pipe, books, strict=True)])


def finding(pipe: list[float], books: list[float], tolerance: float,
            runs: list[dict[str, Any]], epochs: dict[str, list[Any]]) -> str:
    """The difference against the tolerance, each seed's pair, and the epochs each side
    trained (both report len(history['loss']); the SGD baselines report none)."""
    (pm, _), (bm, bs) = mean_std(pipe), mean_std(books)
    text = (f"mean difference {pm - bm:+.4f}, allowed {tolerance:.4f} (books' sd {bs:.4f} "
            f"over n={len(books)}); per seed, pipeline / books: " + joined(
                f"{run['seed']}: {p:.4f} / {b:.4f}"
                for run, p, b in zip(runs, pipe, books, strict=True)))
    if all(e is not None for side in epochs.values() for e in side):
        text += ("; epochs trained per seed, pipeline / books: "
                 + joined(f"{p:.0f} / {b:.0f}"
                          for p, b in zip(epochs["pipeline"], epochs["books"], strict=True)))
    return text
