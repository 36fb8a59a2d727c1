"""params.yaml: it composes, and every kind of mistake fails early with the key named."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, project_params

from pipeline.config import compose, dataset_config, load_params, model_config
from pipeline.errors import ConfigError

DATASETS = {"mnist", "fashion_mnist", "imdb", "reuters", "boston_housing"}


def test_params_yaml_composes():
    params = load_params(ROOT / "params.yaml")
    assert set(params.datasets) == DATASETS
    assert {m.dataset for m in params.models.values()} == DATASETS


def test_every_model_config_builds(monkeypatch):
    pytest.importorskip("keras")
    from pipeline.models import build_model

    params = load_params(ROOT / "params.yaml")
    shapes = {"mnist": (28, 28), "fashion_mnist": (28, 28), "imdb": (10000,),
              "reuters": (10000,), "boston_housing": (13,)}
    for name, cfg in params.models.items():
        sparse = params.datasets[cfg.dataset].preprocess.kind == "multi_hot"
        model = build_model(name, cfg, shapes[cfg.dataset], sparse)
        assert model.output_shape[-1] == (len(params.datasets[cfg.dataset].classes or [0])
                                          if params.datasets[cfg.dataset].task == "multiclass"
                                          else 1)


def broken(edit) -> dict:
    raw = copy.deepcopy(project_params())
    edit(raw)
    return raw


def _set(path: str, value):
    def edit(raw):
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value
    return edit


CASES = [
    ("typo in a key", _set("datasets.imdb.load.num_wrds", 5000), "datasets.imdb.load.num_wrds"),
    ("unknown top-level key", _set("sed", 1), "sed"),
    ("wrong type", _set("datasets.imdb.load.num_words", "many"), "datasets.imdb.load.num_words"),
    ("negative split", _set("datasets.reuters.split.validation", -5),
     "datasets.reuters.split.validation"),
    ("fraction above 1", _set("datasets.mnist.split.validation", 1.5),
     "datasets.mnist.split.validation"),
    ("bad hash", _set("datasets.mnist.source.files.0.hash", "sha256:abc"),
     "datasets.mnist.source.files[0].hash"),
    ("role names a missing file", _set("datasets.mnist.load.files", {"data": "nope.npz"}),
     "datasets.mnist.load.files.data"),
    ("unknown task", _set("datasets.mnist.task", "ranking"), "datasets.mnist.task"),
    ("unknown format", _set("datasets.mnist.load.format", "csv"), "datasets.mnist.load.format"),
    ("unknown preprocess", _set("datasets.mnist.preprocess.kind", "pca"),
     "datasets.mnist.preprocess.kind"),
    ("negative retries", _set("download.retries", -1), "download.retries"),
    ("test split outside (0, 1)", _set("datasets.reuters.load.test_split", 1.2),
     "datasets.reuters.load.test_split"),
    ("model on unknown dataset", _set("models.imdb_dense.dataset", "imbd"),
     "models.imdb_dense.dataset"),
    ("zero epochs", _set("models.mnist_dense.epochs", 0), "models.mnist_dense.epochs"),
]


@pytest.mark.parametrize(("what", "edit", "key"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_fail_with_the_key_named(what, edit, key):
    with pytest.raises(ConfigError) as err:
        compose(broken(edit))
    message = str(err.value)
    assert message.startswith(f"params.yaml: {key}:"), message
    assert "Fix:" in message and "\n" not in message


def test_unknown_dataset_and_model_list_the_known_ones():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ConfigError, match=r"unknown dataset 'nosuch'.*imdb"):
        dataset_config(params, "nosuch")
    with pytest.raises(ConfigError, match=r"unknown model 'nosuch'.*imdb_dense"):
        model_config(params, "nosuch")


def test_stage_fails_on_bad_params_before_any_work(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(broken(_set("datasets.imdb.split.validation", -1))))
    data = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.prepare", "imdb", "--params", str(bad),
         "--data-dir", str(data)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ERROR params.yaml: datasets.imdb.split.validation:")
    assert "Traceback" not in result.stderr and not data.exists()


@pytest.mark.parametrize("stage", ["probe", "download", "prepare", "baseline", "train",
                                   "evaluate"])
def test_every_stage_has_help(stage):
    result = subprocess.run([sys.executable, "-m", f"pipeline.{stage}", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage:" in result.stdout
