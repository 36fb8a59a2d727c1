"""End to end: `dvc repro` on a tiny config, in throw-away projects."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from helpers.net import serve_all
from helpers.params import keep_only, tiny_params
from helpers.paths import PIPELINE_FILES, ROOT, dvc_stages
from helpers.project import make_project, ran, repro

from pipeline.dvcfiles import stage_file
from pipeline.scaffold import write_params

DATASETS = {"mnist", "fashion_mnist", "imdb", "reuters", "boston_housing"}


def kinds(project: Path, key: str = "kind") -> dict[str, str]:
    return {p.parent.parent.name: json.loads(p.read_text())[key]
            for p in (project / "data").glob("*/raw/source.json")}


def data_params(file_server, upstream_files, cache: Path) -> dict:
    """tiny_params() without models: these tests run the data stages alone, and with no
    model `check` never asks Keras (a TensorFlow import after every change of the data)."""
    params = tiny_params(file_server.base_url, upstream_files, cache)
    return keep_only(params, DATASETS, [])


def test_offline_then_network_back_then_only_what_changed(file_server, upstream_files,
                                                          tmp_path):
    """No network: labelled stand-ins, and nothing reruns while it stays so. The network
    back: the next `dvc repro` fetches the real files, no cleanup needed. Then a no-op runs
    only `check`, and one dataset's setting reruns that dataset's stages alone."""
    serve_all(file_server, upstream_files)
    for path in file_server.files:
        file_server.mode[path] = "404"  # "no network" for every source
    params = data_params(file_server, upstream_files, tmp_path / "cache")
    project, env = make_project(tmp_path, params)
    every_data_stage = {"check"} | {f"{s}@{d}" for s in ("download", "prepare")
                                    for d in DATASETS}

    output, _ = repro(project, env)
    assert ran(output) == every_data_stage, output
    assert "stand-in (synthetic) data: NOT the real dataset" in output
    assert "mnist: data is a real subset (5,000 of 60,000 training images)" in output
    assert kinds(project) == {"mnist": "bundled", "fashion_mnist": "generated",
                              "imdb": "generated", "reuters": "generated",
                              "boston_housing": "bundled"}
    # The fixture params pin tiny files, so the bundled Boston table is not proven to be them.
    assert kinds(project, "label") == {
        "mnist": "real subset (5,000 of 60,000 training images)",
        "fashion_mnist": "stand-in (synthetic)", "imdb": "stand-in (synthetic)",
        "reuters": "stand-in (synthetic)", "boston_housing": "bundled (unverified)"}
    output, _ = repro(project, env)
    assert ran(output) == {"check"}, output  # still offline: nothing else runs

    file_server.mode.clear()  # the network is back
    output, _ = repro(project, env)
    assert ran(output) == every_data_stage, output
    assert kinds(project) == dict.fromkeys(DATASETS, "canonical")
    for name in DATASETS:
        manifest = json.loads((project / "data" / name / "prepared" / "manifest.json")
                              .read_text())
        assert manifest["source"]["kind"] == "canonical"
        card = json.loads((project / "results" / name / "data.json").read_text())
        assert card["source"]["kind"] == "canonical" and card["rows"]["test"] > 0

    repro(project, env)  # the probe flips back once
    output, seconds = repro(project, env)
    print(f"no-op dvc repro of the data stages: {seconds:.2f}s")
    assert ran(output) == {"check"}, output  # the ~0.3 s check always runs
    assert output.count("didn't change, skipping") == 2 * len(DATASETS)

    params["datasets"]["imdb"]["load"]["num_words"] = 500
    write_params(project, params)
    output, _ = repro(project, env)
    assert ran(output) == {"check", "download@imdb", "prepare@imdb"}, output
    assert "download imdb: canonical data in place" in output  # its settings changed: no fetch
    manifest = json.loads((project / "data/imdb/prepared/manifest.json").read_text())
    assert manifest["splits"]["train"]["x_shape"] == [70, 500]


def test_stages_iterate_over_params_not_hard_coded_names():
    stages = dvc_stages()
    for stage in ("download", "prepare", "baseline"):
        assert stages[stage]["foreach"] == "${datasets}"
    for stage in ("train", "evaluate"):
        assert stages[stage]["foreach"] == "${models}"
    texts = [(ROOT / name).read_text() for name in PIPELINE_FILES]
    assert not any(name in text for text in texts for name in DATASETS)


def test_each_stage_has_a_pipeline_file_named_after_it():
    """stages/<stage>/dvc.yaml defines `<stage>`, run by pipeline/<stage>.py, and nothing else
    (DVC rewrites a file's whole lock after each stage it runs); dvc.yaml holds the report."""
    for name in PIPELINE_FILES:
        stages = yaml.safe_load((ROOT / name).read_text())["stages"]
        assert len(stages) == 1, name
        (stage, body), = stages.items()
        assert stage_file(stage) == name
        command = (body.get("do") or body)["cmd"]
        assert command.split()[:3] == ["python", "-m", f"pipeline.{stage}"], name
        assert (ROOT / "pipeline" / f"{stage}.py").is_file()


def test_full_pipeline_is_tracked_and_reproducible(built_project, tmp_path):
    """dvc repro of every stage for two datasets, then the MLflow store is checked;
    a param edit reruns only its model; `dvc repro -f` of training gives identical metrics."""
    import mlflow

    keep = {"imdb": "imdb_dense", "boston_housing": "boston_housing_dense"}
    output = built_project.output
    print(f"full dvc repro of 2 tiny datasets: {built_project.seconds:.1f}s")
    assert {f"baseline@{d}" for d in keep} <= ran(output)
    assert {f"{s}@{m}" for s in ("train", "evaluate") for m in keep.values()} <= ran(output)

    client = mlflow.MlflowClient(f"sqlite:///{built_project.path / 'mlflow.db'}")
    for dataset, model in keep.items():
        experiment = client.get_experiment_by_name(dataset)
        runs = client.search_runs([experiment.experiment_id])
        names = {r.info.run_name for r in runs}
        assert any("baseline" in n for n in names) and f"{dataset} {model} (keras)" in names
        assert {r.info.status for r in runs} == {"FINISHED"}
        keras_run = next(r for r in runs if "keras" in r.info.run_name)
        metric = "test_accuracy" if dataset == "imdb" else "test_mae"
        assert metric in keras_run.data.metrics
        assert any(metric == k for r in runs if "baseline" in r.info.run_name
                   for k in r.data.metrics)  # same names: comparable side by side
        assert len(client.get_metric_history(keras_run.info.run_id, "loss")) >= 1
        assert keras_run.data.tags["dvc_stage"] == f"train@{model}"
        assert keras_run.data.tags["data_source"] == "mirror"

    # One model's param: only that model's train/evaluate (and the report) rerun.
    project = built_project.copy(tmp_path / "copy")
    env = built_project.env
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["boston_housing_dense"]["batch_size"] = 8
    write_params(project, params)
    output, _ = repro(project, env, "*")
    assert ran(output) == {"check", "train@boston_housing_dense",
                           "evaluate@boston_housing_dense", "report"}, output

    metrics = project / "results" / "imdb" / "imdb_dense" / "metrics.json"
    before = metrics.read_text()
    output, _ = repro(project, env, "-f", "-s", "train@imdb_dense", "evaluate@imdb_dense")
    assert {"train@imdb_dense", "evaluate@imdb_dense"} <= ran(output)
    assert metrics.read_text() == before, "metrics changed between identical runs"


def test_dvc_plots_draws_the_confusion_matrix_and_the_kfold_curve(built_project, tmp_path):
    """DVC's own templates draw what evaluate wrote: the `confusion` template from a
    classifier's test predictions, a linear plot of the K-fold model's mean curve."""
    from helpers.project import dvc

    project = built_project.copy(tmp_path / "copy")
    shown = json.loads(dvc(project, built_project.env, "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown["errors"]
    confusion = "results/imdb/imdb_dense/confusion.csv"
    kfold = "results/boston_housing/boston_housing_dense/kfold.csv"
    assert {confusion, kfold} <= set(shown["data"])
    rows = json.loads((project / "results/imdb/data.json").read_text())["rows"]["test"]
    matrix = json.loads((project / "results/imdb/imdb_dense/per_class.json").read_text())
    assert sum(map(sum, matrix["confusion_matrix"])) == rows
    spec = shown["data"][confusion][0]
    assert spec["type"] == "vega"
    drawn = json.dumps(spec["content"])
    assert '"actual"' in drawn and '"predicted"' in drawn and "xy_count" in drawn  # confusion
    assert len(spec["content"]["data"]["values"]) == rows
    curve = shown["data"][kfold][0]["content"]
    summary = json.loads((project / "models/boston_housing_dense/summary.json").read_text())
    assert len(curve["data"]["values"]) == len(summary["kfold_history"]["val_mae"][0])
    assert {"epoch", "mean"} <= set(curve["data"]["values"][0])
    # a model without such a plot: the header alone, drawn as nothing, and no error
    assert shown["data"]["results/imdb/imdb_dense/kfold.csv"] == []
    assert shown["data"]["results/boston_housing/boston_housing_dense/confusion.csv"] == []

    out = dvc(project, built_project.env, "plots", "show", "-o", str(tmp_path / "html"))
    assert "ERROR" not in out.stdout + out.stderr
    assert (tmp_path / "html" / "index.html").is_file()
