"""The champion among the trained models in this workspace's models/ folder, for a tracking
store that doesn't know them.

`dvc pull` restores models/<model>/ from the team's DVC remote, but their MLflow runs stay
in the store they were logged to (another checkout's mlflow.db, unless the team logs to a
server: tracking.uri). `predict` then falls back on the model files here, choosing among a
dataset's models by the registry's own rule (pipeline/registry.py: the validation figure of
the saved model, `metrics.figure`, ranked by `metrics.better`; the first of equals stays),
and says which store their runs are in. Not part of any DVC stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from pipeline import layout
from pipeline.config import dataset_config
from pipeline.metrics import better, figure, selection_metric


@dataclass(frozen=True)
class ModelFiles:
    """A trained model as `dvc pull` (or `dvc repro`) left it in models/<name>/."""

    name: str
    path: Path  # its model.keras
    metric: str  # the validation figure the registry ranks it by
    value: float
    run_id: str | None  # its MLflow run (models/<name>/run.json) and the store it went to
    logged_to: str | None


def candidates(params: DictConfig, dataset: str, models_dir: Path) -> list[ModelFiles]:
    """Every model of `dataset` whose files are here and that has a validation figure."""
    task = dataset_config(params, dataset).task
    found = []
    for name, cfg in params.models.items():
        folder = layout.model_dir(models_dir, name)
        if cfg.dataset != dataset or not (folder / layout.MODEL_FILE).is_file():
            continue
        metric = selection_metric(task, cfg.get("kfold") is not None)
        value = figure(metric, *layout.read_training(folder))
        if value is None:  # as the registry: a model without a figure never wins
            continue
        run = layout.read_record(folder / layout.RUN_FILE)
        found.append(ModelFiles(name, folder / layout.MODEL_FILE, metric, value,
                                run.get("run_id"), run.get("tracking_uri")))
    return found


def champion(params: DictConfig, dataset: str, models_dir: Path) -> ModelFiles | None:
    """The model the registry would make champion, registering them in params.yaml's order."""
    best = None
    for model in candidates(params, dataset, models_dir):
        if best is None or better(model.metric, model.value, best.value):
            best = model
    return best


def with_run(params: DictConfig, run_id: str, models_dir: Path) -> ModelFiles | None:
    """The model files here whose training run is `run_id` (models/<name>/run.json)."""
    for dataset in params.datasets:
        for model in candidates(params, dataset, models_dir):
            if model.run_id == run_id:
                return model
    return None
