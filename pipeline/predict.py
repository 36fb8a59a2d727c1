"""Command `predict`: a dataset's champion model (or a given run's) on raw inputs.

    python -m pipeline.predict fashion_mnist images.npy      # uint8 (28, 28) or (n, 28, 28)
    python -m pipeline.predict imdb reviews.json             # [[1, 14, 22, ...], ...]
    python -m pipeline.predict boston_housing houses.csv     # one row of 13 numbers per line

Inputs are in the dataset's raw form, as keras.datasets.load_data() returns it;
they go through the same preprocessing as training (chosen by the dataset's
`preprocess.kind`, with the statistics recorded in its manifest).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.config import dataset_config, load_params
from pipeline.console import run_stage
from pipeline.errors import DataError
from pipeline.features import Transform
from pipeline.formats import Sequences
from pipeline.prepare import read_manifest

log = logging.getLogger("pipeline.predict")

EXPECTED = {
    "images": "a .npy file of uint8 pixels shaped like one image or a batch of them",
    "multi_hot": "a .json file holding a list of word-index lists (or one list)",
    "standardize": "a .csv (or .json) file with one row of numbers per example",
}


def read_inputs(path: Path, ds: DictConfig, manifest: dict):
    """Raw inputs -> the model's features, via the dataset's own preprocessing."""
    kind = ds.preprocess.kind
    feature_shape = tuple(manifest["splits"]["train"]["x_shape"][1:])
    bad = DataError(f"{path}: expected {EXPECTED[kind]} (features {list(feature_shape)}) for "
                    f"{manifest['dataset']}. Fix: see `python -m pipeline.predict --help`")
    if not path.is_file():
        raise DataError(f"{path}: no such file. Fix: give the path of an input file")
    try:
        if kind == "images":
            x = np.load(path, allow_pickle=False)
            x = x[None] if x.shape == feature_shape else x
            if x.shape[1:] != feature_shape or x.dtype != np.uint8:
                raise bad
        elif kind == "multi_hot":
            rows = json.loads(path.read_text())
            rows = [rows] if rows and all(isinstance(w, int) for w in rows) else rows
            if not rows or not all(isinstance(r, list) and all(isinstance(w, int) for w in r)
                                   for r in rows):
                raise bad
            x = Sequences.from_lists(rows)
        else:
            text = path.read_text()
            x = (np.asarray(json.loads(text), dtype=np.float64) if path.suffix == ".json"
                 else np.loadtxt(path, delimiter=",", ndmin=2))
            x = x.reshape(1, -1) if x.ndim == 1 else x
            if x.shape[1:] != feature_shape:
                raise bad
    except (ValueError, OSError) as err:
        if isinstance(err, DataError):
            raise
        raise bad from None
    pre = manifest["preprocess"]
    fitted = {k: pre[k] for k in ("mean", "std") if k in pre}
    options = {"num_words": pre["num_words"]} if "num_words" in pre else {}
    transform = Transform(kind, options, fitted)
    return transform.apply(x)


def load_model(dataset: str, run_id: str | None):
    import mlflow
    from mlflow.exceptions import MlflowException

    uri = f"runs:/{run_id}/model" if run_id else f"models:/{dataset}@champion"
    try:
        return mlflow.keras.load_model(uri), uri
    except (MlflowException, OSError) as err:
        fix = ("check the run id in the MLflow UI" if run_id else
               "run `dvc repro` (evaluate registers each dataset's best model as champion)")
        raise DataError(f"no model at {uri} ({str(err).splitlines()[0][:120]}). "
                        f"Fix: {fix}") from None


def predict(dataset: str, inputs: Path, params: DictConfig, run_id: str | None,
            data_dir: Path) -> list[str]:
    from pipeline import tracking

    ds = dataset_config(params, dataset)
    manifest = read_manifest(data_dir / dataset / "prepared")
    x = read_inputs(inputs, ds, manifest)
    tracking.connect(params)
    model, uri = load_model(dataset, run_id)
    scores = model.predict(x.toarray() if hasattr(x, "toarray") else x, verbose=0)
    lines = []
    for i, row in enumerate(scores):
        if ds.task == "regression":
            lines.append(f"{i}: {float(row[0]):.3f}")
            continue
        if len(row) == 1:  # one sigmoid unit
            cls, p = int(row[0] >= 0.5), float(row[0] if row[0] >= 0.5 else 1 - row[0])
        else:
            cls, p = int(np.argmax(row)), float(np.max(row))
        lines.append(f"{i}: {ds.classes[cls]} (class {cls}, p={p:.3f})")
    log.info("predict %s with %s (%s data):", dataset, uri, manifest["source"]["kind"])
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.predict",
        description=__doc__.split("\n\n")[0] + " Inputs: " + "; ".join(
            f"{k}: {v}" for k, v in EXPECTED.items()),
    )
    parser.add_argument("dataset", help="a dataset name under `datasets:` in params.yaml")
    parser.add_argument("inputs", type=Path, help="a file of raw inputs (see above)")
    parser.add_argument("--run", default=None, help="an MLflow run id instead of the champion")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    run_stage(lambda: predict(args.dataset, args.inputs, load_params(args.params), args.run,
                              Path(args.data_dir)))


if __name__ == "__main__":
    main()
