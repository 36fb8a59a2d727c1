"""Keras models from config: a model entry in params.yaml lists its layers by Keras name.

    layers:
      - {type: Flatten}
      - {type: Dense, units: 512, activation: relu}
    optimizer: {type: rmsprop, learning_rate: 0.001}

Each layer is `keras.layers.<type>(**rest)`, the optimizer `keras.optimizers.get`,
so any Keras layer works without code here. Inputs are declared from the
prepared data (shape, sparse), not from the model config, so one model entry
fits any dataset of the same shape. A wrong layer name or argument fails before
training with the model and layer index in the message.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError


def _kwargs(cfg: DictConfig | dict) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    data.pop("type", None)
    return data


def build_model(name: str, model_cfg: DictConfig, input_shape: tuple[int, ...], sparse: bool):
    """Build and compile the Keras model described by `models.<name>`."""
    import keras

    inputs = keras.Input(shape=input_shape, sparse=sparse, name="features")
    x = inputs
    for i, layer_cfg in enumerate(model_cfg.layers):
        key = f"params.yaml: models.{name}.layers[{i}]"
        layer_cls = getattr(keras.layers, str(layer_cfg.get("type")), None)
        if layer_cls is None or not isinstance(layer_cls, type):
            raise ConfigError(f"{key}: '{layer_cfg.get('type')}' is not a keras.layers class. "
                              "Fix: use a Keras layer name such as Dense, Conv2D, Dropout")
        try:
            x = layer_cls(**_kwargs(layer_cfg))(x)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{key}: {err}. Fix: check the layer's arguments") from None
    model = keras.Model(inputs, x, name=name)
    optimizer_cfg = _kwargs(model_cfg.optimizer)
    try:
        optimizer = keras.optimizers.get(
            {"class_name": str(model_cfg.optimizer.type), "config": optimizer_cfg}
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"params.yaml: models.{name}.optimizer: {err}. Fix: use a Keras "
                          "optimizer name (rmsprop, adam, sgd) and its arguments") from None
    model.compile(optimizer=optimizer, loss=model_cfg.loss, metrics=list(model_cfg.metrics))
    return model


def build_callbacks(model_cfg: DictConfig, checkpoint_path: str, has_validation: bool) -> list:
    """EarlyStopping (best weights restored) and a best-model checkpoint, on the validation
    split when there is one; TerminateOnNaN and a progress bar (at a terminal only) always."""
    import keras

    from pipeline.progress import EpochProgress

    callbacks: list = [keras.callbacks.TerminateOnNaN(), EpochProgress()]
    if has_validation:
        stop = model_cfg.early_stopping
        if stop is not None:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor=stop.monitor, patience=stop.patience, restore_best_weights=True))
        monitor = stop.monitor if stop is not None else "val_loss"
        callbacks.append(keras.callbacks.ModelCheckpoint(
            checkpoint_path, monitor=monitor, save_best_only=True))
    return callbacks
