"""The training recipe shared by the `train` stage and sweep trials: same seed, same data,
same code, so a trial's validation score is exactly what `dvc repro` gets.

Seeded, deterministic ops; EarlyStopping with the best weights restored and a
best-model checkpoint on the validation split; TerminateOnNaN, and a NaN loss fails
instead of returning a garbage model. Sparse features go to `fit` as sparse matrices.
With `kfold`, the book's K-fold validation runs first (per-fold and mean validation
metric), then a final model fits all of train; with `ensemble`, the saved model averages
more final fits (other seeds) and, with `ensemble.folds`, the K fold models
(pipeline/ensemble.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline.arrays import load_split
from pipeline.config import model_config
from pipeline.errors import DataError

if TYPE_CHECKING:
    from pipeline.live import LiveTraining

log = logging.getLogger("pipeline.train")
History = dict[str, list[float]]  # Keras' per-epoch metrics


class TrainingFailed(DataError):
    """Training diverged; nothing was saved."""


LIBRARIES = ("keras", "tensorflow-cpu", "numpy")  # what computes the numbers


def training_key(params: DictConfig, model: str, manifest: dict, runner: str) -> str:
    """Same key, same trained model: the model's effective config, the seed, the prepared
    train/val data, the libraries, and all the code `runner` (the module that trains:
    pipeline.train, pipeline.trials) runs. A change to any of it never reuses a result."""
    from importlib.metadata import version

    from pipeline.lineage import code_digest

    payload = {
        "seed": params.seed,
        "model": OmegaConf.to_container(params.models[model], resolve=True),
        "data": [manifest["splits"][s]["sha256"] for s in ("train", "val")
                 if s in manifest["splits"]],
        "code": code_digest(runner),
        "libraries": [version(package) for package in LIBRARIES],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_callbacks(model_cfg: DictConfig, checkpoint_path: str, has_validation: bool,
                    progress: bool = True) -> list:
    """EarlyStopping (best weights restored) and a best-model checkpoint, on the validation
    split when there is one; TerminateOnNaN always, and a progress bar (at a terminal only)
    unless `progress` is off (parallel trials would draw over each other).
    Which way the monitored figure improves comes from pipeline/metrics.py."""
    import keras

    from pipeline.metrics import higher_is_better
    from pipeline.progress import EpochProgress

    callbacks: list = [keras.callbacks.TerminateOnNaN(), *([EpochProgress()] if progress else [])]
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
             checkpoint: Path, progress: bool = True, live: LiveTraining | None = None,
             extra: list | None = None) -> tuple[Any, History]:
    """Build, fit and return (model, history); raise TrainingFailed on a NaN loss. `live`:
    the MLflow run the epochs are sent to as they end; `extra`: more Keras callbacks."""
    from pipeline.models import build_model

    x_train, y_train = train
    sparse = manifest["splits"]["train"]["sparse"]
    model = build_model(name, cfg, tuple(x_train.shape[1:]), sparse)
    has_val = val is not None and val[0].shape[0] > 0
    try:
        history = model.fit(
            x_train, y_train, epochs=epochs, batch_size=cfg.batch_size,
            validation_data=val if has_val else None,
            callbacks=[*build_callbacks(cfg, str(checkpoint), has_val, progress),
                       *([live.callback()] if live is not None else []), *(extra or [])],
            verbose=0,
            shuffle=True,
        ).history
    finally:  # the epochs done show in the run, also when the fit failed
        if live is not None:
            live.send(raise_errors=False)
    losses = history.get("loss", [])
    if not losses or not np.all(np.isfinite(losses)):
        raise TrainingFailed(
            f"train {name}: the loss became NaN/inf at epoch {len(losses)}; no model was saved "
            f"(DVC keeps the previous one in its cache: `dvc checkout models/{name}` puts it "
            f"back). Fix: lower models.{name}.optimizer.learning_rate or check the data's scale"
        )
    return model, {k: [float(v) for v in values] for k, values in history.items()}


def validation_scores(model, cfg: DictConfig, val) -> dict[str, float]:
    """`val_<name>` of the model as it is (after early stopping restored its best epoch),
    batched as `fit` validates, so without early stopping they equal the last epoch's."""
    scores = model.evaluate(*val, batch_size=cfg.batch_size, verbose=0, return_dict=True)
    return {f"val_{k}": float(v) for k, v in scores.items()}


def kfold_scores(name: str, cfg: DictConfig, manifest: dict, train, tmp: Path, monitor: str,
                 progress: bool = True, live: LiveTraining | None = None, keep: bool = False
                 ) -> tuple[dict[str, Any], list]:
    """The book's K-fold validation on the training split: every validation figure per fold
    (the fold's model as trained) and its mean over folds (`kfold_val_mae_mean`); each
    fold's per-epoch validation history (`kfold_history`, folds x epochs) and their mean
    (`kfold_curve`, the book's figure); and the epoch where the folds' mean `monitor` is
    best (`kfold_best_epoch`), by the rule recorded beside it: what `kfold.choose_epochs`
    trains the final model for. `live`: each fold trains in a child run of it. Returns
    (summary, the fold models): with `keep` the K models, each put back to the chosen
    epoch under `choose_epochs` (as trained otherwise); [] without it."""
    from pipeline import curves
    from pipeline.ensemble import EpochWeights

    x, y = train
    folds = cfg.kfold.folds
    size = len(y) // folds
    per_fold: dict[str, list[float]] = {}
    histories: dict[str, list[list[float]]] = {}
    members: list[tuple[Any, EpochWeights]] = []
    for k in range(folds):
        val_rows = np.arange(k * size, (k + 1) * size)
        train_rows = np.setdiff1d(np.arange(len(y)), val_rows)
        val = (x[val_rows], y[val_rows])
        snapshots = EpochWeights()
        with live.fold(k + 1, folds) if live is not None else contextlib.nullcontext():
            model, history = fit_once(
                name, cfg, manifest, (x[train_rows], y[train_rows]), val, cfg.kfold.epochs,
                tmp / "fold.keras", progress, live,
                [snapshots] if keep and cfg.kfold.choose_epochs is not None else None)
        if keep:
            members.append((model, snapshots))
        for key, values in history.items():
            if key.startswith("val_"):
                histories.setdefault(key, []).append(values)
        for key, value in validation_scores(model, cfg, val).items():
            per_fold.setdefault(key, []).append(value)
        shown = f"val_{cfg.metrics[0]}"
        log.info("train %s: fold %d/%d %s=%.4f", name, k + 1, folds, shown, per_fold[shown][-1])
    (tmp / "fold.keras").unlink(missing_ok=True)
    summary: dict[str, Any] = {}
    for key, values in per_fold.items():
        summary[f"kfold_{key}"] = values
        summary[f"kfold_{key}_mean"] = float(np.mean(values))
    smoothing, skip = curves.settings(cfg.kfold)
    curve = curves.mean_curve(histories[monitor])
    summary["kfold_history"] = histories
    summary["kfold_curve"] = {k: [float(v) for v in curves.mean_curve(h)]  # the folds' mean
                              for k, h in histories.items()}
    summary["kfold_best_epoch"] = curves.best_epoch(curve, monitor, smoothing, skip)
    summary["kfold_best_epoch_rule"] = curves.describe(monitor, folds, smoothing, skip)
    log.info("train %s: K-fold curve: epoch %d, mean %s=%.4f (%s)", name,
             summary["kfold_best_epoch"], monitor, curve[summary["kfold_best_epoch"] - 1],
             summary["kfold_best_epoch_rule"])
    if cfg.kfold.choose_epochs is not None:  # every member at the epoch the curve chose
        for _, snapshots in members:
            snapshots.restore(summary["kfold_best_epoch"])
    return summary, [model for model, _ in members]


def fit_and_score(name: str, params: DictConfig, prepared: Path, manifest: dict, train_split,
                  workdir: Path, final_fit: bool = True, progress: bool = True,
                  live: LiveTraining | None = None) -> tuple[Any, History, dict[str, Any]]:
    """Returns (model or None, history, summary); `final_fit=False` stops after K-fold;
    `progress=False`: no epoch bar; `live`: the MLflow run that shows it as it trains.
    With `kfold.choose_epochs`, the final fit trains for the K-fold curve's best epoch
    instead of `epochs` (`final_epochs`, `final_epochs_rule`). With `ensemble`, the model
    returned averages the final fits and, with `ensemble.folds`, the fold models; the
    history is the first final fit's (seeded as without an ensemble)."""
    from pipeline import curves, ensemble

    cfg = model_config(params, name)
    seed_everything(params.seed)
    started = time.perf_counter()
    summary: dict[str, Any] = {}
    model, history, folds = None, {}, []
    epochs = cfg.epochs
    if cfg.kfold is not None:
        monitor = curves.monitored(params.datasets[cfg.dataset].task)
        scores, folds = kfold_scores(name, cfg, manifest, train_split, workdir, monitor,
                                     progress, live, cfg.ensemble is not None and
                                     cfg.ensemble.folds)
        summary.update(scores)
        seed_everything(params.seed)
        chosen = cfg.kfold.choose_epochs is not None  # read off the curve: never the test split
        epochs = summary["kfold_best_epoch"] if chosen else cfg.epochs
        summary["final_epochs"] = epochs
        summary["final_epochs_rule"] = f"models.{name}." + (
            "kfold.choose_epochs (kfold_best_epoch)" if chosen else "epochs")
    if final_fit or cfg.kfold is None:
        val_split = load_split(prepared / "val.npz")
        model, history = fit_once(name, cfg, manifest, train_split, val_split, epochs,
                                  workdir / "checkpoint.keras", progress, live)
        summary["epochs"] = len(history["loss"])
        if cfg.ensemble is not None:  # chosen on validation, never the test split (README)
            fits = [model, *_more_fits(name, params, manifest, train_split, val_split, epochs,
                                       workdir, progress, live)]
            model = ensemble.average(name, cfg, [*fits, *folds])
            summary["ensemble"] = ensemble.describe(name, cfg, len(fits), len(folds))
        if val_split[0].shape[0]:  # the figures of the model as saved (early stopping may
            # have restored an earlier epoch): what the registry, sweeps and report rank by
            summary.update(validation_scores(model, cfg, val_split))
    summary["train_seconds"] = round(time.perf_counter() - started, 3)
    return model, history, summary


def _more_fits(name: str, params: DictConfig, manifest: dict, train, val, epochs: int,
               workdir: Path, progress: bool, live: LiveTraining | None) -> list:
    """The ensemble's final fits after the first, each in a child run of `live` ("fit i/N"),
    as K-fold's folds are. Fit i's seed is drawn from (seed, i), not seed + i - 1: runs
    with neighbouring seeds (a benchmark's paired seeds) must not share members."""
    cfg = model_config(params, name)
    count = cfg.ensemble.fits
    models = []
    for i in range(2, count + 1):
        seed_everything(int(np.random.SeedSequence([params.seed, i]).generate_state(1)[0]))
        with (live.fit(i, count) if live is not None
              else contextlib.nullcontext()):
            model, _ = fit_once(name, cfg, manifest, train, val, epochs,
                                workdir / "member.keras", progress, live)
        models.append(model)
    (workdir / "member.keras").unlink(missing_ok=True)
    return models
