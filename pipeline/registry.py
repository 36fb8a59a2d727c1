"""The model registry: every Keras model is a version of its dataset's registered model, made
from the logged model of its training run, and the alias `champion` moves to a version
only when its validation figure is strictly better (pipeline/metrics.py says which way is
better). The test split never chooses.

Only "no such registered model yet" is an expected answer from MLflow here; any other
error fails the stage and leaves the champion where it was.
"""

from __future__ import annotations

import logging

from pipeline import metrics
from pipeline.errors import DataError

log = logging.getLogger("pipeline.registry")

CHAMPION = "champion"


def _registered_model(client, name: str):
    """The registered model, or None if it doesn't exist yet."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def champion(client, name: str):
    """The champion's model version, or None."""
    model = _registered_model(client, name)
    aliases = dict(getattr(model, "aliases", None) or {}) if model is not None else {}
    if CHAMPION not in aliases:
        return None
    return client.get_model_version(name, str(aliases[CHAMPION]))


def register(dataset: str, run_id: str, metric: str, value: float | None):
    """Register the run's model under the dataset's name (once); move `champion` to it if
    it ranks better than the current champion. Returns (version, is_champion)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    current = champion(client, dataset)
    if current is not None and current.run_id == run_id:
        return current.version, True
    if _registered_model(client, dataset) is None:
        try:
            client.create_registered_model(dataset)
        except MlflowException as err:  # created meanwhile by a parallel run
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    existing = client.search_model_versions(f"name='{dataset}' and run_id='{run_id}'")
    if existing:
        version = existing[0]
    else:  # the client API, quietly (mlflow.register_model prints to the console)
        model_id = logged_model(client, run_id)
        version = client.create_model_version(
            dataset, f"models:/{model_id}", run_id=run_id, model_id=model_id,
            tags={"selection_metric": metric, "selection_value": str(value)})
    wins = value is not None and _beats(metric, value, current)
    if wins:
        client.set_registered_model_alias(dataset, CHAMPION, version.version)
    return version.version, wins


def logged_model(client, run_id: str) -> str:
    """The id of the model the run logged (its Models column), the one a version is of."""
    outputs = client.get_run(run_id).outputs
    models = [m.model_id for m in (outputs.model_outputs if outputs else None) or []]
    if not models:
        raise DataError(f"run {run_id} logged no model to register. Fix: `dvc repro -f "
                        "train@<model>` trains and logs it again")
    return models[-1]


def _beats(metric: str, value: float, current) -> bool:
    if current is None:
        return True
    old_metric = current.tags.get("selection_metric", "")
    try:
        old = float(current.tags.get("selection_value", "nan"))
    except ValueError:
        old = float("nan")
    if metrics.base_name(old_metric) != metrics.base_name(metric):
        log.info("registry: the champion was ranked by %s, this model by %s: the newer wins",
                 old_metric or "nothing", metric)
        return True
    return metrics.better(metric, value, old)
