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
    """`manifests`: {dataset: its manifest, or None if not prepared}. The rows and folds of
    the models `only` names (default: all) and, with `baseline`, of the baseline's CV; Keras
    about each of those models, scikit-learn about the baseline's options. `ask_keras` and
    `ask_sklearn` narrow the libraries' checks to what could answer differently since the
    last pass (the `check` stage's memo)."""
    models = list(cfg.models) if only is None else only
    facts.check_rows(cfg, manifests, models, baseline)
    for name in models if ask_keras is None else ask_keras:
        model = cfg.models[name]
        ds = cfg.datasets[model.dataset]
        shapes = facts.usable(manifests.get(model.dataset), ds, ("load", "preprocess"))
        check_model(name, model, ds, shapes)
    if baseline if ask_sklearn is None else ask_sklearn:
        facts.check_baseline_options(cfg)
