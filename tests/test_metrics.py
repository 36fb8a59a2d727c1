"""One definition of "better": pipeline/metrics.py, used by training, the registry, sweeps and
the report, agrees with Keras' own direction of every metric it has one for."""

from __future__ import annotations

import inspect

import pytest

from pipeline import metrics
from pipeline.errors import ConfigError

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def keras_directions() -> dict[str, bool]:
    """{metric name: higher is better} for every Keras metric class that declares it."""
    keras = pytest.importorskip("keras")
    found = {}
    for name in dir(keras.metrics):
        cls = getattr(keras.metrics, name)
        if not (inspect.isclass(cls) and issubclass(cls, keras.metrics.Metric)):
            continue
        for kwargs in ({}, {"num_classes": 2}, {"num_classes": 2, "target_class_ids": [0]}):
            try:
                metric = cls(**kwargs)
                break
            except (TypeError, ValueError):
                metric = None
        if metric is not None and getattr(metric, "_direction", None):
            found[metric.name] = metric._direction == "up"
    return found


def test_the_table_agrees_with_keras():
    keras = pytest.importorskip("keras")
    directions = keras_directions()
    assert len(directions) > 20
    for name, higher in directions.items():
        assert metrics.higher_is_better(name) is higher, name
    for alias in ("mae", "mse", "mape", "msle"):  # compile() strings, by Keras' own objects
        assert metrics.higher_is_better(alias) is (keras.metrics.get(alias)._direction == "up")


@pytest.mark.parametrize(("name", "higher"), [
    ("val_loss", False), ("loss", False), ("val_mse", False), ("test_mae", False),
    ("kfold_val_mae_mean", False), ("cv_mae", False), ("val_accuracy", True),
    ("cv_accuracy", True), ("best_val_auc", True), ("val_f1_score", True),
])
def test_prefixes_and_suffixes_keep_the_direction(name, higher):
    assert metrics.higher_is_better(name) is higher


def test_best_and_better_follow_the_direction():
    assert metrics.best("val_mse", [3.0, 1.0, 2.0]) == 1.0  # once maximised by train's log line
    assert metrics.best("val_accuracy", [0.5, 0.9, 0.7]) == 0.9
    assert metrics.better("val_mae", 2.0, 3.0) and not metrics.better("val_mae", 3.0, 2.0)
    assert not metrics.better("val_accuracy", float("nan"), 0.1)
    assert metrics.better("val_accuracy", 0.1, float("nan"))
    assert metrics.figure("kfold_val_mae_mean", {}, {"kfold_val_mae_mean": 2.5}) == 2.5
    assert metrics.figure("val_mse", {"val_mse": [4.0, 2.0, 3.0]}, {}) == 2.0


def test_an_unknown_metric_is_refused_not_guessed():
    with pytest.raises(ConfigError, match="higher or lower"):
        metrics.higher_is_better("val_wobble")


def test_early_stopping_and_checkpoints_take_the_direction_from_here():
    pytest.importorskip("keras")
    from omegaconf import OmegaConf

    from pipeline.training import build_callbacks

    cfg = OmegaConf.create({"early_stopping": {"monitor": "val_mse", "patience": 2}})
    stop, checkpoint = build_callbacks(cfg, "/tmp/x.keras", has_validation=True)[-2:]
    assert stop.mode == "min" and checkpoint.mode == "min"
    cfg.early_stopping.monitor = "val_auc"
    stop, checkpoint = build_callbacks(cfg, "/tmp/x.keras", has_validation=True)[-2:]
    assert stop.mode == "max" and checkpoint.mode == "max"
