"""The PNGs people look at say what they draw, and no title is cut off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

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
        suptitle = getattr(fig, "_suptitle", None)  # a figure-wide title, if any
        titles = [ax.title for ax in fig.axes] + ([suptitle] if suptitle is not None else [])
        for title in titles:
            box = title.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height, (
                f"{Path(path).name}: the title {title.get_text()!r} is cut off")
        seen[Path(path).name] = [t.get_text() for t in titles if t.get_text()]
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked_save)
    return seen


def test_regression_plots_without_validation(tmp_path, drawn):
    from pipeline.plots import write_plots

    ds = OmegaConf.create({"task": "regression", "classes": None})
    y = np.linspace(5, 50, 20)
    write_plots(tmp_path, {"loss": [9.0, 4.0], "mae": [3.0, 2.0]}, ds, y, y + 1,
                "boston_housing / boston_housing_dense")
    assert drawn["learning_curves.png"] == ["Training loss", "Training mae",
                                            "boston_housing / boston_housing_dense"]  # no val
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
                                            "Training and validation loss",
                                            "fashion_mnist / fashion_mnist_cnn"]
    assert drawn["confusion_matrix.png"] == [
        "fashion_mnist / fashion_mnist_cnn\ntest confusion matrix"]


def book_smooth_curve(points, factor=0.9):
    """DLwP ch. 3's smooth_curve, as printed."""
    smoothed_points = []
    for point in points:
        if smoothed_points:
            previous = smoothed_points[-1]
            smoothed_points.append(previous * factor + point * (1 - factor))
        else:
            smoothed_points.append(point)
    return smoothed_points


def test_the_kfold_curve_chooses_the_best_epoch_of_the_folds_mean():
    from pipeline import curves

    folds = [[9.0, 5.0, 3.0, 2.0, 4.0, 6.0], [7.0, 4.0, 2.0, 2.5, 3.0, 5.0],
             [8.0, 6.0, 4.0, 3.0, 2.5, 7.0, 1.0]]  # the last fold ran one epoch longer
    mean = curves.mean_curve(folds)
    assert mean.shape == (6,)  # every point averages all three folds
    assert mean.tolist() == pytest.approx(np.mean([f[:6] for f in folds], axis=0).tolist())
    assert curves.best_epoch(mean, "val_mae") == int(np.argmin(mean)) + 1 == 4
    assert curves.best_epoch(mean, "val_accuracy") == int(np.argmax(mean)) + 1 == 1
    assert curves.best_epoch(mean, "val_mae", skip=4) == 5  # never among the skipped epochs
    rng = np.random.default_rng(0)
    noisy = 3 + 10 * np.exp(-np.arange(60) / 5) + rng.normal(0, 0.3, 60)
    smoothed = book_smooth_curve(noisy[10:])
    assert curves.smooth(noisy[10:], 0.9).tolist() == pytest.approx(smoothed)
    assert curves.best_epoch(noisy, "val_mae", 0.9, 10) == 10 + int(np.argmin(smoothed)) + 1
    assert curves.describe("val_mae", 4, 0.9, 10) == (
        "lowest val_mae averaged over 4 folds, after epoch 10, smoothed (EMA 0.9)")


def test_the_kfold_curve_file_and_figure(tmp_path, drawn):
    import csv

    from pipeline.curves import Curve
    from pipeline.plots import draw_kfold, write_kfold_csv

    rng = np.random.default_rng(1)
    folds = (3 + 10 * np.exp(-np.arange(12) / 3) + rng.normal(0, 0.2, (4, 12))).tolist()
    curve = Curve("val_mae", folds, smoothing=0.9, skip=2, best=9, chosen=True)
    write_kfold_csv(tmp_path / "validation.csv", curve)
    rows = list(csv.reader((tmp_path / "validation.csv").open()))
    assert rows[0] == ["epoch", "fold_1", "fold_2", "fold_3", "fold_4", "mean"]
    table = np.array(rows[1:], dtype=float)
    assert table.shape == (12, 6)  # epochs x (epoch, 4 folds, mean)
    assert table[:, 0].tolist() == list(range(1, 13))
    assert table[:, 1:5] == pytest.approx(np.array(folds).T, rel=1e-5)
    assert table[:, 5] == pytest.approx(np.mean(folds, axis=0), rel=1e-5)

    draw_kfold(tmp_path, curve, "boston_housing / boston_housing_dense", final_epochs=9)
    assert (tmp_path / "kfold_validation.png").stat().st_size > 0
    assert drawn["kfold_validation.png"] == [
        "boston_housing / boston_housing_dense\nK-fold validation mae"]


def test_the_confusion_plot_data_counts_the_confusion_matrix(tmp_path):
    import collections
    import csv

    from sklearn.metrics import confusion_matrix

    from pipeline.plots import write_predictions_csv

    names = ["negative", "positive, really", "neutral"]  # a comma: quoted, still one class
    rng = np.random.default_rng(2)
    y, predicted = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    write_predictions_csv(tmp_path / "predictions.csv", names, y, predicted)
    with (tmp_path / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    counts = collections.Counter((r["actual"], r["predicted"]) for r in rows)
    matrix = confusion_matrix(y, predicted, labels=range(3))
    assert len(rows) == 200
    assert {(names[a], names[p]): int(matrix[a, p]) for a in range(3) for p in range(3)
            if matrix[a, p]} == dict(counts)


def test_conv_filters_and_feature_maps_only_for_a_conv_model(tmp_path, drawn):
    keras = pytest.importorskip("keras")
    from pipeline.plots import write_conv_plots

    def model(*layers):
        inputs = keras.Input(shape=(8, 8), name="features")
        x = inputs
        for layer in layers:
            x = layer(x)
        return keras.Model(inputs, x)

    image = np.random.default_rng(3).random((1, 8, 8)).astype("float32")
    conv = model(keras.layers.Reshape((8, 8, 1)), keras.layers.Conv2D(6, 3, padding="same"),
                 keras.layers.Flatten(), keras.layers.Dense(2))
    (tmp_path / "cnn").mkdir()
    write_conv_plots(tmp_path / "cnn", conv, image, "fashion_mnist / fashion_mnist_cnn")
    assert sorted(p.name for p in (tmp_path / "cnn").iterdir()) == [
        "conv_feature_maps.png", "conv_filters.png"]
    assert drawn["conv_filters.png"] == [
        "fashion_mnist / fashion_mnist_cnn\nfirst Conv2D layer: 6 3x3 filters"]
    assert drawn["conv_feature_maps.png"] == [
        "fashion_mnist / fashion_mnist_cnn\nfirst Conv2D layer: feature maps of the first test "
        "image"]

    (tmp_path / "dense").mkdir()
    dense = model(keras.layers.Flatten(), keras.layers.Dense(2))
    write_conv_plots(tmp_path / "dense", dense, image, "fashion_mnist / fashion_mnist_dense")
    assert not any((tmp_path / "dense").iterdir())
