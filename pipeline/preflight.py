"""Every check, before anything is touched: the settings' own rules (validate.py, already
run by load_params), the settings against the prepared data and scikit-learn (facts.py),
and what Keras says about each model (models.check_model: layer, activation, optimizer,
loss and metric names and arguments; with the data, the model built on its real input
shape and its outputs against the classes).

The `check` stage runs it all before `dvc repro` lets any other stage remove an output;
sweeps run it for every value a trial may get, before the first trial or MLflow run;
`train` runs its model's part before training.
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline import facts
from pipeline.models import check_model


def check_all(cfg: DictConfig, manifests: dict[str, dict | None], only: list[str] | None = None,
              baseline: bool = True, ask_keras: list[str] | None = None,
              ask_sklearn: bool | None = None) -> None:
    """`manifests`: {dataset: its manifest, or None if not prepared}; `only`: these models
    (default: all); `baseline`: also the baseline (its folds, its SGD options). `ask_keras`
    and `ask_sklearn` narrow what the libraries are asked to those that could answer
    differently (the `check` stage's memo); the rows and folds are always checked."""
    facts.check_rows(cfg, manifests, only, baseline)
    for name in (cfg.models if only is None else only) if ask_keras is None else ask_keras:
        model = cfg.models[name]
        ds = cfg.datasets[model.dataset]
        shapes = facts.usable(manifests.get(model.dataset), ds, ("load", "preprocess"))
        check_model(name, model, ds, shapes)
    if baseline if ask_sklearn is None else ask_sklearn:
        facts.check_baseline_options(cfg)
