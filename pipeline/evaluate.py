"""Stage `evaluate`: a trained model on the untouched test split, in four steps with one
owner each: score it (pipeline/scoring.py), write DVC metrics (`dvc metrics show/diff`),
plots data and PNGs (pipeline/plots.py; the K-fold curve: pipeline/curves.py), add all of
it to the model's MLflow run (pipeline/run_log.py), and register it, moving the champion
alias only for a better validation figure (pipeline/registry.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline import cli, curves, layout
from pipeline.arrays import dense, load_split
from pipeline.config import dataset_config, load_params, model_config
from pipeline.dvcfiles import target
from pipeline.errors import DataError
from pipeline.files import atomic_dir, write_json
from pipeline.metrics import figure, selection_metric
from pipeline.plots import (
    draw_kfold,
    write_conv_plots,
    write_history_csv,
    write_kfold_csv,
    write_plots,
    write_predictions_csv,
)
from pipeline.scoring import score

log = logging.getLogger("pipeline.evaluate")


def evaluate(name: str, params: DictConfig, data_dir: Path, models_dir: Path,
             out_dir: Path) -> dict[str, Any]:
    import keras
    import mlflow

    from pipeline import registry, run_log, tracking

    cfg = model_config(params, name)
    ds = dataset_config(params, cfg.dataset)
    folder = layout.model_dir(models_dir, name)
    model_path = folder / layout.MODEL_FILE
    if not model_path.is_file():
        raise DataError(f"{model_path} not found. Fix: run "
                        f"`dvc repro {target('train', name)}` first")
    prepared = layout.prepared_dir(data_dir, cfg.dataset)
    manifest = layout.read_manifest(prepared)
    run_id = layout.read_run(folder, f"run `dvc repro -f {target('train', name)}`")
    tracking.connect(params)
    _require_run(run_id, name, tracking.tracking_uri(params))

    model = keras.models.load_model(model_path)
    x_test, y_test = load_split(prepared / "test.npz")
    history, summary = layout.read_training(folder)
    if not history.get("loss"):
        raise DataError(f"{folder / layout.HISTORY_FILE} is missing or empty. Fix: run `dvc "
                        f"repro -f {target('train', name)}`")
    metrics, predicted = score(model, x_test, y_test, ds)
    metrics["epochs"] = len(history["loss"])
    metrics["data_source"] = manifest["source"]["kind"]

    title = f"{cfg.dataset} / {name}"
    curve = curves.from_summary(summary, cfg.kfold, ds.task)
    with atomic_dir(out_dir / "plots") as plots:
        write_plots(plots, history, ds, y_test, predicted, title)
        if curve is not None:
            draw_kfold(plots, curve, title, summary.get("final_epochs"))
        write_conv_plots(plots, model, dense(x_test[:1]), title)  # models with a Conv2D
    write_history_csv(out_dir / "history.csv", history)
    # Data for `dvc plots`' own templates (dvc.yaml). Every model writes both files: a
    # foreach stage lists the same outputs for each; where a model has no such plot, the
    # file holds the header alone, which DVC draws as nothing.
    write_kfold_csv(out_dir / "kfold.csv", curve)
    write_predictions_csv(out_dir / "confusion.csv", list(ds.classes or []),
                          *((y_test, predicted) if ds.task != "regression" else ([], [])))
    # DVC metrics stay scalar (readable `dvc metrics show`); per-class detail goes beside them.
    detail = {k: metrics[k] for k in ("per_class", "confusion_matrix") if k in metrics}
    write_json(out_dir / "metrics.json", {k: v for k, v in metrics.items() if k not in detail})
    write_json(out_dir / "per_class.json", detail)
    run_log.log_test_results(run_id, metrics, out_dir / "plots")
    mlflow.MlflowClient().log_inputs(run_id, datasets=run_log.split_inputs(
        params.datasets[cfg.dataset], cfg.dataset, manifest, run_log.TEST_INPUTS))
    metric = selection_metric(ds.task, cfg.kfold is not None)
    value = figure(metric, history, summary)
    version, champion = registry.register(cfg.dataset, run_id, metric, value)
    headline = {k: round(v, 4) for k, v in metrics.items()
                if k.startswith("test_") and isinstance(v, float)}
    log.info("evaluate %s: %s (data: %s); registered %s v%s, %s=%s%s", name, headline,
             layout.data_label(manifest["source"]), cfg.dataset, version, metric,
             "-" if value is None else f"{value:.4f}", " -> champion" if champion else "")
    return metrics


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
                        f"{target('train', name)}` logs a new one there") from None


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.evaluate", "Score one trained model on the test split; "
                         "write metrics and plots.", "model", ("data", "models"),
                         out="results/<dataset>/<model>")

    def run(args: argparse.Namespace) -> None:
        params = load_params(args.params)
        dataset = model_config(params, args.model).dataset
        out = args.out_dir or layout.RESULTS / dataset / args.model
        evaluate(args.model, params, args.data_dir, args.models_dir, out)

    cli.run(parser, argv, run)


if __name__ == "__main__":
    main()
