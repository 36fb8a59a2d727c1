"""What a pipeline run records in MLflow: its config as params, tags to filter and trust
it by, per-epoch and final metrics, and its model with pinned serving requirements.

All logging is batched (one `log_batch` per 100 params, 1000 metrics): over HTTP, single
calls are ~100x slower.
"""

from __future__ import annotations

import contextlib
import json
import math
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.dvcfiles import PROJECT_FILE, STAGES_DIR
from pipeline.layout import UPSTREAM_KINDS, data_label

BATCH = 100  # MLflow's limit of params per log_batch call (metrics: 1000)


def flatten(data: Any, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: the full config as MLflow params."""
    if isinstance(data, DictConfig):
        data = OmegaConf.to_container(data, resolve=True)
    out: dict[str, str] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(data, list) and any(isinstance(v, (Mapping, list)) for v in data):
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = str(data)[:6000]
    return out


# What a result comes from: the code, its configuration, the pipeline files (git pathspecs:
# stages/<stage>/dvc.yaml, not the lock beside it) and the locked environment. The files the
# pipeline writes itself (the lock files, results/, reports/) are not: a run that rewrote
# them, as every `dvc repro` does, did not come from a modified checkout.
SOURCES = ("pipeline", "conf", "params.yaml", PROJECT_FILE,
           f":(glob){STAGES_DIR}/*/{PROJECT_FILE}", "pyproject.toml", "uv.lock")


def git_tags(root: Path | None = None) -> dict[str, str]:
    """`git_commit`, and `git_dirty`: whether the code or configuration differs from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root or Path.cwd(), capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"git_commit": git("rev-parse", "HEAD") or "unknown",
            "git_dirty": str(bool(git("status", "--porcelain", "--", *SOURCES))).lower()}


def run_tags(dataset: str, manifest: dict, stage: str, kind: str,
             root: Path | None = None) -> dict[str, str]:
    """Tags that let a person filter and trust a run in the UI."""
    return {
        **git_tags(root),
        "dataset": dataset,
        "data_source": manifest["source"]["kind"],
        "data_label": data_label(manifest["source"]),  # what the data is (layout.py's words)
        "data_hash": manifest["splits"]["train"]["sha256"],
        "dvc_stage": stage,
        "model_kind": kind,
    }


def log_params(client, run_id: str, params: Mapping[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for start in range(0, len(items), BATCH):
        client.log_batch(run_id, params=items[start : start + BATCH])


def log_metrics(client, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    log_metric_series(client, run_id, [(step, metrics)])


def log_metric_series(
    client, run_id: str, series: Iterable[tuple[int, Mapping[str, float]]]
) -> None:
    """Per-epoch metrics (step = epoch) in as few calls as possible."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(key, float(value), now, step)
             for step, metrics in series for key, value in metrics.items()]
    for start in range(0, len(items), 1000):
        client.log_batch(run_id, metrics=items[start : start + 1000])


def log_training(client, run_id: str, history: Mapping[str, list[float]],
                 summary: Mapping[str, object], extra: Mapping[str, float] | None = None) -> None:
    """A training's figures at once: each epoch at its step, then its summary (a trained
    model logged after its training, whose epochs nobody watched live)."""
    epochs = len(history.get("loss", []))
    log_metric_series(client, run_id, [(epoch, {k: v[epoch] for k, v in history.items()})
                                       for epoch in range(epochs)])
    log_summary(client, run_id, history, summary, extra)


def log_summary(client, run_id: str, history: Mapping[str, list[float]],
                summary: Mapping[str, object], extra: Mapping[str, float] | None = None) -> None:
    """A training's scalars at step 0, its rules in words as `summary.*` tags, and K-fold's
    mean validation curve as `kfold_curve_val_*` per epoch, after its epochs were logged.
    A figure of the saved model that is also an epoch series (`val_loss` after early
    stopping restored an earlier epoch) goes one step past the last epoch, as MLflow's Keras
    autologging logs restored weights, so the run's latest value is the saved model's and
    every series keeps one point per step."""
    from mlflow.entities import RunTag

    epochs = len(history.get("loss", []))
    scalars = {k: float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    saved = {k: scalars.pop(k) for k in list(scalars) if k in history}
    series = []
    if any(not math.isclose(v, history[k][-1], rel_tol=1e-6) for k, v in saved.items()):
        series.append((epochs, saved))
    # K-fold: the folds' mean validation curve, per epoch (each fold's is in its child run)
    means = {f"kfold_curve_{k}": curve for k, curve in (summary.get("kfold_curve") or {}).items()}
    series += [(epoch, {k: float(c[epoch]) for k, c in means.items() if epoch < len(c)})
               for epoch in range(max((len(c) for c in means.values()), default=0))]
    log_metric_series(client, run_id, [*series, (0, {**scalars, **(extra or {})})])
    rules = {f"summary.{k}": v for k, v in summary.items() if isinstance(v, str)}
    if rules:  # how an epoch count was chosen, in words
        client.log_batch(run_id, tags=[RunTag(k, v[:5000]) for k, v in rules.items()])


def log_keras_model(model, signature, input_example, name: str = "model") -> str:
    """Log a Keras model as an MLflow 3 logged model (the run's Models column,
    `mlflow.search_logged_models`), with its signature and input example; returns its id.

    `mlflow.keras.log_model(..., input_example=...)` fails in MLflow 3.17: its `save_model`
    writes the example before it creates the model's folder. So the model goes through
    `Model.log`, MLflow's own route for every flavor (custom flavors use it too), with
    `mlflow.keras` whose `save_model` gets its folder first: the same logged model, MLmodel
    and serving-input check as `log_model` makes.
    """
    import io
    import os
    import types

    import mlflow
    from mlflow.models import Model

    def save_model(path: str, **kwargs: Any) -> None:
        os.makedirs(path, exist_ok=True)
        mlflow.keras.save_model(path=path, **kwargs)

    keras_flavor = types.SimpleNamespace(__name__="mlflow.keras", save_model=save_model)
    with contextlib.redirect_stdout(io.StringIO()):  # Keras' progress bar of the serving
        info = Model.log(artifact_path=None, name=name, flavor=keras_flavor, model=model,
                         signature=signature, input_example=input_example,  # check
                         pip_requirements=serving_requirements())
    return info.model_id


# The splits a run used, by MLflow's dataset context: a training's, and an evaluation's.
TRAINING_INPUTS = {"train": "training", "val": "validation"}
TEST_INPUTS = {"test": "testing"}


def split_inputs(ds: DictConfig, dataset: str, manifest: dict,
                 contexts: Mapping[str, str]) -> list:
    """The prepared splits a run used, as MLflow datasets (the run's Datasets column): named
    `<dataset>/<split>`, the split's sha256 as digest (`split_digest`), its array
    shapes as schema, and where the data came from as source: the canonical or mirror URL,
    or the recipe of a stand-in together with the URLs it stands in for."""
    import numpy as np
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.types import Schema, TensorSpec

    inputs = []
    for split, context in contexts.items():
        info = manifest["splits"][split]
        schema = Schema([
            TensorSpec(np.dtype(info["x_dtype"]), (-1, *info["x_shape"][1:]), "x"),
            TensorSpec(np.dtype(info["y_dtype"]), (-1,), "y")])
        meta = MetaDataset(data_source(ds, manifest["source"]), name=f"{dataset}/{split}",
                           digest=split_digest(info["sha256"]), schema=schema)
        profile = {"rows": info["rows"], "sparse": info["sparse"],
                   "data_source": manifest["source"]["kind"],
                   "data_label": data_label(manifest["source"])}
        inputs.append(DatasetInput(Dataset(**meta.to_dict(), profile=json.dumps(profile)),
                                   [InputTag("mlflow.data.context", context)]))
    return inputs


def split_digest(sha256: str) -> str:
    """A split's MLflow digest: the first 16 hex digits of its sha256 (MLflow keeps 36)."""
    return sha256.removeprefix("sha256:")[:16]


def data_source(ds: DictConfig, source: Mapping[str, Any]):
    """An MLflow dataset source for a source record (pipeline/download.py writes them): the
    URL or folder it was downloaded from, MLflow choosing the kind as for any location."""
    import warnings

    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.dataset_source_registry import resolve_dataset_source

    files = list(source.get("files", {}))
    if source.get("kind") in UPSTREAM_KINDS:
        base = str(source.get("detail", ""))
        location = f"{base}/{files[0]}" if len(files) == 1 and "," not in base else base
        with warnings.catch_warnings():  # "can be interpreted in multiple ways": a folder
            warnings.simplefilter("ignore")
            return resolve_dataset_source(location)
    return CodeDatasetSource({"kind": str(source.get("kind")), "recipe": str(source.get("detail")),
                              "stands_in_for": ", ".join(f.url for f in ds.source.files)})


KERAS_PACKAGES = ("tensorflow-cpu", "keras", "numpy", "scipy", "mlflow")
SKLEARN_PACKAGES = ("scikit-learn", "numpy", "scipy", "mlflow")


def serving_requirements(packages: tuple[str, ...] = KERAS_PACKAGES) -> list[str]:
    """What a served Keras model needs, pinned to what trained it (MLflow's own inference
    of requirements is slow and, outside the project folder, imprecise)."""
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in packages:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{package}=={version(package)}")
    return pins


DATASET_KEYS = ("task", "classes", "load", "preprocess", "split")  # what shaped the data


def dataset_params(params: DictConfig, dataset: str) -> dict[str, Any]:
    """The settings of a dataset that decide its prepared data (declared as DVC params of
    the stages that log them: an edit elsewhere in the entry reruns nothing)."""
    ds = params.datasets[dataset]
    return {key: ds[key] for key in DATASET_KEYS}


def run_config(params: DictConfig, model: str) -> dict[str, Any]:
    """What a Keras run logs as its params: the seed, the model, its dataset's settings."""
    cfg = params.models[model]
    return {"seed": params.seed, "model": cfg, "dataset": dataset_params(params, cfg.dataset)}


def log_test_results(run_id: str, metrics: dict[str, Any], plots: Path) -> None:
    """Add a model's test figures (per class too) and plots to its training run."""
    import mlflow

    client = mlflow.MlflowClient()
    # the test figures: the rest (epochs) the training run logged already
    scalars = {k: v for k, v in metrics.items()
               if k.startswith("test_") and isinstance(v, (int, float))}
    for cls, values in metrics.get("per_class", {}).items():
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in cls)
        scalars.update({f"test_{k.replace('-', '_')}_{safe}": v for k, v in values.items()
                        if k != "support"})
    log_metrics(client, run_id, scalars)
    client.log_artifacts(run_id, str(plots), "plots")
    client.log_text(run_id, json.dumps(metrics, indent=1), "test_metrics.json")
