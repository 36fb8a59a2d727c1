"""The rules a setting must satisfy on its own: names, types beyond the schema, ranges, and
what goes with what (a monitor the model will log, a validation figure to rank it by).

`config.load_params` runs them for every command. They are the first of the checks
`preflight.check_all` runs before anything is touched; the others need more than the
settings (facts.py: the prepared data and scikit-learn; models.check_model: Keras).
Each failure is a ConfigError naming the key; its params.yaml line is added when shown.
"""

from __future__ import annotations

import math
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import metrics
from pipeline.layout import BASELINE
from pipeline.rules import (
    PLACEHOLDERS,
    check_seed,
    check_url,
    close_names,
    fail,
    positive,
)
from pipeline.validate_data import check_dataset, check_published

# A dataset or model key names folders, DVC stages, MLflow experiments and shell
# arguments: an entry name only, never a path or a shell word.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# Above it, a typo rather than a setting: the books use 1e-3 to 1e-2, and at 10 adam, sgd
# and rmsprop already start at losses of 1e4-1e6 on 28x28 images (measured here).
MAX_LEARNING_RATE = 10.0


def check_params(cfg: DictConfig) -> None:
    """The rules that need only the settings themselves."""
    check_seed("seed", cfg.seed)
    for group in ("datasets", "models"):
        for name in cfg[group]:
            if not NAME.fullmatch(str(name)):
                fail(f"{group}.{name}", f"'{name}' is not an entry name", "letters, digits, _ "
                     "or -, starting with a letter (it names folders, stages and MLflow "
                     "experiments)", "rename the entry, e.g. my_dataset")
    if BASELINE in cfg.models:  # results/<dataset>/baseline/ is the baseline's
        fail(f"models.{BASELINE}", "'baseline' names the baseline's results folder",
             "another model name", "rename the entry, e.g. baseline_dense")
    _check_download(cfg.download)
    for name, ds in cfg.datasets.items():
        check_dataset(f"datasets.{name}", ds)
    _check_tracking(cfg.tracking.uri)
    if cfg.baseline.cv_folds < 2:
        fail("baseline.cv_folds", f"{cfg.baseline.cv_folds} folds", "2 or more",
             "use 5 (the books' choice)")
    if cfg.baseline.n_jobs == 0:
        fail("baseline.n_jobs", "0 workers", "-1 (all cores), a positive count or null",
             "use -1")
    for name, model in cfg.models.items():
        _check_model(f"models.{name}", model, cfg)
    for name, ds in cfg.datasets.items():  # after the models: they name them
        check_published(f"datasets.{name}", ds,
                        [m for m, model in cfg.models.items() if model.dataset == name])


def _check_download(download: DictConfig) -> None:
    if not 0 <= download.retries <= 20:
        fail("download.retries", f"{download.retries} retries", "0 to 20", "use 3")
    if not 0 < download.timeout < math.inf:
        fail("download.timeout", f"{download.timeout} seconds", "a positive number of seconds",
             "use 30")
    for i, mirror in enumerate(download.mirrors):
        key = f"download.mirrors[{i}]"
        unknown = [p for p in PLACEHOLDERS.findall(mirror) if p not in ("dataset", "file")]
        if unknown or mirror.count("{") != mirror.count("}"):
            fail(key, f"'{mirror}' has the placeholder {{{unknown[0] if unknown else ''}}}",
                 "only {dataset} and {file}", "write e.g. https://mirror.example/{dataset}/{file}")
        if "://" in mirror or mirror.lower().startswith(("http:", "https:")):
            check_url(key, mirror.replace("{dataset}", "d").replace("{file}", "f"), mirror)


TRACKING_SCHEMES = re.compile(
    r"(https?|file|sqlite|postgresql|mysql|mssql|databricks(-uc)?)(\+\w+)?:")


def _check_tracking(uri: str | None) -> None:
    if uri is None:
        return
    if not TRACKING_SCHEMES.match(uri):
        fail("tracking.uri", f"'{uri}' is not a tracking store URI", "null (the embedded "
             "sqlite:///mlflow.db), http(s)://host:port, sqlite:///path or "
             "postgresql+psycopg2://...", "write the scheme, e.g. http://host:5000")
    if uri.startswith(("http:", "https:")):
        check_url("tracking.uri", uri)


def logged_names(model: DictConfig, validation: bool) -> list[str]:
    """What Keras will log for this model: `loss`, each metric under the name it is given,
    and their `val_` twins when the fit has validation data."""
    names = ["loss", *[str(m) for m in model.metrics]]
    return names + [f"val_{n}" for n in names] if validation else names


def has_validation(model: DictConfig, ds: DictConfig) -> bool:
    return ds.split.validation != 0 or model.kfold is not None


def _check_model(key: str, model: DictConfig, cfg: DictConfig) -> None:
    if model.dataset not in cfg.datasets:
        fail(f"{key}.dataset", f"unknown dataset '{model.dataset}'",
             f"one of: {', '.join(cfg.datasets)}", "use a key of `datasets:`")
    ds = cfg.datasets[model.dataset]
    positive(f"{key}.epochs", model.epochs)
    positive(f"{key}.batch_size", model.batch_size)
    if not model.layers:
        fail(f"{key}.layers", "no layers", "a list of {type: <keras.layers class>, ...}",
             "list at least the output layer")
    for i, layer in enumerate(model.layers):
        if not isinstance(layer.get("type"), str):
            fail(f"{key}.layers[{i}]", "no `type`", "a keras.layers class name",
                 "e.g. {type: Dense, units: 16}")
    if not isinstance(model.optimizer.get("type"), str):
        fail(f"{key}.optimizer", "no `type`", "a Keras optimizer",
             "e.g. {type: rmsprop, learning_rate: 0.001}")
    rate = model.optimizer.get("learning_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 < rate <= MAX_LEARNING_RATE):
        fail(f"{key}.optimizer.learning_rate", f"{rate!r} is not a learning rate a Keras "
             "optimizer can train with", f"a positive number up to {MAX_LEARNING_RATE}",
             "use e.g. 0.001")
    for where_, value in _numbers(OmegaConf.to_container(model, resolve=True), key):
        if not math.isfinite(value):
            fail(where_, f"{value} is not a finite number", "a finite number",
                 "write the value (NaN and infinity train nothing)")
    if model.kfold is not None:
        positive(f"{key}.kfold.folds", model.kfold.folds)
        if model.kfold.folds < 2:
            fail(f"{key}.kfold.folds", "1 fold", "2 or more", "use 4 (the book's choice)")
        positive(f"{key}.kfold.epochs", model.kfold.epochs)
        if model.kfold.choose_epochs is not None:
            _check_epoch_choice(f"{key}.kfold.choose_epochs", model.kfold.choose_epochs,
                                model.kfold.epochs)
    if model.ensemble is not None:
        _check_ensemble(f"{key}.ensemble", model)
    if not has_validation(model, ds):
        fail(f"{key}.kfold", f"null, and {model.dataset} has no validation rows "
             f"(datasets.{model.dataset}.split.validation: 0), so no validation figure could "
             "rank this model or stop its training", "validation rows or K-fold validation",
             f"set datasets.{model.dataset}.split.validation (e.g. 0.2), or kfold: "
             "{folds: 4, epochs: 100}")
    if len(set(model.metrics)) != len(model.metrics):
        fail(f"{key}.metrics", "a metric is listed twice", "each metric once", "remove the copy")
    ranked = metrics.RANKED_BY[ds.task]
    if ranked not in model.metrics:
        fail(f"{key}.metrics", f"{list(model.metrics)} lacks {ranked}",
             f"{ranked} among the metrics: {ds.task} models are ranked by validation {ranked}",
             f"add {ranked}" + close_names(model.metrics, [ranked]))
    stop = model.early_stopping
    if stop is not None:
        if stop.patience < 0:
            fail(f"{key}.early_stopping.patience", f"{stop.patience} is negative",
                 "0 or more epochs", "use 2")
        names = logged_names(model, validation=True)
        if stop.monitor not in names:
            fail(f"{key}.early_stopping.monitor", f"'{stop.monitor}' is never logged",
                 f"one of: {', '.join(names)}", "use val_loss" + close_names([stop.monitor], names))
        if not metrics.is_known(stop.monitor):
            fail(f"{key}.early_stopping.monitor", f"'{stop.monitor}': unknown direction",
                 "a loss, an error or a score the pipeline knows", "use val_loss")


def _check_ensemble(key: str, model: DictConfig) -> None:
    """An ensemble needs two members or more, and fold models need K-fold."""
    ens = model.ensemble
    positive(f"{key}.fits", ens.fits)
    if ens.folds and model.kfold is None:
        fail(f"{key}.folds", "true, and kfold is null: there are no fold models to average",
             "folds: true only with kfold: {folds, epochs}", "set folds: false, or kfold: "
             "{folds: 4, epochs: 100}")
    if ens.fits == 1 and not ens.folds:
        fail(key, "one final fit and no fold models: nothing to average",
             "fits: 2 or more, or folds: true", "set ensemble: null, or fits: 4")


def _check_epoch_choice(key: str, choice: DictConfig, kfold_epochs: int) -> None:
    """The curve the final epochs are read off must have an epoch left to choose."""
    smoothing = choice.smoothing
    if not (isinstance(smoothing, (int, float)) and 0 <= smoothing < 1):
        fail(f"{key}.smoothing", f"{smoothing!r} is outside [0, 1)", "a factor in [0, 1) (0: "
             "no smoothing)", "use 0.9 (the book's) or 0")
    if isinstance(choice.skip, bool) or not 0 <= choice.skip < kfold_epochs:
        fail(f"{key}.skip", f"{choice.skip!r} of the curve's {kfold_epochs} epochs skipped",
             f"0 to {kfold_epochs - 1} (kfold.epochs - 1): an epoch left to choose",
             f"use {min(10, kfold_epochs - 1)}")


def _numbers(value: Any, key: str):
    """(key, number) for every float or int inside a model's settings (layers, optimizer)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, float(value)


