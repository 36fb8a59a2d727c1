"""Files in the exact upstream formats, made here: tiny datasets for all five sources.

They are written with numpy's own `np.savez` and Python's `gzip`, not with the pipeline's
writers (pipeline/files.py), so a bug in those can't hide itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io

import numpy as np


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def idx_gz_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return gzip.compress(header + array.tobytes())


def object_array(rows: list[list[int]]) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    out[:] = rows
    return out


def sha256(data: bytes) -> str:
    """The hash of `data` in params.yaml's form (`sha256:<hex>`)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tiny_images(rng: np.random.Generator, n: int, classes: int = 10) -> tuple[np.ndarray, ...]:
    y = (np.arange(n) % classes).astype(np.uint8)
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return x, y


def tiny_sequences(rng: np.random.Generator, n: int, classes: int) -> tuple[np.ndarray, ...]:
    y = (np.arange(n) % classes).astype(np.int64)
    rows = [rng.integers(1, 60, size=rng.integers(3, 12)).tolist() for _ in range(n)]
    return object_array(rows), y


def make_upstream_files(seed: int = 0) -> dict[str, dict[str, bytes]]:
    """{dataset: {file name: bytes}} for all five datasets, tiny, in the upstream formats."""
    rng = np.random.default_rng(seed)
    x_tr, y_tr = tiny_images(rng, 120)
    x_te, y_te = tiny_images(rng, 40)
    f_tr, fy_tr = tiny_images(rng, 100)
    f_te, fy_te = tiny_images(rng, 30)
    i_tr, iy_tr = tiny_sequences(rng, 80, 2)
    i_te, iy_te = tiny_sequences(rng, 60, 2)
    r_x, r_y = tiny_sequences(rng, 150, 46)
    b_x = rng.normal(size=(50, 13)) * 10 + 20
    b_y = rng.uniform(5, 50, size=50)
    return {
        "mnist": {"mnist.npz": npz_bytes(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)},
        "fashion_mnist": {
            "train-labels-idx1-ubyte.gz": idx_gz_bytes(fy_tr),
            "train-images-idx3-ubyte.gz": idx_gz_bytes(f_tr),
            "t10k-labels-idx1-ubyte.gz": idx_gz_bytes(fy_te),
            "t10k-images-idx3-ubyte.gz": idx_gz_bytes(f_te),
        },
        "imdb": {
            "imdb.npz": npz_bytes(x_train=i_tr, y_train=iy_tr, x_test=i_te, y_test=iy_te),
            "imdb_word_index.json": b'{"the": 1, "and": 2}',
        },
        "reuters": {
            "reuters.npz": npz_bytes(x=r_x, y=r_y),
            "reuters_word_index.json": b'{"said": 1, "the": 2}',
        },
        "boston_housing": {"boston_housing.npz": npz_bytes(x=b_x, y=b_y)},
    }

