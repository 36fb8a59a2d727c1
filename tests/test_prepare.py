"""The prepare stage on downloaded fixture files: splits, manifest, safety, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers.net import closed_port_url, serve_all
from helpers.params import project_params, tiny_params
from helpers.upstream import sha256

from pipeline.arrays import load_split
from pipeline.config import compose
from pipeline.download import download
from pipeline.errors import DataError
from pipeline.features import CheckFailed
from pipeline.prepare import prepare

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


@pytest.fixture
def downloaded(file_server, upstream_files, tmp_path, monkeypatch):
    """All five datasets downloaded from the local server into tmp_path/data."""
    monkeypatch.delenv("KERAS_PIPELINE_CACHE", raising=False)
    serve_all(file_server, upstream_files)
    raw = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    params = compose(raw)
    data = tmp_path / "data"
    for name in params.datasets:
        download(name, params, data / name / "raw")
    return params, data


def test_every_dataset_prepares_with_a_complete_manifest(downloaded):
    params, data = downloaded
    expected_rows = {  # fixture sizes (helpers/upstream.py) and the tiny params' splits
        "mnist": (108, 12, 40), "fashion_mnist": (80, 20, 30), "imdb": (70, 10, 60),
        "reuters": (110, 10, 30), "boston_housing": (40, 0, 10),
    }
    for name, rows in expected_rows.items():
        manifest = prepare(name, params, data)
        assert manifest["source"]["kind"] == "canonical"
        assert manifest["source"]["label"] == "real"
        assert tuple(manifest["splits"][s]["rows"] for s in ("train", "val", "test")) == rows
        on_disk = json.loads((data / name / "prepared" / "manifest.json").read_text())
        assert on_disk == manifest
        for _split, info in manifest["splits"].items():
            path = data / name / "prepared" / info["file"]
            assert sha256(path.read_bytes()) == info["sha256"]
            x, y = load_split(path)
            assert x.shape[0] == len(y) == info["rows"]
        if params.datasets[name].task != "regression":
            counts = manifest["splits"]["train"]["class_counts"]
            assert list(counts) == list(params.datasets[name].classes)
            assert sum(counts.values()) == rows[0]


def test_images_are_unit_float32_28x28(downloaded):
    params, data = downloaded
    prepare("fashion_mnist", params, data)
    x, y = load_split(data / "fashion_mnist" / "prepared" / "train.npz")
    assert x.dtype == np.float32 and x.shape[1:] == (28, 28)
    assert x.min() >= 0.0 and x.max() <= 1.0 and y.dtype == np.int64


def test_imdb_is_stored_sparse(downloaded):
    params, data = downloaded
    manifest = prepare("imdb", params, data)
    path = data / "imdb" / "prepared" / "test.npz"
    with np.load(path) as f:
        assert {"x_data", "x_indices", "x_indptr", "x_shape"} <= set(f.files)
        assert "x" not in f.files
    x, _ = load_split(path)
    assert x.format == "csr" and x.shape == (60, 10000) and x.dtype == np.float32
    assert manifest["splits"]["test"]["sparse"] is True
    assert set(np.unique(x.data)) == {1.0}


def test_boston_is_standardized_with_training_statistics(downloaded):
    params, data = downloaded
    manifest = prepare("boston_housing", params, data)
    x_train, _ = load_split(data / "boston_housing" / "prepared" / "train.npz")
    np.testing.assert_allclose(x_train.mean(axis=0), 0, atol=1e-5)
    assert len(manifest["preprocess"]["mean"]) == 13
    x_val, _ = load_split(data / "boston_housing" / "prepared" / "val.npz")
    assert x_val.shape == (0, 13)


def test_tampered_raw_file_is_refused_before_loading(downloaded, monkeypatch):
    params, data = downloaded
    raw = data / "reuters" / "raw" / "reuters.npz"
    raw.write_bytes(raw.read_bytes()[:-10] + b"0123456789")
    loaded = []
    monkeypatch.setattr("pipeline.formats.read_npz", lambda *a: loaded.append(a))
    with pytest.raises(DataError, match="checksum mismatch"):
        prepare("reuters", params, data)
    assert loaded == []  # nothing was unpickled
    assert not (data / "reuters" / "prepared").exists()


def test_failed_check_keeps_previous_output_and_writes_nothing(downloaded):
    params, data = downloaded
    prepare("mnist", params, data)
    before = {p.name: p.read_bytes() for p in (data / "mnist" / "prepared").iterdir()}
    params.datasets.mnist.classes = ["0", "1", "2"]  # labels 3..9 are now out of range
    with pytest.raises(CheckFailed, match="check 'labels'"):
        prepare("mnist", params, data)
    after = {p.name: p.read_bytes() for p in (data / "mnist" / "prepared").iterdir()}
    assert after == before
    assert not [p for p in (data / "mnist").iterdir() if ".tmp-" in p.name]


def test_prepare_is_deterministic(downloaded):
    params, data = downloaded
    first = prepare("reuters", params, data)
    files = {p.name: p.read_bytes() for p in (data / "reuters" / "prepared").iterdir()}
    second = prepare("reuters", params, data)
    assert first == second
    assert {p.name: p.read_bytes() for p in (data / "reuters" / "prepared").iterdir()} == files


def test_bundled_boston_proven_identical_is_called_real_with_its_proof(
        tmp_path, monkeypatch, caplog):
    """Offline with the project's own params: the bundled table's arrays are the canonical
    file's, so every record says real and keeps the proof, and no stage cries NOT REAL."""
    monkeypatch.delenv("KERAS_PIPELINE_CACHE", raising=False)
    raw = project_params()
    raw["download"].update({"cache_dir": str(tmp_path / "cache"), "retries": 0, "timeout": 5})
    raw["datasets"]["boston_housing"]["source"]["files"][0]["url"] = closed_port_url()
    params = compose(raw)
    data, results = tmp_path / "data", tmp_path / "results"
    caplog.set_level("INFO")

    download("boston_housing", params, data / "boston_housing" / "raw")
    manifest = prepare("boston_housing", params, data, results)

    source = manifest["source"]
    assert source["kind"] == "bundled" and source["label"] == "real (identical to canonical)"
    assert source["proof"]["matched"] is True
    assert source["proof"]["identical_to"] == {
        "file": "boston_housing.npz",
        "hash": "sha256:f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"}
    assert len(source["proof"]["arrays_sha256"]) == 64
    card = json.loads((results / "boston_housing" / "data.json").read_text())
    assert card["source"] == source
    assert tuple(manifest["splits"][s]["rows"] for s in ("train", "val", "test")) == (404, 0, 102)
    assert "NOT" not in caplog.text and "!!!!" not in caplog.text
    assert "(data: real (identical to canonical))" in caplog.text


def test_missing_download_is_a_clear_error(tmp_path):
    params = compose(project_params())
    with pytest.raises(DataError, match=r"download@imdb"):
        prepare("imdb", params, tmp_path / "data")


def test_a_bad_file_that_matches_its_pinned_hash_gets_a_fix_that_works(
        file_server, upstream_files, tmp_path, monkeypatch):
    """A file the readers refuse (here a pickle that would run a command) but whose hash is
    the one pinned in params.yaml: downloading it again gives the same bytes, so the fix
    is to point the source at the genuine file, not to "delete it and rerun"."""
    import io
    import os
    import pickle
    import zipfile

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|O", "fortran_order": False, "shape": (1,)})
    payload = io.BytesIO()
    with zipfile.ZipFile(payload, "w") as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{name}.npy", header.getvalue() + pickle.dumps(Exploit()))
    files = {**upstream_files, "imdb": {**upstream_files["imdb"],
                                        "imdb.npz": payload.getvalue()}}
    monkeypatch.delenv("KERAS_PIPELINE_CACHE", raising=False)
    serve_all(file_server, files)
    params = compose(tiny_params(file_server.base_url, files, tmp_path / "cache"))
    data = tmp_path / "data"
    download("imdb", params, data / "imdb" / "raw")
    with pytest.raises(DataError) as err:
        prepare("imdb", params, data)
    message = str(err.value)
    assert "refusing to load" in message and "same bytes" in message
    assert "Fix: make datasets.imdb.source.files (url and hash) name the genuine" in message
    assert "delete" not in message and not (tmp_path / "pwned").exists()
