"""Shared fixtures: upstream-format files made here, served over HTTP on 127.0.0.1.

Fixture files are written with numpy's own `np.savez` and Python's `gzip`, not
with the pipeline's writers, so a bug in those can't hide itself. The server
can misbehave on purpose (404, a connection dropped mid-file, wrong bytes) so
the real download code runs against every failure the issue lists.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import http.server
import io
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# --- upstream-format fixture files (independent of pipeline/files.py) ---------------


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


# --- an HTTP server on 127.0.0.1 that can misbehave on purpose ----------------------


@dataclass
class FileServer:
    """Serves `files[path] = bytes`; `mode[path]` in ok | 404 | drop | drop_once | wrong | 500."""

    base_url: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    mode: dict[str, str] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


def _handler(server: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _serve(self, body: bool) -> None:
            path = self.path.lstrip("/")
            server.hits[path] = server.hits.get(path, 0) + 1
            mode = server.mode.get(path, "ok")
            if path not in server.files or mode == "404":
                self.send_error(404)
                return
            if mode == "500":
                self.send_error(500)
                return
            data = server.files[path]
            if mode == "wrong":
                data = data[::-1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not body:
                return
            dropping = mode == "drop" or (mode == "drop_once" and server.hits[path] == 1)
            if dropping:  # half the promised bytes, then hang up
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve(body=True)

        def do_HEAD(self) -> None:
            self._serve(body=False)

    return Handler


@pytest.fixture
def file_server():
    state = FileServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: 'no network' without touching the internet."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- params.yaml for tiny datasets ---------------------------------------------------


def project_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_params(
    base_url: str, files: dict[str, dict[str, bytes]], cache_dir: Path, **download: Any
) -> dict[str, Any]:
    """The project's params.yaml with every source pointed at `base_url` and tiny splits."""
    params = copy.deepcopy(project_params())
    params["download"].update({"cache_dir": str(cache_dir), "retries": 1, "timeout": 5})
    params["download"].update(download)
    for name, ds in params["datasets"].items():
        for spec in ds["source"]["files"]:
            spec["url"] = f"{base_url}/{name}/{spec['name']}"
            spec["hash"] = sha256(files[name][spec["name"]])
        split = ds["split"]
        if isinstance(split["validation"], int) and split["validation"] >= 1:
            split["validation"] = 10
        ds["checks"]["max_overlap"] = 0.05
    # Small stand-ins, so fallback tests stay fast.
    fallbacks = params["datasets"]
    fallbacks["fashion_mnist"]["source"]["fallback"]["options"].update(
        {"train_size": 300, "test_size": 100})
    fallbacks["imdb"]["source"]["fallback"]["options"].update(
        {"train_size": 200, "test_size": 100})
    fallbacks["reuters"]["source"]["fallback"]["options"].update({"size": 300})
    return params


def mirrored_params(root: Path) -> dict[str, Any]:
    """tiny_params() served from a local mirror folder (no server, 'no network' otherwise)."""
    files = make_upstream_files()
    mirror = root / "mirror"
    for name, named in files.items():
        (mirror / name).mkdir(parents=True)
        for fname, data in named.items():
            (mirror / name / fname).write_bytes(data)
    return tiny_params(closed_port_url(), files, root / "cache", mirrors=[str(mirror)])


def serve_all(server: FileServer, files: dict[str, dict[str, bytes]]) -> None:
    for name, named in files.items():
        for fname, data in named.items():
            server.files[f"{name}/{fname}"] = data


@pytest.fixture
def upstream_files() -> dict[str, dict[str, bytes]]:
    return make_upstream_files()


@pytest.fixture
def shared_datasets() -> Path:
    """The real upstream files in ../shared/datasets; tests using it skip where it's absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared/datasets is not present on this machine")
    return SHARED


# --- a tiny project after a full `dvc repro`, shared by the DVC tests (read-only) ---------


@dataclass
class BuiltProject:
    """`dvc repro` of every stage for imdb and boston_housing on tiny data, once per session.
    Tests that change anything work on `copy()`; `audit` holds the files each stage read."""

    path: Path
    env: dict[str, str]
    params: dict[str, Any]
    audit: Path
    output: str
    seconds: float

    def copy(self, dest: Path) -> Path:
        from helpers.project import copy_project

        return copy_project(self.path, dest)


def pipeline_params(root: Path) -> dict[str, Any]:
    """The project's params for imdb and boston_housing, tiny data from a local mirror."""
    params = mirrored_params(root)
    keep = {"imdb": "imdb_dense", "boston_housing": "boston_housing_dense"}
    params["datasets"] = {k: v for k, v in params["datasets"].items() if k in keep}
    params["models"] = {m: params["models"][m] for m in keep.values()}
    params["models"]["imdb_dense"]["epochs"] = 3
    params["models"]["boston_housing_dense"].update(epochs=3, kfold={"folds": 2, "epochs": 2})
    params["baseline"].update(cv_folds=2, n_jobs=1)
    return params


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> BuiltProject:
    from helpers.project import make_project, repro

    root = tmp_path_factory.mktemp("built")
    audit = root / "audit"
    audit.mkdir()
    params = pipeline_params(root)
    path, env = make_project(root, params, audit_dir=audit)
    output, seconds = repro(path, env, "*")
    return BuiltProject(path, env, params, audit, output, seconds)
