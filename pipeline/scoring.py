"""A trained model's figures on a split: Keras' own metrics, and what the books add
(classifiers: accuracy, per-class precision/recall/F1, a confusion matrix; regressors:
MAE, MSE, RMSE)."""

from __future__ import annotations

from typing import Any

import numpy as np
from omegaconf import DictConfig


def predictions(model, x, task: str) -> np.ndarray:
    """Class indices (classifiers) or values (regression) for every test row."""
    scores = model.predict(x, verbose=0, batch_size=1024)
    if task == "regression":
        return scores.reshape(-1)
    if scores.shape[-1] == 1:  # a single sigmoid unit
        return (scores.reshape(-1) >= 0.5).astype(np.int64)
    return scores.argmax(axis=-1)


def score(model, x, y, ds: DictConfig) -> tuple[dict[str, Any], np.ndarray]:
    from sklearn.metrics import classification_report, confusion_matrix

    results = model.evaluate(x, y, verbose=0, return_dict=True, batch_size=1024)
    metrics: dict[str, Any] = {f"test_{k}": float(v) for k, v in results.items()}
    predicted = predictions(model, x, ds.task)
    if ds.task == "regression":
        err = predicted - y
        mse = float(np.mean(err**2))
        metrics.update(test_mae=float(np.mean(np.abs(err))), test_mse=mse,
                       test_rmse=float(np.sqrt(mse)))
        return metrics, predicted
    labels = list(range(len(ds.classes)))
    report = classification_report(y, predicted, labels=labels, target_names=list(ds.classes),
                                   output_dict=True, zero_division=0)
    metrics["test_accuracy"] = float(np.mean(predicted == y))
    metrics["per_class"] = {name: {k: round(float(v), 6) for k, v in report[name].items()}
                            for name in ds.classes}
    metrics["confusion_matrix"] = confusion_matrix(y, predicted, labels=labels).tolist()
    return metrics, predicted
