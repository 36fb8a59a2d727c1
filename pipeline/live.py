"""A training MLflow shows while it happens: its figures appear as epochs end, and each
K-fold fold is a child run of the training's run, watched as it trains.

Epochs are sent in batches, at most one `log_batch` per second (over HTTP, a call per
figure would cost more than a small model's epoch). A store that stops answering never
stops a training: the figures wait and are sent with the next batch; what still can't be
sent at the end fails the logging that follows (pipeline/train.py keeps the trained model).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline import run_log, tracking
from pipeline.console import held_stop

log = logging.getLogger("pipeline.live")
EVERY = 1.0  # seconds between batches while a training runs
RETRY = 10.0  # seconds before trying a store that failed again


class LiveTraining:
    """Where a training's epochs go: its run, or the child run of the fold in progress."""

    def __init__(self, client, run):
        self.client, self.run, self.run_id = client, run, run.info.run_id
        self.target = self.run_id
        self.pending: list[tuple[str, int, dict[str, float]]] = []
        self.sent_at = 0.0
        self.failed_at: float | None = None

    def epoch(self, step: int, figures: Mapping[str, Any]) -> None:
        self.pending.append((self.target, step, {k: float(v) for k, v in figures.items()}))
        now = time.monotonic()
        waited = now - (self.failed_at if self.failed_at is not None else self.sent_at)
        if waited >= (RETRY if self.failed_at is not None else EVERY):
            self.send(raise_errors=False)

    def send(self, raise_errors: bool = True) -> None:
        """Send what is pending, one batch per run."""
        while self.pending:
            target = self.pending[0][0]
            batch = [(step, figures) for run, step, figures in self.pending if run == target]
            try:
                with held_stop():  # a stop waits for the write: half of one keeps SQLite locked
                    run_log.log_metric_series(self.client, target, batch)
            except Exception as err:
                if raise_errors:
                    raise
                if self.failed_at is None:
                    log.warning("live: the tracking store did not take the latest epochs "
                                "(%s); training goes on, they are sent later", type(err).__name__)
                self.failed_at = time.monotonic()
                return
            self.pending = [item for item in self.pending if item[0] != target]
        self.sent_at, self.failed_at = time.monotonic(), None

    def callback(self):
        """A Keras callback sending each epoch's figures (step = epoch, from 0)."""
        import keras

        live = self

        class LiveEpochs(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
                live.epoch(epoch, logs or {})

        return LiveEpochs()

    def fold(self, number: int, folds: int) -> contextlib.AbstractContextManager[str]:
        """K-fold's fold `number` of `folds`, as a child run watched as it trains."""
        return self.child(f"fold {number}/{folds}", {"kfold.fold": str(number)})

    def fit(self, number: int, fits: int) -> contextlib.AbstractContextManager[str]:
        """An ensemble's final fit after the first, as a child run watched as it trains."""
        return self.child(f"fit {number}/{fits}", {"ensemble.fit": str(number)})

    @contextlib.contextmanager
    def child(self, run_name: str, tags: Mapping[str, str]) -> Iterator[str]:
        """Send the epochs inside the block to a child run (tracking.child_run: FINISHED when
        its model is trained, FAILED or KILLED with why when it is not). Yields its id."""
        self.send(raise_errors=False)
        with tracking.child_run(self.client, self.run, run_name, tags) as run:
            self.target = run.info.run_id
            try:
                yield run.info.run_id
            finally:
                self.send(raise_errors=False)
                self.target = self.run_id
