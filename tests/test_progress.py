"""The epoch progress bar: drawn on a terminal (a real pty here), silent in logs (DVC, CI)."""

from __future__ import annotations

import io
import os
import pty
import re
import select

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from pipeline.progress import EpochProgress, postfix_of  # noqa: E402

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def read_terminal(master: int) -> str:
    """Everything written to the terminal so far (the pty's other end)."""
    chunks = []
    while select.select([master], [], [], 0.2)[0]:
        chunks.append(os.read(master, 65536))
    return b"".join(chunks).decode("utf-8", errors="replace")


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
    master, slave = pty.openpty()  # a real terminal device, as a person's shell has
    with os.fdopen(slave, "w", encoding="utf-8") as terminal, os.fdopen(master, "rb", 0):
        assert terminal.isatty()
        fit_tiny(EpochProgress(stream=terminal), epochs=3)
        terminal.flush()
        text = read_terminal(master)
    assert "tiny_model" in text  # the model's name labels the bar
    assert "3/3" in text and "epoch" in text
    assert re.search(r"loss=\d\.\d{4}", text) and re.search(r"val_accuracy=\d\.\d{4}", text)
    assert "\n" not in text  # redrawn in place (\r), then cleared: one line, nothing left
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
