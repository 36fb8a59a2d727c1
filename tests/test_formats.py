"""Readers vs Keras itself, on files in the exact upstream formats; safe loading."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers.params import project_params
from helpers.upstream import idx_gz_bytes, npz_bytes, object_array

from pipeline.arrays import read_idx_gz, read_npz, write_idx_gz, write_npz
from pipeline.config import compose
from pipeline.errors import DataError
from pipeline.formats import Sequences, load_upstream

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

keras = pytest.importorskip("keras")


def load_cfg(dataset: str, **overrides):
    """The dataset's validated load config, then the overrides (num_words=None included)."""
    load = compose(project_params()).datasets[dataset].load
    for key, value in overrides.items():
        load[key] = value
    return load


KERAS_TEXT_ARGS = ("num_words", "skip_top", "maxlen", "seed", "start_char", "oov_char",
                   "index_from")


def keras_kwargs(load, *extra: str) -> dict:
    """The load_data() arguments our load config stands for."""
    return {k: load[k] for k in (*KERAS_TEXT_ARGS, *extra)}


def patch_get_file(monkeypatch, module: str, folder: Path) -> None:
    """Make keras.datasets.<module> read our fixture files instead of downloading."""
    import importlib

    mod = importlib.import_module(f"keras.src.datasets.{module}")
    monkeypatch.setattr(mod, "get_file", lambda fname=None, *a, **k: str(folder / (
        fname or k.get("fname"))))


def ragged(rng, n, vocab=300):
    return object_array([rng.integers(1, vocab, size=rng.integers(1, 40)).tolist()
                         for _ in range(n)])


TEXT_CASES = [
    {},
    {"num_words": 50},
    {"num_words": 50, "skip_top": 5},
    {"num_words": 80, "maxlen": 20},
    {"num_words": 50, "oov_char": None},
    {"num_words": 50, "start_char": None},
    {"num_words": None},
    {"num_words": 40, "seed": 7, "index_from": 2},
]


@pytest.mark.parametrize("case", TEXT_CASES)
def test_imdb_matches_keras(tmp_path, monkeypatch, case):
    rng = np.random.default_rng(1)
    (tmp_path / "imdb.npz").write_bytes(npz_bytes(
        x_train=ragged(rng, 60), y_train=rng.integers(0, 2, 60),
        x_test=ragged(rng, 40), y_test=rng.integers(0, 2, 40)))
    patch_get_file(monkeypatch, "imdb", tmp_path)
    load = load_cfg("imdb", **case)
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.imdb.load_data(**keras_kwargs(load))

    ours = load_upstream(load, tmp_path, "imdb")

    assert ours.x_train.to_lists() == [list(x) for x in kx_tr]
    assert ours.x_test.to_lists() == [list(x) for x in kx_te]
    np.testing.assert_array_equal(ours.y_train, ky_tr)
    np.testing.assert_array_equal(ours.y_test, ky_te)


@pytest.mark.parametrize("case", [{}, {"test_split": 0.3, "num_words": 60}, {"maxlen": 25}])
def test_reuters_matches_keras(tmp_path, monkeypatch, case):
    rng = np.random.default_rng(2)
    (tmp_path / "reuters.npz").write_bytes(npz_bytes(x=ragged(rng, 90),
                                                     y=rng.integers(0, 46, 90)))
    patch_get_file(monkeypatch, "reuters", tmp_path)
    load = load_cfg("reuters", **case)
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.reuters.load_data(
        **keras_kwargs(load, "test_split"))

    ours = load_upstream(load, tmp_path, "reuters")

    assert ours.x_train.to_lists() == [list(x) for x in kx_tr]
    assert ours.x_test.to_lists() == [list(x) for x in kx_te]
    np.testing.assert_array_equal(ours.y_train, ky_tr)
    np.testing.assert_array_equal(ours.y_test, ky_te)


def test_boston_matches_keras(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    (tmp_path / "boston_housing.npz").write_bytes(
        npz_bytes(x=rng.normal(size=(57, 13)), y=rng.uniform(5, 50, 57)))
    patch_get_file(monkeypatch, "boston_housing", tmp_path)
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.boston_housing.load_data()

    ours = load_upstream(load_cfg("boston_housing"), tmp_path, "boston_housing")

    for a, b in [(ours.x_train, kx_tr), (ours.y_train, ky_tr), (ours.x_test, kx_te),
                 (ours.y_test, ky_te)]:
        np.testing.assert_array_equal(a, b)


def test_mnist_matches_keras(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    arrays = {"x_train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "y_train": rng.integers(0, 10, 30).astype(np.uint8),
              "x_test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
              "y_test": rng.integers(0, 10, 10).astype(np.uint8)}
    (tmp_path / "mnist.npz").write_bytes(npz_bytes(**arrays))
    patch_get_file(monkeypatch, "mnist", tmp_path)
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.mnist.load_data()

    ours = load_upstream(load_cfg("mnist"), tmp_path, "mnist")

    for a, b in [(ours.x_train, kx_tr), (ours.y_train, ky_tr), (ours.x_test, kx_te),
                 (ours.y_test, ky_te)]:
        np.testing.assert_array_equal(a, b)
    assert ours.x_train.dtype == np.uint8


def test_fashion_idx_matches_keras(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    files = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (25, 28, 28), dtype=np.uint8),
             "train-labels-idx1-ubyte.gz": rng.integers(0, 10, 25).astype(np.uint8),
             "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (7, 28, 28), dtype=np.uint8),
             "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, 7).astype(np.uint8)}
    for name, array in files.items():
        (tmp_path / name).write_bytes(idx_gz_bytes(array))
    patch_get_file(monkeypatch, "fashion_mnist", tmp_path)
    (kx_tr, ky_tr), (kx_te, ky_te) = keras.datasets.fashion_mnist.load_data()

    ours = load_upstream(load_cfg("fashion_mnist"), tmp_path, "fashion_mnist")

    for a, b in [(ours.x_train, kx_tr), (ours.y_train, ky_tr), (ours.x_test, kx_te),
                 (ours.y_test, ky_te)]:
        np.testing.assert_array_equal(a, b)


# --- bad files -------------------------------------------------------------------------


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate")
    with pytest.raises(DataError, match="corrupt or truncated gzip") as err:
        read_idx_gz(path)
    assert str(path) in str(err.value)


def test_truncated_idx_is_a_clear_error(tmp_path):
    whole = idx_gz_bytes(np.zeros((5, 28, 28), dtype=np.uint8))
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz"):
        read_idx_gz(path)


def test_idx_header_disagreeing_with_length(tmp_path):
    raw = bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + bytes(7)  # says 10, holds 7
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match=r"declares shape \(10,\)"):
        read_idx_gz(path)


def test_truncated_npz_is_a_clear_error(tmp_path):
    data = npz_bytes(x=np.arange(1000.0), y=np.arange(1000.0))
    path = tmp_path / "boston_housing.npz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a valid npz"):
        read_npz(path)


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Exploit(marker), protocol=3)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    path = tmp_path / "imdb.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("x_train.npy", header.getvalue() + payload)

    with pytest.raises(DataError, match=r"refusing to load (posix|os)\.system"):
        read_npz(path)
    assert not marker.exists()


def test_object_arrays_load_without_allow_pickle(tmp_path):
    rows = [[1, 2, 3], [4], []]
    path = tmp_path / "seq.npz"
    path.write_bytes(npz_bytes(x=object_array(rows), y=np.array([0, 1, 0])))
    arrays = read_npz(path)
    assert [list(r) for r in arrays["x"]] == rows


# --- writers and the ragged type -----------------------------------------------------


def test_write_npz_is_byte_identical_and_readable(tmp_path):
    arrays = {"x": object_array([[1, 2], [3]]), "y": np.array([1, 0])}
    write_npz(tmp_path / "a.npz", arrays)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()
    with np.load(tmp_path / "a.npz", allow_pickle=True) as f:
        assert [list(r) for r in f["x"]] == [[1, 2], [3]]


def test_write_idx_gz_parses_as_keras_does(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    write_idx_gz(tmp_path / "i.gz", images)
    with gzip.open(tmp_path / "i.gz") as fh:
        keras_way = np.frombuffer(fh.read(), np.uint8, offset=16).reshape(4, 28, 28)
    np.testing.assert_array_equal(keras_way, images)
    np.testing.assert_array_equal(read_idx_gz(tmp_path / "i.gz"), images)
    first = (tmp_path / "i.gz").read_bytes()
    write_idx_gz(tmp_path / "i.gz", images)
    assert (tmp_path / "i.gz").read_bytes() == first


def test_sequences_round_trip_and_take():
    rows = [[5, 6], [], [7, 8, 9], [1]]
    seqs = Sequences.from_lists(rows)
    assert seqs.to_lists() == rows
    assert seqs.take(np.array([2, 1, 3])).to_lists() == [[7, 8, 9], [], [1]]
    assert len(seqs.take(np.array([], dtype=np.int64))) == 0
