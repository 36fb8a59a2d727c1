"""MLflow tracking: where runs go, what every run carries, batched logging.

Default: an embedded SQLite store in the project (`mlflow.db`), nothing to start;
`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it. `tracking.uri` in
params.yaml (`http://host:5000`: a team's `mlflow server`, e.g. on PostgreSQL) or
`MLFLOW_TRACKING_URI` sends everything to a server instead. A store that can't be
reached fails before any training, in one line naming the URI and where it came from.
All logging is batched (one `log_batch` per 100 values): over HTTP, single
calls are ~100x slower.

Every run the pipeline opens goes through `live_run`: it ends FINISHED, FAILED (with
the error as the `pipeline.error` tag) or KILLED (Ctrl-C, SIGTERM), and a run whose
process died without ending it (SIGKILL, a crash, the store going away) is ended as
KILLED by the next run of the same step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import TrackingUnavailable

log = logging.getLogger("pipeline.tracking")

BATCH = 100  # MLflow's limit of params per log_batch call (metrics: 1000)
STEP_TAG = "pipeline.step"  # train@imdb_dense, baseline@imdb, sweep@imdb_dense: who owns a run
# The reachability check must answer fast, so MLflow's retries are off for it alone. The
# uploads after it retry (a team server's hiccup must not fail a finished training), but a
# few times over seconds, not MLflow's default of 7 times over minutes per request (a server
# that is gone would keep a sweep waiting for many minutes). The user's settings win.
CHECK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
UPLOAD_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def tracking_uri(params: DictConfig) -> str:
    configured = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    return configured or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


@contextlib.contextmanager
def _environment(values: Mapping[str, str]):
    """Set environment variables for the block only (unless the user set them)."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


def connect(params: DictConfig) -> str:
    """Point MLflow at the store and prove it answers, fast, before any work is done."""
    import mlflow

    uri = tracking_uri(params)
    exported = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if exported is None:  # MLflow copies the URI into the environment, where it would
        os.environ.pop("MLFLOW_TRACKING_URI", None)  # outrank the next params' tracking.uri
    try:
        with _environment(CHECK_ENV):
            mlflow.search_experiments(max_results=1)
    except Exception as err:  # any failure here means: no usable store
        raise unavailable(uri, origin_of(params), err) from None
    for key, value in UPLOAD_ENV.items():
        os.environ.setdefault(key, value)
    return uri


def ping(configured: str | None) -> None:
    """Does the tracking server answer? For an http(s) store only, without importing MLflow
    (~3 s): the `check` stage asks before DVC removes the outputs of stages that would log
    there. (An embedded sqlite store needs no server.)"""
    import urllib.error
    import urllib.request

    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured
    if not uri or not uri.startswith(("http://", "https://")):
        return
    origin = ("MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI")
              else "tracking.uri in params.yaml")
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5) as response:
            if response.status == 200:
                return
            problem: Exception = RuntimeError(f"error code {response.status}")
    except urllib.error.HTTPError as err:
        body = err.read()[:300].decode(errors="replace")
        problem = RuntimeError(f"error code {err.code} {body}")
    except (urllib.error.URLError, OSError, ValueError) as err:
        problem = err
    raise unavailable(uri, origin, problem)


def origin_of(params: DictConfig) -> str:
    return ("MLFLOW_TRACKING_URI" if os.environ.get("MLFLOW_TRACKING_URI")
            else "tracking.uri in params.yaml" if params.tracking.uri else "the default")


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


# --- runs that always end -------------------------------------------------------------


def experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException as err:  # created meanwhile by a parallel run
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def owner_tags() -> dict[str, str]:
    """Which process owns a run, so the next one can tell whether it is still alive."""
    from pipeline.files import HOST

    return {"pipeline.host": HOST, "pipeline.pid": str(os.getpid())}


def end_abandoned(client, experiment: str, step: str) -> list[str]:
    """End as KILLED the RUNNING runs of `step` whose process is gone (killed, crashed, lost
    the store before it could end them). A run of a live process, or of another machine
    (its process can't be seen from here), is left alone."""
    from pipeline.files import process_gone

    runs = client.search_runs(
        [experiment], f"tags.`{STEP_TAG}` = '{step}' and attributes.status = 'RUNNING'",
        max_results=1000)
    ended = []
    for run in runs:
        tags = run.data.tags
        pid = tags.get("pipeline.pid", "")
        if not pid.isdigit() or not process_gone(tags.get("pipeline.host", ""), int(pid)):
            continue
        client.set_tag(run.info.run_id, "pipeline.error",
                       f"its process ({tags.get('pipeline.host')}:{pid}) ended without ending "
                       f"the run (killed or crashed); ended by the next run of {step}")
        client.set_terminated(run.info.run_id, "KILLED")
        ended.append(run.info.run_id)
    if ended:
        log.info("%s: ended %d run(s) left RUNNING by a killed process: %s", step, len(ended),
                 ", ".join(ended))
    return ended


def end_failed(client, run_id: str, error: BaseException) -> str:
    """End a run as FAILED, with the error line as its `pipeline.error` tag, or as KILLED
    (Ctrl-C, SIGTERM). Errors doing so are swallowed: the store may be what failed, and the
    caller re-raises the real error."""
    from pipeline.console import error_line, interrupted

    status = "KILLED" if interrupted(error) else "FAILED"
    with contextlib.suppress(Exception):
        client.set_tag(run_id, "pipeline.error", ("interrupted: " if status == "KILLED" else "")
                       + (error_line(error) or type(error).__name__)[:4000])
        client.set_terminated(run_id, status)
    return status


@contextlib.contextmanager
def live_run(experiment: str, step: str, run_name: str, tags: Mapping[str, str]):
    """Open a run (the active one, for mlflow.<flavor>.log_model) that always ends properly,
    after ending the runs a killed earlier `step` left RUNNING."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment_ = experiment_id(client, experiment)
    end_abandoned(client, experiment_, step)
    run = mlflow.start_run(experiment_id=experiment_, run_name=run_name,
                           tags={**tags, STEP_TAG: step, **owner_tags()})
    try:
        yield run
    except BaseException as err:
        status = end_failed(client, run.info.run_id, err)
        with contextlib.suppress(Exception):
            mlflow.end_run(status)
        raise
    mlflow.end_run("FINISHED")
