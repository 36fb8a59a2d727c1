"""Which way is better for a metric, and which figure ranks a dataset's models: decided here.

Training (early stopping, the best epoch), the registry's champion, sweeps and the
report all ask `higher_is_better`, so a loss, an MAE or an MSE is never maximised by
one of them and minimised by another. The table agrees with Keras' own `_direction`
of its metrics (tests/test_metrics.py checks every Keras metric against it); a name
it doesn't know is refused rather than guessed.
"""

from __future__ import annotations

import math

from pipeline.errors import ConfigError

LOWER = frozenset({
    "loss", "mae", "mse", "mape", "msle", "rmse", "kld", "logcosh",
    "mean_absolute_error", "mean_squared_error", "root_mean_squared_error",
    "mean_absolute_percentage_error", "mean_squared_logarithmic_error",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "hinge", "squared_hinge", "categorical_hinge", "kl_divergence", "poisson",
})
HIGHER = frozenset({
    "accuracy", "acc", "binary_accuracy", "categorical_accuracy",
    "sparse_categorical_accuracy", "top_k_categorical_accuracy",
    "sparse_top_k_categorical_accuracy", "auc", "precision", "recall", "f1_score",
    "fbeta_score", "r2_score", "cosine_similarity", "pearson_correlation",
    "concordance_correlation", "io_u", "mean_io_u", "binary_io_u", "one_hot_io_u",
    "one_hot_mean_io_u",
})
PREFIXES = ("best_", "kfold_", "cv_", "val_", "test_", "train_")

# The figure a dataset's models compete on in the registry, by task. Never a test metric.
RANKED_BY = {"multiclass": "accuracy", "binary": "accuracy", "regression": "mae"}


def base_name(metric: str) -> str:
    """`kfold_val_mae_mean` -> `mae`: the metric behind a logged name (Keras takes `ACC`
    for `acc`, so case doesn't matter here either)."""
    name = metric.lower().removesuffix("_mean")
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if name.startswith(prefix) and name != prefix.rstrip("_"):
                name, stripped = name[len(prefix):], True
    return name


def is_known(metric: str) -> bool:
    name = base_name(metric)
    return name in LOWER or name in HIGHER or name.endswith("_loss")


def higher_is_better(metric: str) -> bool:
    """True for accuracies and scores, False for losses and errors; unknown names refused."""
    name = base_name(metric)
    if name in HIGHER:
        return True
    if name in LOWER or name.endswith("_loss"):
        return False
    raise ConfigError(f"metric '{metric}': the pipeline doesn't know whether higher or lower "
                      f"is better. Fix: use one of: {', '.join(sorted(LOWER | HIGHER))}")


def best(metric: str, values: list[float]) -> float:
    """The best of a metric's values (per epoch, per trial, per model)."""
    return max(values) if higher_is_better(metric) else min(values)


def better(metric: str, new: float, old: float) -> bool:
    """Strictly better; NaN never wins and is always beaten."""
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    return new > old if higher_is_better(metric) else new < old


def selection_metric(task: str, kfold: bool) -> str:
    """The validation figure a model of this task is ranked by: `val_accuracy`, `val_mae`,
    or with K-fold validation its mean over folds (`kfold_val_mae_mean`)."""
    metric = RANKED_BY[task]
    return f"kfold_val_{metric}_mean" if kfold else f"val_{metric}"


def figure(metric: str, history: dict[str, list[float]], summary: dict) -> float | None:
    """A trained model's figure for `metric`: its summary's (the K-fold mean), else the best
    value of its history (the epoch early stopping restored). None if it never logged it."""
    if metric in summary:
        return float(summary[metric])
    values = history.get(metric)
    return float(best(metric, values)) if values else None
