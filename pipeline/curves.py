"""The book's K-fold validation curve (DLwP ch. 3): each epoch's validation figure averaged
over the folds, the epoch where it is best, and the rule that picks it.

One owner: training reads the final model's epochs off it (`kfold.choose_epochs`), the
plots draw it and evaluate writes it for `dvc plots`, all through these functions, so the
epoch marked on the figure is the epoch the model trained for. Only the training split's
folds are ever looked at, never the test split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig

from pipeline import metrics
from pipeline.errors import DataError


def monitored(task: str) -> str:
    """The validation figure the curve follows: the one the task's models are ranked by."""
    return f"val_{metrics.RANKED_BY[task]}"


def settings(kfold: DictConfig) -> tuple[float, int]:
    """(smoothing, skip) of `kfold.choose_epochs`; (0, 0), the raw mean, when it is null."""
    choice = kfold.choose_epochs
    return (0.0, 0) if choice is None else (float(choice.smoothing), int(choice.skip))


def mean_curve(per_fold: list[list[float]]) -> np.ndarray:
    """The per-epoch mean over folds, over the epochs every fold reached (early stopping
    may end a fold sooner): each point averages all K folds."""
    length = min(len(fold) for fold in per_fold)
    return np.mean([fold[:length] for fold in per_fold], axis=0)


def smooth(points: np.ndarray, factor: float) -> np.ndarray:
    """The book's exponential moving average: each point is `factor` times the smoothed
    point before it plus (1 - factor) times itself; factor 0 leaves the points as they are."""
    out = np.array(points, dtype=float)
    for i in range(1, len(out)):
        out[i] = out[i - 1] * factor + out[i] * (1 - factor)
    return out


def best_epoch(curve: np.ndarray, metric: str, smoothing: float = 0.0, skip: int = 0) -> int:
    """The 1-based epoch of the best point of `curve` after its first `skip` epochs,
    smoothed from there on (the book drops those epochs before smoothing: they are on
    another scale). Which way is best comes from pipeline/metrics.py."""
    if len(curve) <= skip:
        raise DataError(f"the K-fold curve has {len(curve)} epochs (early stopping ended a "
                        f"fold), none after the {skip} skipped. Fix: lower "
                        "kfold.choose_epochs.skip or raise early_stopping.patience")
    points = smooth(np.asarray(curve[skip:], dtype=float), smoothing)
    index = np.argmax(points) if metrics.higher_is_better(metric) else np.argmin(points)
    return skip + int(index) + 1


def describe(metric: str, folds: int, smoothing: float, skip: int) -> str:
    """The rule in words, recorded with the epoch it chose."""
    way = "highest" if metrics.higher_is_better(metric) else "lowest"
    rule = f"{way} {metric} averaged over {folds} folds"
    if skip:
        rule += f", after epoch {skip}"
    return rule + (f", smoothed (EMA {smoothing:g})" if smoothing else "")


@dataclass
class Curve:
    """A trained model's K-fold curve as its summary records it, ready to draw."""

    metric: str
    folds: list[list[float]]  # per fold, per epoch
    smoothing: float
    skip: int
    best: int  # the 1-based epoch the rule chose
    chosen: bool  # whether the final model trained for `best` epochs

    @property
    def mean(self) -> np.ndarray:
        return mean_curve(self.folds)

    @property
    def smoothed(self) -> np.ndarray | None:
        """The smoothed part of the mean (epochs after `skip`), or None without smoothing."""
        return smooth(self.mean[self.skip:], self.smoothing) if self.smoothing else None


def from_summary(summary: dict[str, Any], kfold: DictConfig | None, task: str) -> Curve | None:
    """The curve of a model trained with K-fold validation; None without one."""
    metric = monitored(task)
    folds = summary.get("kfold_history", {}).get(metric)
    if kfold is None or not folds or "kfold_best_epoch" not in summary:
        return None
    smoothing, skip = settings(kfold)
    return Curve(metric, folds, smoothing, skip, int(summary["kfold_best_epoch"]),
                 kfold.choose_epochs is not None)
