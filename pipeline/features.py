"""Splits, feature transforms and data checks used by the `prepare` stage.

Transforms are chosen by `preprocess.kind`, never by dataset name:
- images: uint8 pixels -> float32 in [0, 1], shape kept (28x28); models flatten if they want;
- multi_hot: word sequences -> sparse CSR float32 over num_words columns (the books' dense
  float64 matrix is 2 GB per IMDB split; this is ~1% of that);
- standardize: (x - mean) / std with statistics of the training split only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from omegaconf import DictConfig

from pipeline.errors import ConfigError, DataError
from pipeline.formats import Sequences

Features = np.ndarray | sp.csr_matrix


class CheckFailed(DataError):
    """A prepared dataset failed a data check; the message names the dataset and the check."""


# --- validation split


def validation_indices(n: int, split: DictConfig, seed: int, dataset: str):
    """(train_rows, val_rows): the first rows (the books' way) or a seeded random subset.

    With shuffle, rows are drawn by scikit-learn's train_test_split, so seed 42 and a
    0.2 fraction give exactly the Fashion-MNIST chapter's split.
    """
    size = split.validation
    count = int(size) if size >= 1 else int(np.ceil(size * n))
    if count >= n:
        raise ConfigError(key=f"datasets.{dataset}.split.validation",
                          problem=f"{size} validation rows of {n}",
                          expected=f"fewer than {n}, so some rows are left to train on",
                          fix="use a smaller count or a fraction such as 0.2")
    if count == 0:
        return np.arange(n), np.arange(0)
    if not split.shuffle:
        return np.arange(count, n), np.arange(count)
    from sklearn.model_selection import train_test_split

    test_size = size if size < 1 else count
    train_rows, val_rows = train_test_split(np.arange(n), test_size=test_size, random_state=seed)
    return np.asarray(train_rows), np.asarray(val_rows)


def take_rows(x: np.ndarray | Sequences, rows: np.ndarray):
    return x.take(rows) if isinstance(x, Sequences) else x[rows]


# --- transforms


@dataclass
class Transform:
    """A fitted feature transform: what it learned from train goes into the manifest."""

    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)

    def fit(self, x_train) -> Transform:
        if self.kind == "standardize":
            x = np.asarray(x_train, dtype=np.float64)
            std = x.std(axis=0)
            self.fitted = {"mean": x.mean(axis=0).tolist(),
                           "std": np.where(std == 0, 1.0, std).tolist()}
        return self

    def apply(self, x) -> Features:
        if self.kind == "images":
            if np.asarray(x).dtype != np.uint8:
                raise DataError(f"images expect uint8 pixels, got {np.asarray(x).dtype}")
            return (np.asarray(x, dtype=np.float32) / np.float32(255.0)).astype(np.float32)
        if self.kind == "multi_hot":
            return multi_hot(x, self.options["num_words"])
        if self.kind == "standardize":
            mean = np.asarray(self.fitted["mean"])
            std = np.asarray(self.fitted["std"])
            return ((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32)
        raise DataError(f"unknown preprocess kind {self.kind}")


def multi_hot(seqs: Sequences, num_words: int) -> sp.csr_matrix:
    """Row i has 1.0 at every word index present in sequence i (the books' vectorize_sequences)."""
    if not isinstance(seqs, Sequences):
        raise DataError("multi_hot expects word-index sequences (format sequences_npz)")
    if len(seqs.values) and (seqs.values.min() < 0 or seqs.values.max() >= num_words):
        raise DataError(f"a word index falls outside [0, {num_words}); check load.num_words")
    ones = np.ones(len(seqs.values), dtype=np.float32)
    x = sp.csr_matrix((ones, seqs.values.astype(np.int32), seqs.offsets.astype(np.int64)),
                      shape=(len(seqs), num_words))
    x.sum_duplicates()  # sorts indices and merges repeats ...
    x.data[:] = 1.0  # ... which must stay 1, not become counts
    return x


def build_transform(ds: DictConfig) -> Transform:
    options = {"num_words": ds.load.num_words} if ds.preprocess.kind == "multi_hot" else {}
    return Transform(ds.preprocess.kind, options)


def labels(y: np.ndarray, task: str) -> np.ndarray:
    return np.asarray(y, dtype=np.float32 if task == "regression" else np.int64)


# --- checks


def _fail(dataset: str, check: str, problem: str, fix: str) -> CheckFailed:
    return CheckFailed(f"{dataset}: data check '{check}' failed: {problem}. Fix: {fix}")


def _values(x: Features) -> np.ndarray:
    return x.data if sp.issparse(x) else np.asarray(x)


def row_keys(x: Features) -> np.ndarray:
    """A 16-byte digest per row, to find identical rows across splits."""
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        rows = (x.indices[a:b].tobytes() + x.data[a:b].tobytes()
                for a, b in zip(x.indptr[:-1], x.indptr[1:], strict=True))
    else:
        x = np.asarray(x)
        flat = np.ascontiguousarray(x.reshape(len(x), int(np.prod(x.shape[1:]))))
        rows = (row.tobytes() for row in flat)
    return np.array([hashlib.blake2b(r, digest_size=16).digest() for r in rows], dtype="S16")


def check_splits(
    dataset: str, ds: DictConfig, splits: dict[str, tuple[Features, np.ndarray]]
) -> dict[str, Any]:
    """Run every data check; raise CheckFailed on the first failure, else return the results."""
    feature_shape = None
    for name, (x, y) in splits.items():
        if x.shape[0] != len(y):
            raise _fail(dataset, "shapes", f"{name} has {x.shape[0]} rows of x but {len(y)} "
                        "labels", "check the raw files; they disagree on the number of examples")
        if feature_shape is not None and x.shape[1:] != feature_shape:
            raise _fail(dataset, "shapes", f"{name} rows have shape {x.shape[1:]}, train has "
                        f"{feature_shape}", "all splits must have the same feature shape")
        feature_shape = feature_shape or x.shape[1:]
        if name != "val" and x.shape[0] == 0:
            raise _fail(dataset, "shapes", f"the {name} split is empty", "check the raw files")
        for part, values in (("x", _values(x)), ("y", np.asarray(y))):
            bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
            if bad:
                raise _fail(dataset, "finite", f"{name} {part} holds {bad} NaN/inf values",
                            "clean the source data or choose another preprocessing")
        if ds.task != "regression":
            n_classes = len(ds.classes)
            y = np.asarray(y)
            outside = sorted(set(y[(y < 0) | (y >= n_classes)].tolist()))
            if outside:
                raise _fail(dataset, "labels", f"{name} has labels {outside[:5]} outside "
                            f"[0, {n_classes})",
                            f"list all {int(np.max(y)) + 1} class names under datasets.{dataset}"
                            ".classes, or fix the labels")
    return {"overlap": _check_overlap(dataset, ds, splits)}


def _check_overlap(dataset: str, ds: DictConfig, splits) -> dict[str, Any]:
    """Rows of val/test that also occur in an earlier split: leakage beyond the tolerance fails."""
    keys = {name: row_keys(x) for name, (x, _) in splits.items()}
    result: dict[str, Any] = {"max_overlap": ds.checks.max_overlap}
    seen = keys["train"]
    for name in ("val", "test"):
        if len(keys[name]) == 0:
            result[name] = {"rows": 0, "fraction": 0.0}
            continue
        shared = int(np.isin(keys[name], seen).sum())
        fraction = shared / len(keys[name])
        result[name] = {"rows": shared, "fraction": round(fraction, 6)}
        if fraction > ds.checks.max_overlap:
            raise _fail(
                dataset, "leakage",
                f"{shared} of {len(keys[name])} {name} rows ({fraction:.2%}) are identical to rows "
                f"of earlier splits, above datasets.{dataset}.checks.max_overlap="
                f"{ds.checks.max_overlap}",
                "remove the duplicated rows from the source, or raise max_overlap if upstream "
                "really has that many duplicates",
            )
        seen = np.concatenate([seen, keys[name]])
    return result


def describe(x: Features, y: np.ndarray, ds: DictConfig) -> dict[str, Any]:
    """Manifest entry of one split: shape, dtype, ranges, class counts, bytes in memory."""
    values = _values(x)
    info: dict[str, Any] = {
        "rows": int(x.shape[0]),
        "x_shape": list(x.shape),
        "x_dtype": str(values.dtype),
        "sparse": bool(sp.issparse(x)),
        "x_bytes": int(x.data.nbytes + x.indices.nbytes + x.indptr.nbytes)
        if sp.issparse(x) else int(np.asarray(x).nbytes),
        "x_min": float(values.min()) if values.size else None,
        "x_max": float(values.max()) if values.size else None,
        "y_dtype": str(np.asarray(y).dtype),
    }
    if sp.issparse(x):
        info["nnz"] = int(x.nnz)
    if ds.task == "regression":
        info["y_stats"] = ({"min": float(np.min(y)), "max": float(np.max(y)),
                            "mean": float(np.mean(y))} if len(y) else {})
    else:
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(ds.classes))
        info["class_counts"] = dict(zip(ds.classes, counts.tolist(), strict=True))
    return info
