"""The training recipe shared by the `train` stage and sweep trials: same seed, same data,
same code, so a trial's validation score is exactly what `dvc repro` gets.

Seeded, deterministic ops; EarlyStopping with the best weights restored and a
best-model checkpoint on the validation split; TerminateOnNaN, and a NaN loss fails
instead of returning a garbage model. Sparse features go to `fit` as sparse matrices.
With `kfold`, the book's K-fold validation runs first (per-fold and mean validation
metric), then a final model fits all of train.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.config import model_config
from pipeline.errors import DataError
from pipeline.files import load_split

log = logging.getLogger("pipeline.train")
History = dict[str, list[float]]  # Keras' per-epoch metrics


class TrainingFailed(DataError):
    """Training diverged; nothing was saved."""


def training_key(params: DictConfig, model: str, manifest: dict) -> str:
    """Same key, same trained model: the model's effective config, the seed, the prepared
    train/val data and the code that trains (a code change never reuses an old result)."""
    from pipeline.lineage import code_digest

    payload = {
        "seed": params.seed,
        "model": OmegaConf.to_container(params.models[model], resolve=True),
        "data": [manifest["splits"][s]["sha256"] for s in ("train", "val")
                 if s in manifest["splits"]],
        "code": code_digest(__name__),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_callbacks(model_cfg: DictConfig, checkpoint_path: str, has_validation: bool) -> list:
    """EarlyStopping (best weights restored) and a best-model checkpoint, on the validation
    split when there is one; TerminateOnNaN and a progress bar (at a terminal only) always.
    Which way the monitored figure improves comes from pipeline/metrics.py."""
    import keras

    from pipeline.metrics import higher_is_better
    from pipeline.progress import EpochProgress

    callbacks: list = [keras.callbacks.TerminateOnNaN(), EpochProgress()]
    if has_validation:
        stop = model_cfg.early_stopping
        monitor = stop.monitor if stop is not None else "val_loss"
        mode = "max" if higher_is_better(monitor) else "min"
        if stop is not None:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=monitor, mode=mode, patience=stop.patience, restore_best_weights=True))
        callbacks.append(keras.callbacks.ModelCheckpoint(
            checkpoint_path, monitor=monitor, mode=mode, save_best_only=True))
    return callbacks


def fit_once(name: str, cfg: DictConfig, manifest: dict, train, val, epochs: int,
             checkpoint: Path) -> tuple[Any, History]:
    """Build, fit and return (model, history); raise TrainingFailed on a NaN loss."""
    from pipeline.models import build_model

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
    """Returns (model or None, history, summary); `final_fit=False` stops after K-fold."""
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
