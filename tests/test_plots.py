"""The PNGs people look at say what they draw, and no title is cut off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

matplotlib = pytest.importorskip("matplotlib")


@pytest.fixture
def drawn(monkeypatch):
    """Every figure the code saves: its axes' titles, each checked to lie inside the figure."""
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    seen: dict[str, list[str]] = {}
    save = Figure.savefig

    def checked_save(fig, path, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            box = ax.title.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (
                f"{Path(path).name}: the title {ax.get_title()!r} is cut off")
        seen[Path(path).name] = [ax.get_title() for ax in fig.axes if ax.get_title()]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked_save)
    return seen


def test_regression_plots_without_validation(tmp_path, drawn):
    from pipeline.plots import write_plots

    ds = OmegaConf.create({"task": "regression", "classes": None})
    y = np.linspace(5, 50, 20)
    write_plots(tmp_path, {"loss": [9.0, 4.0], "mae": [3.0, 2.0]}, ds, y, y + 1,
                "boston_housing / boston_housing_dense")
    assert drawn["learning_curves.png"] == ["Training loss", "Training mae"]  # no val curve
    assert drawn["predictions.png"] == ["boston_housing / boston_housing_dense\ntest predictions"]


def test_classifier_plots_with_validation(tmp_path, drawn):
    from pipeline.plots import write_plots

    names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
             "Sneaker", "Bag", "Ankle boot"]
    ds = OmegaConf.create({"task": "multiclass", "classes": names})
    y = np.arange(100) % 10
    history = {"loss": [1.0, 0.5], "accuracy": [0.6, 0.8], "val_loss": [1.1, 0.7],
               "val_accuracy": [0.5, 0.7]}
    write_plots(tmp_path, history, ds, y, y, "fashion_mnist / fashion_mnist_cnn")
    assert drawn["learning_curves.png"] == ["Training and validation accuracy",
                                            "Training and validation loss"]
    assert drawn["confusion_matrix.png"] == [
        "fashion_mnist / fashion_mnist_cnn\ntest confusion matrix"]
