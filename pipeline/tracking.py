"""MLflow tracking: where runs go, what every run carries, batched logging.

Default: an embedded SQLite store in the project (`mlflow.db`), nothing to start;
`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it. `tracking.uri` in
params.yaml (`http://host:5000`: a team's `mlflow server`, e.g. on PostgreSQL) or
`MLFLOW_TRACKING_URI` sends everything to a server instead. A store that can't be
reached fails before any training, in one line naming the URI and where it came from.
All logging is batched (one `log_batch` per 100 values): over HTTP, single
calls are ~100x slower.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError

log = logging.getLogger("pipeline.tracking")

ROOT = Path(__file__).resolve().parents[1]
BATCH = 100  # MLflow's limit of params per log_batch call (metrics: 1000)


class TrackingUnavailable(ConfigError):
    """The MLflow tracking store did not answer."""


def tracking_uri(params: DictConfig) -> str:
    configured = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    return configured or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def connect(params: DictConfig) -> str:
    """Point MLflow at the store and prove it answers, fast, before any work is done."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    import mlflow

    uri = tracking_uri(params)
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if exported is None:  # MLflow copies the URI into the environment, where it would
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # outrank the next params' tracking.uri
    try:
        mlflow.search_experiments(max_results=1)
    except Exception as err:  # any failure here means: no usable store
        origin = ("MLFLOW_TRACKING_URI" if exported
                  else "tracking.uri in params.yaml" if params.tracking.uri else "the default")
        raise unavailable(uri, origin, err) from None
    return uri


def unavailable(uri: str, origin: str, err: Exception) -> TrackingUnavailable:
    """One line: which store, set where, what went wrong, and the fix for that case."""
    text = " ".join(str(err).split())
    status = re.search(r"error code (\d{3})", text)
    if "Invalid Host header" in text:
        host = urlsplit(uri).netloc
        what = "refuses requests for this host name (HTTP 403)"
        fix = f"start `mlflow server` with --allowed-hosts {host}"
    elif status:
        what = f"answered HTTP {status.group(1)}, not as an MLflow tracking server would"
        fix = "correct the URI (http://host:port, no path)"
    elif uri.startswith(("http://", "https://")):
        why = "connection refused" if "refused" in text else type(err).__name__
        what = f"cannot be reached ({why})"
        fix = "start the server (README: Tracking server for teams) or correct the URI"
    else:
        what = f"cannot be opened ({type(err).__name__})"
        fix = "check the store's path and permissions"
    return TrackingUnavailable(
        f"MLflow tracking store {uri} (from {origin}) {what}. Fix: {fix}, or unset "
        "MLFLOW_TRACKING_URI / set tracking.uri: null in params.yaml to use the embedded store"
    )


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


def git_tags() -> dict[str, str]:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=Path.cwd(), capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"git_commit": git("rev-parse", "HEAD") or "unknown",
            "git_dirty": str(bool(git("status", "--porcelain"))).lower()}


def run_tags(dataset: str, manifest: dict, stage: str, kind: str) -> dict[str, str]:
    """Tags that let a person filter and trust a run in the UI."""
    return {
        **git_tags(),
        "dataset": dataset,
        "data_source": manifest["source"]["kind"],
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


CHAMPION = "champion"


def selection_metric(task: str, kfold: bool) -> tuple[str, bool]:
    """(metric name, higher_is_better): the validation figure models compete on.

    Never a test metric: the test split only reports, it doesn't choose."""
    if task == "regression":
        return ("kfold_val_mae_mean" if kfold else "val_mae"), False
    return "val_accuracy", True


def best_value(metric: str, higher: bool, history: dict, summary: dict) -> float | None:
    """A run's figure for `metric`: its summary's (K-fold) value, else its best epoch."""
    if metric in summary:
        return float(summary[metric])
    values = history.get(metric)
    return float(max(values) if higher else min(values)) if values else None


def selection_score(task: str, history: dict, summary: dict) -> tuple[str, float, bool]:
    """(metric name, value, higher_is_better) of one trained model."""
    metric, higher = selection_metric(task, "kfold_val_mae_mean" in summary)
    value = best_value(metric, higher, history, summary)
    return metric, (0.0 if higher else float("inf")) if value is None else value, higher


def run_config(params: DictConfig, model: str) -> dict[str, Any]:
    """What a Keras run logs as its params: the seed, the model and its dataset's entry."""
    cfg = params.models[model]
    return {"seed": params.seed, "model": cfg, "dataset": params.datasets[cfg.dataset]}


def promote_if_best(dataset: str, run_id: str, metric: str, value: float, higher: bool):
    """Register the run's model under the dataset's name; move `champion` if it wins.

    Returns (version, is_champion)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    current = None
    with contextlib.suppress(MlflowException):  # no registered model or champion yet
        current = client.get_model_version_by_alias(dataset, CHAMPION)
    if current is not None and current.run_id == run_id:
        return current.version, True
    existing = []
    with contextlib.suppress(MlflowException):
        existing = client.search_model_versions(f"name='{dataset}' and run_id='{run_id}'")
    if existing:
        version = existing[0]
    else:  # the client API, quietly (mlflow.register_model prints to the console)
        with contextlib.suppress(MlflowException):
            client.create_registered_model(dataset)
        source = f"{client.get_run(run_id).info.artifact_uri}/model"
        version = client.create_model_version(
            dataset, source, run_id=run_id,
            tags={"selection_metric": metric, "selection_value": str(value)})
    best = current is None
    if current is not None:
        old = float(current.tags.get("selection_value", "nan"))
        same_metric = current.tags.get("selection_metric") == metric
        best = not same_metric or old != old or (value > old if higher else value < old)
    if best:
        client.set_registered_model_alias(dataset, CHAMPION, version.version)
    return version.version, best
