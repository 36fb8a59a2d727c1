"""Upstream files -> the arrays `keras.datasets.<name>.load_data()` returns.

One reader per file format (npz, idx_gz, sequences_npz), parameterised by the
dataset's `load` config, never by its name. The semantics match Keras exactly
(seeded RandomState shuffles, start/oov chars, index_from, num_words, skip_top,
maxlen, test_split) so metrics compare with published ones. Word sequences are
kept ragged in two flat arrays (values + offsets): vectorised, and 10x smaller
than Python lists.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pipeline.arrays import read_idx_gz, read_npz
from pipeline.errors import ConfigError, DataError


@dataclass
class Sequences:
    """Ragged int sequences: row i is values[offsets[i]:offsets[i + 1]]."""

    values: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_lists(cls, rows) -> Sequences:
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        values = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64,
                             count=int(offsets[-1]))
        return cls(values, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, rows: np.ndarray) -> Sequences:
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        positions = np.repeat(self.offsets[:-1][rows] - offsets[:-1], lengths)
        positions += np.arange(offsets[-1])
        return Sequences(self.values[positions], offsets)

    def to_lists(self) -> list[list[int]]:
        return [self.values[a:b].tolist() for a, b in itertools.pairwise(self.offsets)]


@dataclass
class Upstream:
    """The train/test split as keras.datasets hands it over."""

    x_train: np.ndarray | Sequences
    y_train: np.ndarray
    x_test: np.ndarray | Sequences
    y_test: np.ndarray


def load_upstream(load: DictConfig, raw_dir: Path, dataset: str) -> Upstream:
    """Read the verified raw files of one dataset with its format's reader."""
    reader = READERS[load.format]
    return reader(load, Path(raw_dir), dataset)


# --- readers


def _require(arrays: dict, keys: tuple[str, ...], path: Path, dataset: str) -> None:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(
            f"{dataset}: {path.name} lacks arrays {missing} (it has {sorted(arrays)}). Fix: check "
            f"datasets.{dataset}.load.test_split (null = the file holds x_train/x_test, "
            "a fraction = the file holds x/y)"
        )


def _split_arrays(load: DictConfig, arrays: dict, path: Path, dataset: str, shuffle: Callable):
    """(x_train, y_train, x_test, y_test) from a file's own split or a seeded test_split."""
    rng = np.random.RandomState(load.seed) if load.seed is not None else None
    if load.test_split is None:
        _require(arrays, ("x_train", "y_train", "x_test", "y_test"), path, dataset)
        x_train, y_train = shuffle(rng, arrays["x_train"], arrays["y_train"])
        x_test, y_test = shuffle(rng, arrays["x_test"], arrays["y_test"])
        return [(x_train, y_train), (x_test, y_test)]
    _require(arrays, ("x", "y"), path, dataset)
    return [shuffle(rng, arrays["x"], arrays["y"])]


def _shuffle_dense(rng, x, y):
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} rows but y has {len(y)}")
    if rng is None:
        return x, y
    indices = np.arange(len(x))
    rng.shuffle(indices)
    return x[indices], y[indices]


def _cut(x, y, test_split: float):
    idx = int(len(x) * (1 - test_split))
    return Upstream(x[:idx], y[:idx], x[idx:], y[idx:])


def read_npz_arrays(load: DictConfig, raw_dir: Path, dataset: str) -> Upstream:
    """Plain npz (mnist, boston_housing): numeric arrays only, pickles refused."""
    path = raw_dir / load.files.data
    arrays = read_npz(path)
    for key, value in arrays.items():
        if value.dtype.hasobject:
            raise DataError(f"{dataset}: {path.name}[{key}] holds Python objects; format npz "
                            "expects numbers. Fix: use format sequences_npz for ragged data")
    try:
        parts = _split_arrays(load, arrays, path, dataset, _shuffle_dense)
    except DataError as err:
        raise DataError(f"{dataset}: {path.name}: {err}") from None
    if load.test_split is None:
        (x_train, y_train), (x_test, y_test) = parts
        return Upstream(x_train, y_train, x_test, y_test)
    return _cut(*parts[0], load.test_split)


def read_idx(load: DictConfig, raw_dir: Path, dataset: str) -> Upstream:
    """LeCun's gzipped idx files (fashion_mnist), one file per array role."""
    roles = ("x_train", "y_train", "x_test", "y_test")
    missing = [r for r in roles if r not in load.files]
    if missing:
        raise DataError(f"params.yaml: datasets.{dataset}.load.files: idx_gz needs the roles "
                        f"{', '.join(roles)}; missing {', '.join(missing)}")
    arrays = {role: read_idx_gz(raw_dir / load.files[role]) for role in roles}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{dataset}: {load.files['x_' + split]} holds {len(x)} images but "
                            f"{load.files['y_' + split]} holds {len(y)} labels")
    if load.test_split is not None:
        raise DataError(f"params.yaml: datasets.{dataset}.load.test_split: idx files carry their "
                        "own test split. Fix: set it to null")
    parts = _split_arrays(load, arrays, raw_dir, dataset, _shuffle_dense)
    (x_train, y_train), (x_test, y_test) = parts
    return Upstream(x_train, y_train, x_test, y_test)


def _shuffle_sequences(rng, x, y):
    if len(x) != len(y):
        raise DataError(f"x has {len(x)} sequences but y has {len(y)} labels")
    seqs = Sequences.from_lists(x)
    if rng is None:
        return seqs, np.asarray(y)
    indices = np.arange(len(x))
    rng.shuffle(indices)
    return seqs.take(indices), np.asarray(y)[indices]


def _mark_and_offset(seqs: Sequences, start_char: int | None, index_from: int) -> Sequences:
    values = seqs.values + index_from if index_from else seqs.values.copy()
    if start_char is None:
        return Sequences(values, seqs.offsets)
    values = np.insert(values, seqs.offsets[:-1], start_char)
    return Sequences(values, seqs.offsets + np.arange(len(seqs.offsets)))


def _drop_long(seqs: Sequences, y: np.ndarray, maxlen: int | None):
    if not maxlen:
        return seqs, y
    keep = np.flatnonzero(seqs.lengths < maxlen)  # keras keeps len(x) < maxlen
    return seqs.take(keep), y[keep]


def _limit_vocabulary(seqs: Sequences, load: DictConfig, num_words: int) -> Sequences:
    outside = (seqs.values < load.skip_top) | (seqs.values >= num_words)
    if load.oov_char is not None:
        return Sequences(np.where(outside, load.oov_char, seqs.values), seqs.offsets)
    row_of = np.repeat(np.arange(len(seqs)), seqs.lengths)
    kept = np.bincount(row_of[~outside], minlength=len(seqs))
    return Sequences(seqs.values[~outside], np.concatenate([[0], np.cumsum(kept)]))


def read_sequences(load: DictConfig, raw_dir: Path, dataset: str) -> Upstream:
    """Pickled npz of word-index lists (imdb, reuters), with Keras' text semantics."""
    path = raw_dir / load.files.data
    arrays = read_npz(path)  # object arrays go through the numpy-only unpickler
    try:
        parts = _split_arrays(load, arrays, path, dataset, _shuffle_sequences)
    except DataError as err:
        raise DataError(f"{dataset}: {path.name}: {err}") from None
    parts = [(_mark_and_offset(x, load.start_char, load.index_from), y) for x, y in parts]
    parts = [_drop_long(x, y, load.maxlen) for x, y in parts]
    if any(len(x) == 0 for x, _ in parts):
        raise ConfigError(key=f"datasets.{dataset}.load.maxlen",
                          problem=f"{load.maxlen} keeps no sequence of {dataset} (keras keeps "
                          "those shorter than maxlen)", expected="null or a larger maxlen",
                          fix="raise it, or set it to null")
    num_words = load.num_words or int(max(x.values.max() for x, _ in parts))
    parts = [(_limit_vocabulary(x, load, num_words), y) for x, y in parts]
    if load.test_split is None:
        (x_train, y_train), (x_test, y_test) = parts
        return Upstream(x_train, y_train, x_test, y_test)
    x, y = parts[0]
    idx = int(len(x) * (1 - load.test_split))
    return Upstream(x.take(np.arange(idx)), y[:idx], x.take(np.arange(idx, len(x))), y[idx:])


READERS: dict[str, Callable[[DictConfig, Path, str], Upstream]] = {
    "npz": read_npz_arrays,
    "idx_gz": read_idx,
    "sequences_npz": read_sequences,
}
