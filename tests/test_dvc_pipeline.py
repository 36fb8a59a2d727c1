"""End to end: `dvc repro` of the data stages on a tiny config, in a throw-away project."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from conftest import ROOT, serve_all, tiny_params

DATA_STAGES = "prepare@*"  # with their upstream stages: probe and download@*


def make_project(tmp_path: Path, params: dict) -> tuple[Path, dict[str, str]]:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(ROOT / "pipeline", project / "pipeline",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "conf", project / "conf")
    shutil.copy(ROOT / "dvc.yaml", project / "dvc.yaml")
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_PIPELINE_CACHE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                ["dvc", "config", "core.site_cache_dir", str(tmp_path / "dvc-site")]):
        subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True, timeout=120)
    return project, env


def repro(project: Path, env: dict[str, str], *targets: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run(["dvc", "repro", "--glob", *(targets or (DATA_STAGES,))],
                            cwd=project, env=env, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output, elapsed


def ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def kinds(project: Path) -> dict[str, str]:
    return {p.parent.parent.name: json.loads(p.read_text())["kind"]
            for p in (project / "data").glob("*/raw/source.json")}


DATASETS = {"mnist", "fashion_mnist", "imdb", "reuters", "boston_housing"}


def test_repro_builds_then_reruns_only_what_changed(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    params = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    project, env = make_project(tmp_path, params)

    output, _ = repro(project, env)
    assert ran(output) == {"probe"} | {f"{s}@{d}" for s in ("download", "prepare")
                                       for d in DATASETS}
    assert kinds(project) == dict.fromkeys(DATASETS, "canonical")
    for name in DATASETS:
        manifest = json.loads((project / "data" / name / "prepared" / "manifest.json")
                              .read_text())
        assert manifest["source"]["kind"] == "canonical"

    output, seconds = repro(project, env)
    print(f"no-op dvc repro of the data stages: {seconds:.2f}s")
    assert ran(output) == {"probe"}, output  # the ~0.1 s network probe always runs
    assert output.count("didn't change, skipping") == 2 * len(DATASETS)

    params["datasets"]["imdb"]["load"]["num_words"] = 500
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output, _ = repro(project, env)
    assert ran(output) == {"probe", "prepare@imdb"}, output
    manifest = json.loads((project / "data/imdb/prepared/manifest.json").read_text())
    assert manifest["splits"]["train"]["x_shape"] == [70, 500]


def test_offline_then_network_back_without_cleanup(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    for path in file_server.files:
        file_server.mode[path] = "404"  # "no network" for every source
    params = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    project, env = make_project(tmp_path, params)

    output, _ = repro(project, env)
    assert "GENERATED stand-in data" in output and "BUNDLED data" in output
    assert kinds(project) == {"mnist": "bundled", "fashion_mnist": "generated",
                              "imdb": "generated", "reuters": "generated",
                              "boston_housing": "bundled"}
    output, _ = repro(project, env)
    assert ran(output) == {"probe"}, output  # still offline: nothing else runs

    file_server.mode.clear()  # the network is back
    output, _ = repro(project, env)
    assert {f"download@{d}" for d in DATASETS} <= ran(output)
    assert {f"prepare@{d}" for d in DATASETS} <= ran(output)
    assert kinds(project) == dict.fromkeys(DATASETS, "canonical")

    repro(project, env)  # the probe flips back once
    output, _ = repro(project, env)
    assert ran(output) == {"probe"}, output


def test_stages_iterate_over_params_not_hard_coded_names():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["download"]["foreach"] == "${datasets}"
    assert stages["prepare"]["foreach"] == "${datasets}"
    assert not any(name in (ROOT / "dvc.yaml").read_text() for name in DATASETS)


def test_full_pipeline_is_tracked_and_reproducible(file_server, upstream_files, tmp_path):
    """dvc repro of every stage for two datasets, then the MLflow store is checked;
    `dvc repro -f` of training gives identical metrics."""
    import mlflow

    serve_all(file_server, upstream_files)
    params = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    keep = {"imdb": "imdb_dense", "boston_housing": "boston_housing_dense"}
    params["datasets"] = {k: v for k, v in params["datasets"].items() if k in keep}
    params["models"] = {m: params["models"][m] for m in keep.values()}
    params["models"]["imdb_dense"]["epochs"] = 3
    params["models"]["boston_housing_dense"].update(epochs=3, kfold={"folds": 2, "epochs": 2})
    params["baseline"].update(cv_folds=2, n_jobs=1)
    project, env = make_project(tmp_path, params)

    output, seconds = repro(project, env, "*")
    print(f"full dvc repro of 2 tiny datasets: {seconds:.1f}s")
    assert {f"{s}@{d}" for s in ("baseline",) for d in keep} <= ran(output)
    assert {f"{s}@{m}" for s in ("train", "evaluate") for m in keep.values()} <= ran(output)

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    for dataset, model in keep.items():
        experiment = client.get_experiment_by_name(dataset)
        runs = client.search_runs([experiment.experiment_id])
        names = {r.info.run_name for r in runs}
        assert any("baseline" in n for n in names) and f"{dataset} {model} (keras)" in names
        keras_run = next(r for r in runs if "keras" in r.info.run_name)
        metric = "test_accuracy" if dataset == "imdb" else "test_mae"
        assert metric in keras_run.data.metrics
        assert any(metric == k for r in runs if "baseline" in r.info.run_name
                   for k in r.data.metrics)  # same names: comparable side by side
        assert len(client.get_metric_history(keras_run.info.run_id, "loss")) >= 1
        assert keras_run.data.tags["dvc_stage"] == f"train@{model}"
        assert keras_run.data.tags["data_source"] == "canonical"

    # One model's param: only that model's train/evaluate (and the report) rerun.
    params["models"]["boston_housing_dense"]["batch_size"] = 8
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output, _ = repro(project, env, "*")
    assert ran(output) == {"probe", "train@boston_housing_dense",
                           "evaluate@boston_housing_dense", "report"}, output

    metrics = project / "results" / "imdb" / "imdb_dense" / "metrics.json"
    before = metrics.read_text()
    output, _ = repro(project, env, "-f", "-s", "train@imdb_dense", "evaluate@imdb_dense")
    assert {"train@imdb_dense", "evaluate@imdb_dense"} <= ran(output)
    assert metrics.read_text() == before, "metrics changed between identical runs"
