"""What people look at: learning curves and a confusion matrix (or predicted vs actual) as
the books draw them, and the per-epoch CSV `dvc plots show` draws from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.files import atomic_file


def write_history_csv(path: Path, history: dict) -> None:
    """Per-epoch metrics as CSV: `dvc plots show` draws the learning curves from it."""
    keys = sorted(history)
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *keys])
        for epoch in range(len(history["loss"])):
            writer.writerow([epoch + 1, *(f"{history[k][epoch]:.6g}" for k in keys)])


def write_plots(plots: Path, history: dict, ds: DictConfig, y, predicted, title: str) -> None:
    """PNGs as the books draw them, for people, `dvc plots show` and MLflow."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(history)
    metric_names = [k for k in keys if not k.startswith("val_")]
    fig, axes = plt.subplots(1, len(metric_names), figsize=(5 * len(metric_names), 3.8))
    for ax, key in zip(np.atleast_1d(axes), metric_names, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], "bo", label=f"Training {key}")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], "b", label=f"Validation {key}")
        shown = "Training and validation" if f"val_{key}" in history else "Training"
        ax.set(xlabel="Epochs", ylabel=key, title=f"{shown} {key}")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(plots / "learning_curves.png", dpi=100)
    plt.close(fig)

    if ds.task == "regression":
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.scatter(y, predicted, s=12, alpha=0.7)
        low = float(min(np.min(y), np.min(predicted)))
        high = float(max(np.max(y), np.max(predicted)))
        ax.plot([low, high], [low, high], "k--", linewidth=1)
        # titles on two lines: "dataset / model: test ..." on one is wider than a 5-inch figure
        ax.set(xlabel="actual", ylabel="predicted", title=f"{title}\ntest predictions")
        fig.tight_layout()
        fig.savefig(plots / "predictions.png", dpi=100)
        plt.close(fig)
        return
    names = list(ds.classes)
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(5, len(names) * 0.3)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        [names[i] for i in y], [names[i] for i in predicted], labels=names, ax=ax,
        xticks_rotation="vertical", colorbar=False, include_values=len(names) <= 12)
    ax.set_title(f"{title}\ntest confusion matrix")
    fig.tight_layout()
    fig.savefig(plots / "confusion_matrix.png", dpi=100)
    plt.close(fig)
