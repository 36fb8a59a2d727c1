"""A progress bar over epochs for Keras `fit`, for people at a terminal only.

`fit(verbose=0)` keeps DVC logs and CI output clean, but a long training then
looks frozen at a terminal. `EpochProgress` draws one tqdm bar over the epochs
(loss and the validation metric as its postfix) when its stream is a TTY, and
prints nothing otherwise: the stage logs its own one-line summary at the end.
"""

from __future__ import annotations

import shutil
import sys
from typing import IO, Any

import keras

BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} epochs{postfix} |{bar}| {elapsed}<{remaining}"


class EpochProgress(keras.callbacks.Callback):
    """One tqdm bar over epochs on a TTY; silent when output goes to a file or a pipe."""

    def __init__(self, stream: IO[str] | None = None, desc: str | None = None) -> None:
        super().__init__()
        self._stream = stream  # None: sys.stderr as it is when training starts
        self._desc = desc
        self._bar: Any = None

    def _output(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stderr

    def on_train_begin(self, logs: dict | None = None) -> None:
        stream = self._output()
        isatty = getattr(stream, "isatty", None)
        if not (callable(isatty) and isatty()):
            return  # not a terminal: no carriage returns in logs
        from tqdm import tqdm

        # A terminal that reports 0 columns (a bare pty) would get an invisible bar: 80 then.
        # The figures come before the bar, so a narrow terminal shortens the bar, not them.
        width = shutil.get_terminal_size((80, 24)).columns
        self._bar = tqdm(total=self.params.get("epochs"), desc=self._desc or self.model.name,
                         file=stream, leave=False, ncols=width, bar_format=BAR_FORMAT,
                         mininterval=0)  # redraw every epoch: epochs are few

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self._bar is None:
            return
        self._bar.set_postfix(postfix_of(logs or {}), refresh=False)
        self._bar.update(1)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def postfix_of(logs: dict[str, Any]) -> dict[str, str]:
    """loss and the first validation metric (val_loss when there is no other), 4 digits."""
    shown = {}
    if "loss" in logs:
        shown["loss"] = logs["loss"]
    val = [k for k in logs if k.startswith("val_") and k != "val_loss"] or (
        ["val_loss"] if "val_loss" in logs else [])
    if val:
        shown[val[0]] = logs[val[0]]
    return {k: f"{float(v):.4f}" for k, v in shown.items()}
