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

from pipeline.layout import data_label

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


# What a result comes from: the code, its configuration and the locked environment. The
# files the pipeline writes itself (dvc.lock, results/, reports/) are not: a run that
# rewrote them, as every `dvc repro` does, did not come from a modified checkout.
SOURCES = ("pipeline", "conf", "params.yaml", "dvc.yaml", "pyproject.toml", "uv.lock")


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
    """A training's figures: each epoch at its step, then the summary's scalars at step 0.
    A figure of the saved model that is also an epoch series (`val_loss` after early
    stopping restored an earlier epoch) goes one step past the last epoch, as MLflow's
    Keras autologging logs restored weights, so the run's latest value is the saved model's
    and every series keeps one point per step."""
    epochs = len(history.get("loss", []))
    series = [(epoch, {k: v[epoch] for k, v in history.items()}) for epoch in range(epochs)]
    scalars = {k: float(v) for k, v in summary.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    saved = {k: scalars.pop(k) for k in list(scalars) if k in history}
    if any(not math.isclose(v, history[k][-1], rel_tol=1e-6) for k, v in saved.items()):
        series.append((epochs, saved))
    log_metric_series(client, run_id, [*series, (0, {**scalars, **(extra or {})})])


def log_keras_model(model, signature, input_example, artifact_path: str = "model") -> None:
    """Log a Keras model as an MLflow model, with its signature and input example.

    `mlflow.keras.log_model(..., input_example=...)` fails in MLflow 3.17 (it writes the
    example before creating its folder), so the model is saved locally with
    `mlflow.keras.save_model` and uploaded as the run's `model` artifact: it loads with
    `mlflow.keras.load_model("runs:/<run_id>/model")` and serves like any MLflow model.
    """
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        mlflow.keras.save_model(model, tmp, signature=signature, input_example=input_example,
                                pip_requirements=serving_requirements())
        mlflow.log_artifacts(tmp, artifact_path)


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
    for png in sorted(plots.glob("*.png")):
        client.log_artifact(run_id, str(png), "plots")
    client.log_text(run_id, json.dumps(metrics, indent=1), "test_metrics.json")
