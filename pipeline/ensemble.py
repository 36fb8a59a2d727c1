"""Several trained models as one Keras model that averages their predictions: a model
entry's `ensemble` (final fits with other seeds, and K-fold's fold models).

Why: one small network's predictions vary with its seed; their mean varies less. On
Boston (DLwP ch. 3) it beat every single-model recipe in nested K-fold on the training
split (README: Boston's recipe). The result is one ordinary Keras model (the members as
submodels, their weights exactly as trained, and an Average layer), so model.keras,
evaluate, the MLflow logged model and predict take it unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
from omegaconf import DictConfig


class EpochWeights(keras.callbacks.Callback):
    """Keeps a copy of the model's weights after every epoch, so a fold model can be put
    back to the epoch the K-fold curve chooses after all folds have trained (one copy of
    the weights per epoch in memory: small models, as K-fold's are)."""

    def __init__(self) -> None:
        super().__init__()
        self.weights: list[list[Any]] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.weights.append([w.copy() for w in self.model.get_weights()])

    def restore(self, epoch: int) -> None:
        """Set the model to its weights after `epoch` (1-based)."""
        self.model.set_weights(self.weights[epoch - 1])


def average(name: str, cfg: DictConfig, members: list) -> keras.Model:
    """One model whose output is the mean of the `members`' outputs, compiled as
    `models.<name>` (loss, metrics) so it evaluates as a single model would. Each member
    is renamed `<name>_<i>`: a Keras model's parts need distinct names."""
    from pipeline.models import compile_model

    first = members[0]
    spec = first.inputs[0]
    inputs = keras.Input(shape=tuple(spec.shape[1:]), sparse=spec.sparse, name="features")
    outputs = []
    for i, member in enumerate(members, start=1):
        member.name = f"{name}_{i}"
        outputs.append(member(inputs))
    model = keras.Model(inputs, keras.layers.Average(name="mean")(outputs), name=name)
    compile_model(name, cfg, model)
    model.optimizer.build(model.trainable_variables)  # saved as loading expects: no warning
    return model


def describe(name: str, cfg: DictConfig, fits: int, folds: int) -> str:
    """What the saved model averages, in words (summary.json, the run's summary.* tag)."""
    what = f"models.{name}.ensemble: the mean of {fits} final fits (each its own seed)"
    if folds:
        at = ("the chosen epoch" if cfg.kfold.choose_epochs is not None
              else f"{cfg.kfold.epochs} epochs")
        what += f" and the {folds} fold models (at {at})"
    return what
