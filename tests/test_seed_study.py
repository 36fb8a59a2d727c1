"""`python -m pipeline.seed_study`: a model's test figure over N seeds, in MLflow and in
results/<dataset>/<model>/seeds.json, and the report's seed-spread column reading it."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys

import yaml
from helpers.project import ran, repro, snapshot

from pipeline.scaffold import write_params


def test_a_seed_study_measures_the_spread_and_the_report_shows_it(built_project, tmp_path):
    import mlflow

    project = built_project.copy(tmp_path / "copy")
    env = built_project.env
    seed = built_project.params["seed"]
    models_before = snapshot(project / "models")
    result = subprocess.run([sys.executable, "-m", "pipeline.seed_study", "imdb_dense",
                             "--seeds", "2"], cwd=project, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "seed_study imdb_dense" in line]
    assert len(lines) == 3, result.stderr  # one per seed, then the result
    assert "over 2 seeds" in lines[-1] and "seeds.json" in lines[-1]

    record = json.loads((project / "results/imdb/imdb_dense/seeds.json").read_text())
    assert record["seeds"] == [seed, seed + 1]
    assert record["metric"] == "test_accuracy" and len(record["values"]) == 2
    assert record["mean"] == statistics.fmean(record["values"])
    assert record["sd"] == statistics.stdev(record["values"])
    # The first seed is params.yaml's: the study retrains exactly what `dvc repro` trained.
    shown = json.loads((project / "results/imdb/imdb_dense/metrics.json").read_text())
    assert record["values"][0] == shown["test_accuracy"]
    key = json.loads((project / "models/imdb_dense/training_key.json").read_text())["key"]
    assert record["training_key"] == key
    assert snapshot(project / "models") == models_before  # models/ and its runs untouched

    client = mlflow.MlflowClient(f"sqlite:///{project / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb").experiment_id
    parent = client.get_run(record["run_id"])
    assert parent.info.status == "FINISHED"
    assert parent.info.run_name == "imdb_dense: seed study (2 seeds)"
    assert parent.data.metrics["test_accuracy_mean"] == record["mean"]
    assert parent.data.metrics["test_accuracy_sd"] == record["sd"]
    assert parent.data.params["seeds"] == f"{seed},{seed + 1}"
    children = client.search_runs([experiment],
                                  f"tags.`mlflow.parentRunId` = '{record['run_id']}'")
    assert sorted(r.info.run_name for r in children) == [f"seed {s}" for s in record["seeds"]]
    assert {r.info.status for r in children} == {"FINISHED"}
    by_seed = {int(r.data.params["seed"]): r for r in children}
    assert [by_seed[s].data.metrics["test_accuracy"] for s in record["seeds"]] == \
        record["values"]
    losses = [[m.value for m in client.get_metric_history(r.info.run_id, "loss")]
              for r in children]
    assert all(len(h) == 3 for h in losses)  # every epoch, live
    assert len({tuple(h) for h in losses}) == 2, "the seeds trained the same model"

    # The report reads the study: the spread beside imdb_dense, "not measured" elsewhere.
    output, _ = repro(project, env, "*")
    assert ran(output) == {"check", "report"}, output
    report = (project / "reports/report.md").read_text()
    imdb = report.split("## imdb")[1].split("## ")[0]
    assert f"± {record['sd']:.4f} (2 seeds: {record['mean']:.4f}," in imdb
    assert "book ~0.88: " in imdb
    boston = report.split("## boston_housing")[1]
    assert f"single seed ({seed}), not measured" in boston

    # Other settings: the spread stays, flagged as measured for other settings.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["models"]["imdb_dense"]["batch_size"] = 64
    write_params(project, params)
    repro(project, env, "*")
    imdb = (project / "reports/report.md").read_text().split("## imdb")[1].split("## ")[0]
    assert "measured for other settings" in imdb

