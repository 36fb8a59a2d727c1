"""MLflow tracking: where runs go, and runs that always end (what they record:
pipeline/run_log.py).

Default: an embedded SQLite store in the project (`mlflow.db`), nothing to start;
`mlflow ui --backend-store-uri sqlite:///mlflow.db` shows it. `tracking.uri` in
params.yaml (`http://host:5000`: a team's `mlflow server`, e.g. on PostgreSQL) or
`MLFLOW_TRACKING_URI` sends everything to a server instead. A store that can't be
reached fails before any training, in one line naming the URI and where it came from.
Every run the pipeline opens goes through `live_run`: it ends FINISHED, FAILED (with
the error as the `pipeline.error` tag) or KILLED (Ctrl-C, SIGTERM), and a run whose
process died without ending it (SIGKILL, a crash, the store going away) is ended as
KILLED by the next run of the same step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from omegaconf import DictConfig

from pipeline.errors import TrackingUnavailable, error_line

log = logging.getLogger("pipeline.tracking")

STEP_TAG = "pipeline.step"  # train@imdb_dense, baseline@imdb, sweep@imdb_dense: who owns a run
# The reachability check must answer fast, so MLflow's retries are off for it alone. The
# uploads after it retry (a team server's hiccup must not fail a finished training), but a
# few times over seconds, not MLflow's default of 7 times over minutes per request (a server
# that is gone would keep a sweep waiting for many minutes). The user's settings win.
CHECK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
UPLOAD_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}


def tracking_uri(params: DictConfig, root: Path | None = None) -> str:
    """The store's URI; the embedded one (and a relative sqlite path, given `root`: a sweep
    trial on a worker that started elsewhere) is the project's."""
    configured = os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri
    if not configured:
        return f"sqlite:///{(root or Path.cwd()) / 'mlflow.db'}"
    relative = configured.startswith("sqlite:///") and not configured.startswith("sqlite:////")
    if root is not None and relative:
        return f"sqlite:///{root / configured.removeprefix('sqlite:///')}"
    return configured


# What connect() exported for the uploads: ours to change, not the user's settings. Else the
# next connect() in the process (a sweep worker's next trial) checked with 3 retries, ~7 s
# to find a server down instead of at once.
_EXPORTED: dict[str, str] = {}


def _ours(key: str) -> bool:
    return key not in os.environ or _EXPORTED.get(key) == os.environ[key]


@contextlib.contextmanager
def _environment(values: Mapping[str, str]):
    """Set environment variables for the block only (unless the user set them)."""
    saved = {key: os.environ.get(key) for key in values}
    for key, value in values.items():
        if _ours(key):
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(params: DictConfig, root: Path | None = None) -> str:
    """Point MLflow at the store and prove it answers, fast, before any work is done."""
    import mlflow

    uri = tracking_uri(params, root)
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
        if _ours(key):
            os.environ[key] = _EXPORTED[key] = value
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
    text = error_line(err)
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


def owned_here(run) -> bool:
    """Was `run` opened by this very process?"""
    return {k: run.data.tags.get(k) for k in ("pipeline.host", "pipeline.pid")} == owner_tags()


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
    from pipeline.console import interrupted

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


@contextlib.contextmanager
def child_run(client, parent, run_name: str, tags: Mapping[str, str]):
    """A child run of `parent` (a K-fold fold, an ensemble's fit, a seed of a seed study)
    that always ends: FINISHED when the block completes, FAILED or KILLED (with why) when it
    raises. It carries the parent's own tags (dataset, step, owning process: a child left
    RUNNING by a killed process is ended by the next run of the step), never a trial's."""
    inherited = {k: v for k, v in parent.data.tags.items()
                 if not k.startswith(("mlflow.", "sweep."))}
    run = client.create_run(parent.info.experiment_id, run_name=run_name,
                            tags={**inherited, **tags, "mlflow.parentRunId": parent.info.run_id})
    try:
        yield run
    except BaseException as err:
        end_failed(client, run.info.run_id, err)
        raise
    with contextlib.suppress(Exception):  # the parent goes on; its own end reports
        client.set_terminated(run.info.run_id, "FINISHED")
