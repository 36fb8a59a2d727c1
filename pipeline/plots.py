"""What people look at, as the books draw them: learning curves, a confusion matrix (or
predicted vs actual), the K-fold validation curve, a CNN's first filters and feature maps;
and the data files `dvc plots show` draws from (per-epoch history, the K-fold curve, the
test predictions for DVC's `confusion` template)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.curves import Curve
from pipeline.files import atomic_file

MAX_MAPS = 64  # filters and feature maps drawn at most: a figure, not a dump


def write_history_csv(path: Path, history: dict) -> None:
    """Per-epoch metrics as CSV: `dvc plots show` draws the learning curves from it."""
    keys = sorted(history)
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *keys])
        for epoch in range(len(history["loss"])):
            writer.writerow([epoch + 1, *(f"{history[k][epoch]:.6g}" for k in keys)])


def write_predictions_csv(path: Path, classes: list[str], y, predicted) -> None:
    """One row per test example, its actual and predicted class names: DVC's `confusion`
    template counts them into the matrix `dvc plots show/diff` draws (no rows: none)."""
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["actual", "predicted"])
        writer.writerows([classes[a], classes[p]] for a, p in zip(y, predicted, strict=True))


def write_kfold_csv(path: Path, curve: Curve | None) -> None:
    """The K-fold curve per epoch, each fold's and their mean (last: what `dvc plots` draws);
    the header alone without K-fold."""
    folds = curve.folds if curve is not None else []
    mean = curve.mean if curve is not None else []
    with atomic_file(path, "w") as fh:
        writer = csv.writer(fh)
        writer.writerow(["epoch", *(f"fold_{k + 1}" for k in range(len(folds))), "mean"])
        for epoch in range(len(mean)):
            writer.writerow([epoch + 1, *(f"{fold[epoch]:.6g}" for fold in folds),
                             f"{mean[epoch]:.6g}"])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(plots: Path, history: dict, ds: DictConfig, y, predicted, title: str) -> None:
    """PNGs as the books draw them, for people, `dvc plots show` and MLflow."""
    plt = _pyplot()
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
        ax.xaxis.get_major_locator().set_params(integer=True)
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


def draw_kfold(plots: Path, curve: Curve, title: str, final_epochs: int | None) -> None:
    """The book's K-fold figure: the folds' mean validation curve (bold) over each fold's
    (thin), the smoothed mean the rule reads when it smooths, and the epoch it chose."""
    plt = _pyplot()
    mean = curve.mean
    epochs = np.arange(1, len(mean) + 1)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for k, fold in enumerate(curve.folds):
        ax.plot(epochs, fold[:len(mean)], linewidth=0.8, alpha=0.5, label=f"fold {k + 1}")
    ax.plot(epochs, mean, "k", linewidth=2.2, label=f"mean of {len(curve.folds)} folds")
    shown = [*curve.folds, mean]
    if curve.smoothed is not None:
        ax.plot(epochs[curve.skip:], curve.smoothed, "r--", linewidth=1.4,
                label=f"smoothed (EMA {curve.smoothing:g})")
        shown.append(curve.smoothed)
    what = (f"chosen: epoch {curve.best}" if curve.chosen else
            f"best: epoch {curve.best}" + (f" (final fit: {final_epochs})" if final_epochs else ""))
    ax.axvline(curve.best, color="tab:purple", linestyle=":", linewidth=1.4, label=what)
    # the first epochs are on another scale (the book drops them): zoom on the rest
    start = max(curve.skip, len(mean) // 10)
    tail = np.concatenate([np.asarray(v[start:len(mean)], dtype=float) for v in shown])
    if tail.size and np.ptp(tail) > 0:
        pad = 0.05 * np.ptp(tail)
        ax.set_ylim(tail.min() - pad, tail.max() + pad)
    ax.set(xlabel="Epochs", ylabel=f"Validation {curve.metric.removeprefix('val_')}",
           title=f"{title}\nK-fold validation {curve.metric.removeprefix('val_')}")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs: whole numbers
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(plots / "kfold_validation.png", dpi=100)
    plt.close(fig)


def first_conv(model):
    """The model's first 2-D convolution layer, or None: decided by its layers' classes."""
    import keras

    return next((layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)),
                None)


def write_conv_plots(plots: Path, model, image, title: str) -> None:
    """For a model with a Conv2D layer: its first conv layer's filters, and that layer's
    feature maps of one input (혼자 공부하는 머신러닝+딥러닝 ch. 8-3); nothing otherwise."""
    conv = first_conv(model)
    if conv is None:
        return
    import keras

    kernels = np.asarray(conv.get_weights()[0])  # (height, width, input channels, filters)
    channels = kernels.shape[2]
    kernels = kernels.mean(axis=2)
    limit = float(np.abs(kernels).max()) or 1.0
    size = f"{kernels.shape[0]}x{kernels.shape[1]}"
    note = f", mean of {channels} input channels" if channels > 1 else ""
    _grid(plots / "conv_filters.png", [kernels[..., i] for i in range(kernels.shape[-1])],
          f"{title}\nfirst Conv2D layer: {kernels.shape[-1]} {size} filters{note}",
          columns=16, cell=0.55, limits=(-limit, limit))
    maps = keras.Model(model.inputs, conv.output).predict(image[:1], verbose=0)[0]
    _grid(plots / "conv_feature_maps.png", [maps[..., i] for i in range(maps.shape[-1])],
          f"{title}\nfirst Conv2D layer: feature maps of the first test image", columns=8,
          cell=1.0)


def _grid(path: Path, panels: list, title: str, columns: int, cell: float,
          limits: tuple[float, float] | None = None) -> None:
    """Small images (`cell` inches) in a grid under one title, on one color scale if given."""
    plt = _pyplot()
    panels = panels[:MAX_MAPS]
    columns = min(columns, len(panels))
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(max(columns * cell, 6.0), rows * cell + 0.8),
                             squeeze=False, layout="constrained")
    vmin, vmax = limits or (None, None)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(panels):
            ax.imshow(panels[i], vmin=vmin, vmax=vmax)
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
