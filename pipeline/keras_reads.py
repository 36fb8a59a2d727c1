"""What Keras is asked about a model: the part of the settings its answer depends on.

`models.check_model` (through `preflight.check_all`) hands Keras a model's `dataset`,
`layers`, `optimizer`, `loss` and `metrics` and its dataset's `task`, `classes`, `load` and
`preprocess`; training reads the rest (epochs, batch size, K-fold, early stopping), the check
doesn't. Two settings with the same `keras_reads` get the same answer from Keras, so the
`check` stage asks again only when it changed, and a sweep asks once per distinct one.
tests/test_preflight.py holds check_model to these keys.
"""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.facts import plain

KERAS_READS = {"model": ("dataset", "layers", "optimizer", "loss", "metrics"),
               "dataset": ("task", "classes", "load", "preprocess")}


def keras_reads(model: DictConfig, ds: DictConfig) -> dict:
    """The settings Keras is asked about for `model`. A learning rate counts by its type
    only: validate.py has already held a number to (0, MAX_LEARNING_RATE], and every Keras
    optimizer takes any float there (but refuses an int), so a new value of the same type
    can't change Keras' answer."""
    entry = {key: plain(model.get(key)) for key in KERAS_READS["model"]}
    rate = entry["optimizer"].get("learning_rate")
    if isinstance(rate, int | float) and not isinstance(rate, bool):
        entry["optimizer"]["learning_rate"] = type(rate).__name__
    return {"model": entry,
            "dataset": {key: plain(ds.get(key)) for key in KERAS_READS["dataset"]}}
