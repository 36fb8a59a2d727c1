"""Stage `train`: fit one Keras model (an entry under `models:` in params.yaml).

Seeded, deterministic ops; EarlyStopping with the best weights restored and a
best-model checkpoint on the validation split; TerminateOnNaN, and a NaN loss
fails the stage instead of saving a garbage model. Sparse features go to `fit`
as sparse matrices. With `kfold`, the book's K-fold validation runs first
(per-fold and mean validation metric), then a final model fits all of train.
Writes models/<model>/{model.keras, history.json, run.json}, atomically, and
tracks the run in MLflow (params, per-epoch metrics, the model with signature).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from pipeline.config import dataset_config, load_params, model_config
from pipeline.console import run_stage, source_banner
from pipeline.errors import DataError
from pipeline.files import atomic_dir, load_split, write_json
from pipeline.prepare import read_manifest

log = logging.getLogger("pipeline.train")
History = dict[str, list[float]]  # Keras' per-epoch metrics


class TrainingFailed(DataError):
    """Training diverged; nothing was saved."""


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def fit_once(name: str, cfg: DictConfig, manifest: dict, train, val, epochs: int,
             checkpoint: Path) -> tuple[Any, dict[str, list[float]]]:
    """Build, fit and return (model, history); raise TrainingFailed on a NaN loss."""
    from pipeline.models import build_callbacks, build_model

    x_train, y_train = train
    sparse = manifest["splits"]["train"]["sparse"]
    model = build_model(name, cfg, tuple(x_train.shape[1:]), sparse)
    has_val = val is not None and val[0].shape[0] > 0
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=cfg.batch_size,
        validation_data=val if has_val else None,
        callbacks=build_callbacks(cfg, str(checkpoint), has_val), verbose=0,
        shuffle=True,
    ).history
    losses = history.get("loss", [])
    if not losses or not np.all(np.isfinite(losses)):
        raise TrainingFailed(
            f"train {name}: the loss became NaN/inf at epoch {len(losses)}; no model was saved. "
            f"Fix: lower models.{name}.optimizer.learning_rate or check the data's scale"
        )
    return model, {k: [float(v) for v in values] for k, values in history.items()}


def kfold_scores(name: str, cfg: DictConfig, manifest: dict, train, tmp: Path) -> dict[str, Any]:
    """The book's K-fold validation on the training split: per-fold and mean scores."""
    x, y = train
    folds = cfg.kfold.folds
    size = len(y) // folds
    monitor = f"val_{cfg.metrics[0]}"
    per_fold = []
    for k in range(folds):
        val_rows = np.arange(k * size, (k + 1) * size)
        train_rows = np.setdiff1d(np.arange(len(y)), val_rows)
        _, history = fit_once(name, cfg, manifest, (x[train_rows], y[train_rows]),
                              (x[val_rows], y[val_rows]), cfg.kfold.epochs, tmp / "fold.keras")
        per_fold.append(history[monitor][-1])
        log.info("train %s: fold %d/%d %s=%.4f", name, k + 1, folds, monitor, per_fold[-1])
    (tmp / "fold.keras").unlink(missing_ok=True)
    return {f"kfold_{monitor}": per_fold, f"kfold_{monitor}_mean": float(np.mean(per_fold))}


def fit_and_score(name: str, params: DictConfig, prepared: Path, manifest: dict, train_split,
                  workdir: Path, final_fit: bool = True) -> tuple[Any, History, dict[str, Any]]:
    """The training recipe shared by the `train` stage and sweep trials: same seed, same
    data, same code, so a trial's validation score is what `dvc repro` would get.

    Returns (model or None, history, summary); `final_fit=False` stops after K-fold."""
    cfg = model_config(params, name)
    seed_everything(params.seed)
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    model, history = None, {}
    if cfg.kfold is not None:
        summary.update(kfold_scores(name, cfg, manifest, train_split, workdir))
        seed_everything(params.seed)
    if final_fit or cfg.kfold is None:
        val_split = load_split(prepared / "val.npz")
        model, history = fit_once(name, cfg, manifest, train_split, val_split, cfg.epochs,
                                  workdir / "checkpoint.keras")
        summary["epochs"] = len(history["loss"])
    summary["train_seconds"] = round(time.perf_counter() - started, 3)
    return model, history, summary


def train(name: str, params: DictConfig, data_dir: Path, out_dir: Path) -> dict[str, Any]:
    from pipeline import tracking

    cfg = model_config(params, name)
    dataset_config(params, cfg.dataset)
    prepared = data_dir / cfg.dataset / "prepared"
    manifest = read_manifest(prepared)
    tracking.connect(params)
    banner = source_banner(cfg.dataset, manifest["source"])
    if banner:
        log.warning("%s", banner)

    train_split = load_split(prepared / "train.npz")
    with atomic_dir(out_dir) as tmp:
        model, history, summary = fit_and_score(name, params, prepared, manifest, train_split,
                                                tmp)
        model.save(tmp / "model.keras")  # inside the temp dir: renamed only when all is done
        write_json(tmp / "history.json", history)
        write_json(tmp / "summary.json", summary)
    # The model is safe on disk before MLflow is touched: a tracking failure loses nothing.
    try:
        run_id = log_training_run(name, params, cfg, manifest, model, history, summary,
                                  train_split[0])
    except Exception as err:
        raise tracking.TrackingUnavailable(
            f"train {name}: the model is saved in {out_dir}/model.keras, but logging to MLflow "
            f"({tracking.tracking_uri(params)}) failed: {err}. Fix: check the tracking store, "
            "then rerun `dvc repro`"
        ) from None
    write_json(out_dir / "run.json", {"run_id": run_id,
                                      "tracking_uri": tracking.tracking_uri(params)})
    best = {k: round(min(v) if "loss" in k or "mae" in k else max(v), 4)
            for k, v in history.items() if k.startswith("val_")}
    log.info("train %s: %d epochs in %.1fs, best %s (%s data)", name, summary["epochs"],
             summary["train_seconds"], best or "-", manifest["source"]["kind"])
    return summary


def log_training_run(name, params, cfg, manifest, model, history, summary, x_train) -> str:
    import mlflow
    from mlflow.models import infer_signature

    from pipeline import tracking

    mlflow.set_experiment(cfg.dataset)
    tags = tracking.run_tags(cfg.dataset, manifest, f"train@{name}", "keras")
    with mlflow.start_run(run_name=f"{cfg.dataset} {name} (keras)", tags=tags) as run:
        client = mlflow.MlflowClient()
        tracking.log_params(client, run.info.run_id,
                            tracking.flatten(tracking.run_config(params, name)))
        epochs = len(history["loss"])
        tracking.log_metric_series(client, run.info.run_id, [
            (epoch, {key: values[epoch] for key, values in history.items()})
            for epoch in range(epochs)
        ])
        scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        tracking.log_metrics(client, run.info.run_id, scalars)
        example = x_train[:3]
        example = example.toarray() if hasattr(example, "toarray") else np.asarray(example)
        signature = infer_signature(example, model.predict(example, verbose=0))
        tracking.log_keras_model(model, signature, example)
        mlflow.log_text(json.dumps(history, indent=1), "history.json")
        return run.info.run_id


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.train",
        description="Train one Keras model from params.yaml (models.<name>), tracked in MLflow.",
    )
    parser.add_argument("model", help="a model name under `models:` in params.yaml")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out-dir", default=None, help="default: models/<model>")
    args = parser.parse_args(argv)
    out = Path(args.out_dir or f"models/{args.model}")
    run_stage(lambda: train(args.model, load_params(args.params), Path(args.data_dir), out))


if __name__ == "__main__":
    main()
