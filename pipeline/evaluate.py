"""Stage `evaluate`: score a trained model on the untouched test split.

Classifiers: loss, accuracy, per-class precision/recall/F1 and a confusion
matrix; regressors: MAE, MSE, RMSE. Writes DVC metrics (`dvc metrics show/diff`),
DVC plots data (learning curves, confusion matrix; `dvc plots show`), PNG plots
as the books draw them, and adds all of it to the model's MLflow run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from pipeline import layout
from pipeline.config import dataset_config, load_params, model_config
from pipeline.console import run_stage
from pipeline.errors import DataError
from pipeline.files import atomic_dir, atomic_file, load_split, write_json
from pipeline.metrics import figure, selection_metric

log = logging.getLogger("pipeline.evaluate")


def predictions(model, x, task: str) -> np.ndarray:
    """Class indices (classifiers) or values (regression) for every test row."""
    scores = model.predict(x, verbose=0, batch_size=1024)
    if task == "regression":
        return scores.reshape(-1)
    if scores.shape[-1] == 1:  # a single sigmoid unit
        return (scores.reshape(-1) >= 0.5).astype(np.int64)
    return scores.argmax(axis=-1)


def score(model, x, y, ds: DictConfig) -> tuple[dict[str, Any], np.ndarray]:
    from sklearn.metrics import classification_report, confusion_matrix

    results = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=1024)
    metrics: dict[str, Any] = {f"test_{k}": float(v) for k, v in results.items()}
    predicted = predictions(model, x, ds.task)
    if ds.task == "regression":
        err = predicted - y
        mse = float(np.mean(err**2))
        metrics.update(test_mae=float(np.mean(np.abs(err))), test_mse=mse,
                       test_rmse=float(np.sqrt(mse)))
        return metrics, predicted
    labels = list(range(len(ds.classes)))
    report = classification_report(y, predicted, labels=labels, target_names=list(ds.classes),
                                   output_dict=True, zero_division=0)
    metrics["test_accuracy"] = float(np.mean(predicted == y))
    metrics["per_class"] = {name: {k: round(float(v), 6) for k, v in report[name].items()}
                            for name in ds.classes}
    metrics["confusion_matrix"] = confusion_matrix(y, predicted, labels=labels).tolist()
    return metrics, predicted


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
        ax.set(xlabel="Epochs", ylabel=key, title=f"Training and validation {key}")
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
        ax.set(xlabel="actual", ylabel="predicted", title=f"{title}: test predictions")
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
    ax.set_title(f"{title}: test confusion matrix")
    fig.tight_layout()
    fig.savefig(plots / "confusion_matrix.png", dpi=100)
    plt.close(fig)


def evaluate(name: str, params: DictConfig, data_dir: Path, models_dir: Path,
             out_dir: Path) -> dict[str, Any]:
    import keras

    from pipeline import registry, tracking

    cfg = model_config(params, name)
    ds = dataset_config(params, cfg.dataset)
    model_path = models_dir / name / "model.keras"
    if not model_path.is_file():
        raise DataError(f"{model_path} not found. Fix: run `dvc repro train@{name}` first")
    prepared = layout.prepared_dir(data_dir, cfg.dataset)
    manifest = layout.read_manifest(prepared)
    run = _read_run(models_dir / name / layout.RUN_FILE, name)
    tracking.connect(params)
    _require_run(run["run_id"], name, tracking.tracking_uri(params))

    model = keras.models.load_model(model_path)
    x_test, y_test = load_split(prepared / "test.npz")
    history = json.loads((models_dir / name / "history.json").read_text())
    metrics, predicted = score(model, x_test, y_test, ds)
    metrics["epochs"] = len(history["loss"])
    metrics["data_source"] = manifest["source"]["kind"]

    with atomic_dir(out_dir / "plots") as plots:
        write_plots(plots, history, ds, y_test, predicted, f"{cfg.dataset} / {name}")
    write_history_csv(out_dir / "history.csv", history)
    # DVC metrics stay scalar (readable `dvc metrics show`); per-class detail goes beside them.
    detail = {k: metrics[k] for k in ("per_class", "confusion_matrix") if k in metrics}
    write_json(out_dir / "metrics.json", {k: v for k, v in metrics.items() if k not in detail})
    write_json(out_dir / "per_class.json", detail)
    log_evaluation(run["run_id"], metrics, out_dir / "plots")
    summary = json.loads((models_dir / name / "summary.json").read_text())
    metric = selection_metric(ds.task, cfg.kfold is not None)
    value = figure(metric, history, summary)
    version, champion = registry.register(cfg.dataset, run["run_id"], metric, value)
    headline = {k: round(v, 4) for k, v in metrics.items()
                if k.startswith("test_") and isinstance(v, float)}
    log.info("evaluate %s: %s (%s data); registered %s v%s, %s=%s%s", name, headline,
             manifest["source"]["kind"], cfg.dataset, version, metric,
             "-" if value is None else f"{value:.4f}", " -> champion" if champion else "")
    return metrics


def _read_run(path: Path, name: str) -> dict[str, Any]:
    try:
        return {"run_id": str(json.loads(path.read_text())["run_id"])}
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path} is missing or unreadable. Fix: run `dvc repro -f "
                        f"train@{name}`") from None


def _require_run(run_id: str, name: str, uri: str) -> None:
    """The training run must be in this store (it was logged to another, or deleted)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.MlflowClient().get_run(run_id)
    except MlflowException as err:
        if err.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise DataError(f"evaluate {name}: its training run {run_id} is not in the tracking "
                        f"store {uri} (logged to another store, or deleted). Fix: `dvc repro -f "
                        f"train@{name}` logs a new one there") from None


def log_evaluation(run_id: str, metrics: dict[str, Any], plots: Path) -> None:
    import mlflow

    from pipeline import tracking

    client = mlflow.MlflowClient()
    # the test figures: the rest (epochs) the training run logged already
    scalars = {k: v for k, v in metrics.items()
               if k.startswith("test_") and isinstance(v, (int, float))}
    for cls, values in metrics.get("per_class", {}).items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cls)
        scalars.update({f"test_{k.replace('-', '_')}_{safe}": v for k, v in values.items()
                        if k != "support"})
    tracking.log_metrics(client, run_id, scalars)
    for png in sorted(plots.glob("*.png")):
        client.log_artifact(run_id, str(png), "plots")
    client.log_text(run_id, json.dumps(metrics, indent=1), "test_metrics.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.evaluate",
        description="Score one trained model on the test split; write metrics and plots.",
    )
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default=str(layout.DATA))
    parser.add_argument("--models-dir", default=str(layout.MODELS))
    parser.add_argument("--out-dir", default=None, help="default: results/<dataset>/<model>")
    args = parser.parse_args(argv)

    def run() -> None:
        params = load_params(args.params)
        dataset = model_config(params, args.model).dataset
        out = Path(args.out_dir) if args.out_dir else layout.RESULTS / dataset / args.model
        evaluate(args.model, params, Path(args.data_dir), Path(args.models_dir), out)

    run_stage(run, params=args.params)


if __name__ == "__main__":
    main()
