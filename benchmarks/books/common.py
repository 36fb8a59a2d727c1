"""What the books' scripts share, and nothing of the books' own code.

Run from a project directory (the suite's workspace): the scripts read its
params.yaml (seed, split, hyperparameters: the same values the pipeline uses, so
the metrics compare) and the raw upstream files the pipeline downloaded into
data/<dataset>/raw/, loaded as `keras.datasets.<name>.load_data()` returns them.
The loading goes through the project's Keras-exact readers (no network, no
re-download on a stand-in file's different hash); everything after it is the
books' plain code, in each script.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import yaml

PROJECT = Path.cwd()
PARAMS = yaml.safe_load((PROJECT / "params.yaml").read_text())
SEED = PARAMS["seed"]


def load_data(dataset: str):
    """((x_train, y_train), (x_test, y_test)) exactly as keras.datasets hands them over."""
    from omegaconf import OmegaConf

    from pipeline.formats import Sequences, load_upstream

    load = OmegaConf.create(PARAMS["datasets"][dataset]["load"])
    data = load_upstream(load, PROJECT / "data" / dataset / "raw", dataset)

    def plain(x):  # keras gives ragged word lists as an object array of lists
        if not isinstance(x, Sequences):
            return x
        rows = np.empty(len(x), dtype=object)
        rows[:] = x.to_lists()
        return rows

    return (plain(data.x_train), data.y_train), (plain(data.x_test), data.y_test)


def model_params(name: str) -> dict:
    return PARAMS["models"][name]


def validation(dataset: str) -> dict:
    return PARAMS["datasets"][dataset]["split"]


def report(**metrics: float) -> None:
    """The book prints the test score; the suite also reads it from $BOOKS_RESULT."""
    metrics = {k: float(v) for k, v in metrics.items()}
    print(metrics)
    if os.environ.get("BOOKS_RESULT"):
        Path(os.environ["BOOKS_RESULT"]).write_text(json.dumps(metrics))
