"""The epoch progress bar: drawn at a terminal, silent in logs (DVC, CI)."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pipeline.progress import EpochProgress, postfix_of  # noqa: E402


class FakeTty(io.StringIO):
    """A stream that says it is a terminal, so tqdm draws into a string we can read."""

    def isatty(self) -> bool:
        return True


def fit_tiny(callback: EpochProgress, epochs: int = 3) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")],
                             name="tiny_model")
    model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, validation_data=(x, y), epochs=epochs, batch_size=16, verbose=0,
              callbacks=[callback])


def test_bar_over_epochs_on_a_terminal():
    stream = FakeTty()
    fit_tiny(EpochProgress(stream=stream), epochs=3)
    text = stream.getvalue()
    assert "tiny_model" in text  # the model's name labels the bar
    assert "3/3" in text and "epoch" in text
    assert re.search(r"loss=\d\.\d{4}", text) and re.search(r"val_accuracy=\d\.\d{4}", text)
    assert "batch" not in text  # one bar over epochs, nothing per batch


def test_silent_when_not_a_terminal(capsys):
    stream = io.StringIO()  # a log file or a pipe
    fit_tiny(EpochProgress(stream=stream))
    assert stream.getvalue() == ""
    fit_tiny(EpochProgress())  # default: stderr, which pytest captures (not a TTY)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_postfix_shows_loss_and_the_validation_metric():
    logs = {"loss": 0.51234, "accuracy": 0.7, "val_loss": 0.6, "val_accuracy": 0.75}
    assert postfix_of(logs) == {"loss": "0.5123", "val_accuracy": "0.7500"}
    assert postfix_of({"loss": 1.0, "val_loss": 2.0}) == {"loss": "1.0000", "val_loss": "2.0000"}
    assert postfix_of({"loss": 1.0}) == {"loss": "1.0000"}
