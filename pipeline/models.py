"""Keras models from config: a model entry in params.yaml lists its layers by Keras name.

    layers:
      - {type: Flatten}
      - {type: Dense, units: 512, activation: relu}
    optimizer: {type: rmsprop, learning_rate: 0.001}

Each layer is `keras.layers.<type>(**rest)`, the optimizer `keras.optimizers.get`,
so any Keras layer works without code here. Inputs are declared from the
prepared data (shape, sparse), not from the model config, so one model entry
fits any dataset of the same shape. `check_model` asks Keras about every name and
argument without training anything; `pipeline.validate` runs it before any stage
touches an output.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import metrics
from pipeline.errors import ConfigError, error_line

SPECIAL_METRICS = ("accuracy", "acc")  # Keras picks the binary/categorical/sparse variant
SPECIAL_LOSSES = ("crossentropy", "ce")


def _kwargs(cfg: DictConfig | dict) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("type", None)
    return data


def _refused(key: str, err: Exception, expected: str, fix: str) -> ConfigError:
    problem = f"Keras refuses it ({error_line(err)[:200]})"
    return ConfigError(key=key, problem=problem, expected=expected, fix=fix)


def _layers(name: str, model_cfg: DictConfig) -> list:
    import keras

    layers = []
    for i, layer_cfg in enumerate(model_cfg.layers):
        key = f"models.{name}.layers[{i}]"
        layer_cls = getattr(keras.layers, str(layer_cfg.get("type")), None)
        if not (isinstance(layer_cls, type) and issubclass(layer_cls, keras.layers.Layer)):
            close = _close(str(layer_cfg.get("type")), dir(keras.layers))
            raise ConfigError(key=f"{key}.type", problem=f"'{layer_cfg.get('type')}' is not a "
                              "Keras layer", expected="a keras.layers class, e.g. Dense, Conv2D",
                              fix=f"use {close}" if close else "check the name in the Keras docs")
        try:
            layers.append(layer_cls(**_kwargs(layer_cfg)))
        except Exception as err:  # Keras' own words, whatever it raises
            raise _refused(key, err, f"arguments {layer_cls.__name__} accepts",
                           "correct the argument it names") from None
    return layers


def _optimizer(name: str, model_cfg: DictConfig):
    import keras

    try:
        return keras.optimizers.get({"class_name": str(model_cfg.optimizer.type),
                                     "config": _kwargs(model_cfg.optimizer)})
    except Exception as err:  # Keras' own words, whatever it raises (KeyError for some)
        raise _refused(f"models.{name}.optimizer", err, "a Keras optimizer (rmsprop, adam, sgd, "
                       "...) and its arguments", "correct the name or argument") from None


def check_model(name: str, model_cfg: DictConfig, ds: DictConfig, facts: dict | None) -> None:
    """Ask Keras about every name and argument of `models.<name>`; with the prepared data's
    facts, also build it on the real input shape and check its outputs against the task."""
    import keras

    layers = _layers(name, model_cfg)
    _optimizer(name, model_cfg)
    loss = str(model_cfg.loss)
    if loss.lower() not in SPECIAL_LOSSES:
        try:
            keras.losses.get(loss)
        except (TypeError, ValueError):
            close = _close(loss, [n for n in dir(keras.losses) if n.islower()])
            raise ConfigError(key=f"models.{name}.loss", problem=f"'{loss}' is not a Keras loss",
                              expected="a loss such as binary_crossentropy, "
                              "sparse_categorical_crossentropy, mse",
                              fix=f"use {close}" if close else "pick a Keras loss") from None
    for i, metric in enumerate(model_cfg.metrics):
        try:
            if str(metric).lower() not in SPECIAL_METRICS:
                keras.metrics.get(str(metric))
        except (TypeError, ValueError):
            close = _close(str(metric), [*SPECIAL_METRICS, *sorted(metrics.LOWER | metrics.HIGHER)])
            raise ConfigError(key=f"models.{name}.metrics[{i}]", problem=f"'{metric}' is not a "
                              "Keras metric", expected="a metric such as accuracy, mae, auc",
                              fix=f"use {close}" if close else "pick a Keras metric") from None
        if not metrics.is_known(str(metric)):
            known = ", ".join(sorted(metrics.LOWER | metrics.HIGHER))
            raise ConfigError(key=f"models.{name}.metrics[{i}]", problem=f"'{metric}': the "
                              "pipeline doesn't know whether higher or lower is better",
                              expected=f"one of: {known}", fix="use one of those")
    if facts is None:
        return
    split = facts["splits"]["train"]
    x = keras.Input(shape=tuple(split["x_shape"][1:]), sparse=split["sparse"], name="features")
    outputs = x
    for i, layer in enumerate(layers):
        try:
            outputs = layer(outputs)
        except Exception as err:  # Keras' own words, whatever it raises
            raise _refused(f"models.{name}.layers[{i}]", err, "a layer that fits the output of "
                           f"the layer before (the data's features are {split['x_shape'][1:]})",
                           "change its arguments, or add a Flatten/Reshape before it") from None
    width = outputs.shape[-1]
    wanted = len(ds.classes) if ds.task == "multiclass" else None if ds.task == "binary" else 1
    fits = width == wanted if wanted else width in (1, 2)
    if len(outputs.shape) != 2 or not fits:
        expected = (f"{wanted} output values (one per class)" if ds.task == "multiclass" else
                    "1 output value" if wanted == 1 else "1 sigmoid output (or 2 softmax)")
        raise ConfigError(key=f"models.{name}.layers[{len(layers) - 1}]",
                          problem=f"the model outputs shape {tuple(outputs.shape[1:])}",
                          expected=f"{expected} for {model_cfg.dataset}",
                          fix=f"end with Dense(units={wanted or 1})" + (
                              ", after a Flatten" if len(outputs.shape) != 2 else ""))
    _dry_run(name, model_cfg, ds, x, outputs, split)


def _dry_run(name: str, model_cfg: DictConfig, ds: DictConfig, inputs, outputs,
             split: dict) -> None:
    """Compile the model and score two rows of the data's shape and label kind: Keras itself
    says whether the loss and metrics fit these outputs and labels (what would otherwise
    fail after the first epoch, or train nonsense)."""
    import keras
    import numpy as np
    import scipy.sparse as sp

    try:
        model = keras.Model(inputs, outputs, name=name)
    except Exception as err:
        raise _refused(f"models.{name}.layers", err, "layers with distinct names",
                       "remove or rename the `name:` it reports") from None
    shape = (2, *split["x_shape"][1:])
    x = sp.csr_matrix(shape, dtype=np.float32) if split["sparse"] else np.zeros(
        shape, dtype=np.float32)
    y = (np.zeros(2, dtype=np.float32) if ds.task == "regression"
         else np.array([0, len(ds.classes) - 1], dtype=np.int64))
    try:
        model.compile(optimizer=_optimizer(name, model_cfg), loss=str(model_cfg.loss),
                      metrics=[str(m) for m in model_cfg.metrics])
        model.evaluate(x, y, batch_size=2, verbose=0)  # via Keras' data adapters (sparse too)
    except ConfigError:
        raise
    except Exception as err:
        labels = ("one value per row" if ds.task == "regression" else
                  f"one class index per row (0 to {len(ds.classes) - 1})")
        raise ConfigError(
            key=f"models.{name}.loss", problem=f"Keras can't score '{model_cfg.loss}' (and "
            f"metrics {list(model_cfg.metrics)}) on this model's outputs and {ds.task} labels "
            f"({error_line(err)[:160]})",
            expected=f"a loss for {labels}: sparse_categorical_crossentropy with one softmax "
            "unit per class, binary_crossentropy with 1 sigmoid unit, mse/mae for regression",
            fix="change the loss or the output layer to match") from None


def _close(word: str, names: list[str]) -> str | None:
    import difflib

    match = difflib.get_close_matches(word, names, n=1)
    return match[0] if match else None


def build_model(name: str, model_cfg: DictConfig, input_shape: tuple[int, ...], sparse: bool):
    """Build and compile the Keras model described by `models.<name>`."""
    import keras

    inputs = keras.Input(shape=input_shape, sparse=sparse, name="features")
    x = inputs
    for layer in _layers(name, model_cfg):
        x = layer(x)
    return compile_model(name, model_cfg, keras.Model(inputs, x, name=name))


def compile_model(name: str, model_cfg: DictConfig, model):
    """Compile `model` with the optimizer, loss and metrics of `models.<name>`."""
    model.compile(optimizer=_optimizer(name, model_cfg), loss=str(model_cfg.loss),
                  metrics=[str(m) for m in model_cfg.metrics])
    return model
