"""Command `predict`: a dataset's champion model (or a given run's) on raw inputs.

    python -m pipeline.predict fashion_mnist images.npy      # uint8 (28, 28) or (n, 28, 28)
    python -m pipeline.predict imdb reviews.json             # [[1, 14, 22, ...], ...]
    python -m pipeline.predict boston_housing houses.csv     # one row of 13 numbers per line

Inputs are in the dataset's raw form, as keras.datasets.load_data() returns it;
they go through the same preprocessing as training (chosen by the dataset's
`preprocess.kind`, with the statistics recorded in its manifest).

The model is the tracking store's champion; where the store has none of the dataset (a
clone that fetched the models with `python -m pipeline.share pull`, their runs logged to
another checkout's store), the model files in models/ decide by the registry's rule
(pipeline/pulled.py), and a line says which model and where its run is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline import cli, layout, pulled
from pipeline.arrays import dense
from pipeline.config import dataset_config, load_params
from pipeline.errors import DataError, error_line
from pipeline.features import Transform
from pipeline.formats import Sequences

log = logging.getLogger("pipeline.predict")

EXPECTED = {
    "images": "a .npy file of uint8 pixels shaped like one image or a batch of them",
    "multi_hot": "a .json file holding a list of word-index lists (or one list)",
    "standardize": "a .csv (or .json) file with one row of numbers per example",
}


def read_inputs(path: Path, ds: DictConfig, manifest: dict):
    """Raw inputs -> the model's features, via the dataset's own preprocessing. Anything
    that isn't what the dataset expects is refused, naming the file and what is wrong."""
    kind = ds.preprocess.kind
    feature_shape = tuple(manifest["splits"]["train"]["x_shape"][1:])
    expected = f"expected {EXPECTED[kind]} (features {list(feature_shape)})"
    fix = "Fix: see `python -m pipeline.predict --help`"
    if not path.is_file():
        raise DataError(f"{path}: no such file. Fix: give the path of an input file")
    try:
        if kind == "images":
            x = _images(path, feature_shape)
        elif kind == "multi_hot":
            x = _word_lists(path, ds.load)
        else:
            x = _table(path, feature_shape)
    except _Refused as err:
        raise DataError(f"{path}: {err}; {expected} for {manifest['dataset']}. {fix}") from None
    if len(x) == 0:
        raise DataError(f"{path}: holds no rows; {expected}. {fix}")
    pre = manifest["preprocess"]
    fitted = {k: pre[k] for k in ("mean", "std") if k in pre}
    options = {"num_words": pre["num_words"]} if "num_words" in pre else {}
    with np.errstate(all="ignore"):  # an overflow is refused just below, in one line
        features = Transform(kind, options, fitted).apply(x)
    values = features.data if hasattr(features, "tocsr") else np.asarray(features)
    if not np.all(np.isfinite(values)):
        rows = np.flatnonzero(~np.isfinite(np.asarray(dense(features)).reshape(len(x), -1)).all(
            axis=1))
        raise DataError(f"{path}: row {int(rows[0])} is out of range once preprocessed "
                        f"({kind}: not a finite number); {expected}. {fix}")
    return features


class _Refused(ValueError):
    """What is wrong with an input file (read_inputs adds the file and what was expected)."""


def _images(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:  # mapped first: the header's shape and dtype are checked before anything is read
        x = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as err:
        raise _Refused(f"not a readable .npy file ({error_line(err)[:120]})") from None
    if not isinstance(x, np.ndarray):
        raise _Refused("an .npz archive, not a single .npy array")
    x = x[None] if x.shape == shape else x
    if x.shape[1:] != shape:
        raise _Refused(f"holds an array of shape {list(x.shape)}")
    if x.dtype != np.uint8:
        raise _Refused(f"holds {x.dtype} values, not uint8 pixels (0-255)")
    return np.array(x)


def _word_lists(path: Path, load: DictConfig) -> Sequences:
    """Word-index lists as keras.datasets gives them; indices beyond the vocabulary become
    the out-of-vocabulary index, as Keras' own num_words does."""
    try:
        rows = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        raise _Refused(f"not readable JSON ({error_line(err)[:120]})") from None
    if isinstance(rows, list) and rows and all(_is_index(w) for w in rows):
        rows = [rows]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise _Refused("not a list of word-index lists")
    for i, row in enumerate(rows):
        for word in row:
            if not _is_index(word):
                raise _Refused(f"row {i} holds {json.dumps(word)[:40]}, not a word index")
            if not 0 <= word < 2**31:
                raise _Refused(f"row {i} holds the word index {word}, outside 0 to {2**31 - 1}")
    seqs = Sequences.from_lists(rows)
    outside = (seqs.values < load.skip_top) | (seqs.values >= load.num_words)
    if outside.any():
        log.info("predict: %d word indices beyond the %d-word vocabulary are read as the "
                 "out-of-vocabulary word, as keras.datasets does", int(outside.sum()),
                 load.num_words)
        if load.oov_char is None:
            keep = ~outside
            lengths = np.bincount(np.repeat(np.arange(len(seqs)), seqs.lengths)[keep],
                                  minlength=len(seqs))
            return Sequences(seqs.values[keep], np.concatenate([[0], np.cumsum(lengths)]))
        seqs = Sequences(np.where(outside, load.oov_char, seqs.values), seqs.offsets)
    return seqs


def _is_index(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _table(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    try:
        if path.suffix == ".json":
            x = np.asarray(json.loads(path.read_text()), dtype=np.float64)
        else:
            import warnings

            with warnings.catch_warnings():  # an empty file: "holds no rows" says it better
                warnings.simplefilter("ignore", UserWarning)
                x = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except (ValueError, OSError, TypeError) as err:
        raise _Refused(f"not a table of numbers ({error_line(err)[:120]})") from None
    x = x.reshape(1, -1) if x.ndim == 1 and x.size else x
    if x.size == 0:
        return x.reshape(0, *shape)
    if x.ndim != 2 or x.shape[1:] != shape:
        raise _Refused(f"holds rows of {x.shape[1] if x.ndim == 2 else '?'} numbers")
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise _Refused(f"row {int(bad[0])} holds NaN or infinity ({len(bad)} such rows)")
    return x


def load_model(dataset: str, run_id: str | None, params: DictConfig | None = None,
               models_dir: Path = layout.MODELS):
    """The champion (or the run's model) from the tracking store; where the store doesn't
    know it (models pulled from a DVC remote, their runs logged elsewhere), the model files
    here (pipeline/pulled.py). Returns (model, where it came from)."""
    import re

    import mlflow
    from mlflow.exceptions import MlflowException

    from pipeline import registry

    if run_id is not None and not re.fullmatch(r"[0-9a-f]{32}", run_id):
        raise DataError(f"--run {run_id!r} is not an MLflow run id (32 hex digits). Fix: copy "
                        "it from the MLflow UI or from models/<model>/run.json")
    uri = f"runs:/{run_id}/model" if run_id else f"models:/{dataset}@champion"
    client = mlflow.MlflowClient()
    if run_id is not None:
        try:
            trained_on = client.get_run(run_id).data.tags.get("dataset")
        except MlflowException:
            files = pulled.with_run(params, run_id, models_dir) if params is not None else None
            if files is not None:
                return _from_files(files, dataset, params, f"run {run_id} is not in this "
                                   f"store ({mlflow.get_tracking_uri()}), so its model files "
                                   "here answer")
            trained_on = dataset  # no such run: said below, by the load
        if trained_on != dataset:
            raise DataError(f"run {run_id} holds a model of {trained_on}, not of {dataset}. "
                            f"Fix: pass a run of {dataset}, or leave --run out (the champion)")
    elif params is not None and registry.champion(client, dataset) is None:
        files = pulled.champion(params, dataset, models_dir)
        if files is not None:
            return _from_files(files, dataset, params, f"the tracking store "
                               f"{mlflow.get_tracking_uri()} has no champion of {dataset}, so "
                               "the model files here decide, by the registry's rule")
    try:
        return mlflow.keras.load_model(uri), uri
    except Exception as err:  # no run, no model, a baseline's (scikit-learn) model, ...
        fix = ("pass the run id of a Keras model of this dataset (models/<model>/run.json)"
               if run_id else f"`dvc repro -f train@<model> evaluate@<model>` for a model of "
               f"{dataset}, or `python -m pipeline.share pull` for the team's: the tracking "
               f"store {mlflow.get_tracking_uri()} has no champion (it was reset, or belongs "
               "to another checkout)")
        reason = error_line(err)[:120] or type(err).__name__
        raise DataError(f"no Keras model at {uri} ({reason}). Fix: {fix}") from None


def _from_files(files: pulled.ModelFiles, dataset: str, params: DictConfig, why: str):
    """Load a model from its files here, saying in one line which and where its run is."""
    import keras
    import mlflow
    from mlflow.exceptions import MlflowException

    trained_on = params.models[files.name].dataset
    if trained_on != dataset:
        raise DataError(f"run {files.run_id} holds a model of {trained_on} ({files.name}), not "
                        f"of {dataset}. Fix: pass a run of {dataset}, or leave --run out")
    try:
        here = files.run_id is not None and mlflow.MlflowClient().get_run(files.run_id)
    except MlflowException:
        here = False
    run = (f"its MLflow run {files.run_id} is in this store" if here else
           f"its MLflow run {files.run_id or '(none recorded)'} was logged to "
           f"{files.logged_to or 'another store'}, not to this one; to share runs, log to a team "
           "tracking server (tracking.uri: README, Sharing results with a team)")
    log.info("predict %s: %s: %s (%s=%.4f); %s", dataset, why, files.path, files.metric,
             files.value, run)
    return keras.models.load_model(files.path), str(files.path)


def predict(dataset: str, inputs: Path, params: DictConfig, run_id: str | None,
            data_dir: Path, models_dir: Path = layout.MODELS) -> list[str]:
    from pipeline import tracking

    ds = dataset_config(params, dataset)
    manifest = layout.read_manifest(layout.prepared_dir(data_dir, dataset))
    x = read_inputs(inputs, ds, manifest)
    tracking.connect(params)
    model, uri = load_model(dataset, run_id, params, models_dir)
    takes = tuple(model.input_shape[1:])
    if takes != tuple(x.shape[1:]):
        raise DataError(f"the model at {uri} takes inputs of shape {list(takes)}, but "
                        f"{dataset}'s features have shape {list(x.shape[1:])}: it is not a "
                        f"model of {dataset} as prepared now. Fix: retrain it (`dvc repro`)")
    scores = model.predict(dense(x), verbose=0)
    if not np.all(np.isfinite(scores)):
        raise DataError(f"predict {dataset}: the model ({uri}) answered NaN/inf for "
                        f"{int((~np.isfinite(scores)).any(axis=-1).sum())} of {len(scores)} rows; "
                        "no answer is given. Fix: retrain the model (`dvc repro -f train@...`)")
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
    log.info("predict %s with %s (data: %s):", dataset, uri, layout.data_label(manifest["source"]))
    print("\n".join(lines))
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.predict", __doc__.split("\n\n")[0] + " Inputs: " + "; ".join(
        f"{k}: {v}" for k, v in EXPECTED.items()), "dataset", ("data", "models"))
    parser.add_argument("inputs", type=Path, help="a file of raw inputs (see above)")
    parser.add_argument("--run", default=None, help="an MLflow run id instead of the champion")
    cli.run(parser, argv, lambda args: predict(args.dataset, args.inputs,
                                               load_params(args.params), args.run,
                                               args.data_dir, args.models_dir))


if __name__ == "__main__":
    main()
