"""Smoke test of the benchmark suite: it runs end to end on a tiny config (one tiny
dataset served on 127.0.0.1, one epoch, one repeat) and its table holds real numbers.

The figures mean nothing here; the real run is `python -m benchmarks` (README).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.net import serve_all
from helpers.params import tiny_params
from helpers.paths import ROOT


@pytest.mark.slow  # ~5 min: a real dvc repro, the books' scripts, 2 sweeps, edits, tiny data
def test_suite_runs_on_a_tiny_config(file_server, upstream_files, tmp_path):
    serve_all(file_server, upstream_files)
    params = tiny_params(file_server.base_url, upstream_files, tmp_path / "cache")
    params["baseline"].update(cv_folds=2, n_jobs=1)  # no worker processes to start
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "KERAS_PIPELINE_CACHE")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    out = tmp_path / "results"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--params", str(params_file),
         "--datasets", "mnist", "--repeats", "1", "--epochs", "1", "--noop-repeats", "1",
         "--import-repeats", "0", "--throughput-epochs", "1", "--throughput-repeats", "1",
         "--sweep-trials", "2", "--sweep-epochs", "1",
         "--workdir", str(tmp_path / "work"), "--out-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr

    (report,) = out.glob("*.json")
    data = json.loads(report.read_text())
    assert data["errors"] == []
    assert data["header"]["sources"] == {"mnist": {"kind": "canonical",
                                                   "detail": data["header"]["sources"]["mnist"]
                                                   ["detail"]}}
    groups = {row["row"] for row in data["rows"]}
    assert groups == {"1 accuracy", "2 time", "3 memory", "4 throughput", "5 sweeps"}
    for row in data["rows"]:
        assert isinstance(row["ratio"], float) and math.isfinite(row["ratio"]), row
        assert row["ratio"] > 0, row
    measures = " ".join(row["measure"] for row in data["rows"])
    assert "mnist_dense" in measures and "SGD baseline" in measures
    assert "no-op `dvc repro`" in measures and "rerun after" in measures
    assert "edit one model" in measures and "bare 2-stage DVC project" in measures

    (table,) = out.glob("*.md")
    text = table.read_text()
    assert "| row | measure | pipeline | books / bare |" in text
    assert text in result.stdout  # printed and written: the same table


def _runs(pipe: list[float], books: list[float]) -> list[dict]:
    key = "boston_housing/boston_housing_dense"
    return [{"seed": 42 + i, "pipeline_metrics": {key: {"test_mae": p, "epochs": 130}},
             "books_metrics": {key: {"test_mae": b, "epochs": 80}}}
            for i, (p, b) in enumerate(zip(pipe, books, strict=True))]


def test_the_accuracy_row_pairs_each_seed_and_reports_the_paired_difference():
    from types import SimpleNamespace

    from benchmarks.render import render
    from benchmarks.rows import accuracy

    runs = _runs([2.4, 2.3, 2.5, 9.9], [2.6, 2.7, 2.6, 9.9])
    asked = []
    suite = SimpleNamespace(
        args=SimpleNamespace(seeds=3),
        ws=SimpleNamespace(params={"datasets": {"boston_housing": {"task": "regression"}}}),
        paired_runs=lambda count: asked.append(count) or runs[:count])
    (row,) = accuracy.build(suite)
    assert asked == [3]  # --seeds paired runs, not --repeats
    assert row.pipeline == "2.4000 ± 0.1000" and row.reference == "2.6333 ± 0.0577"
    assert row.values["seeds"] == [42, 43, 44]
    assert row.values["difference_mean"] == pytest.approx(-0.2333, abs=1e-4)
    assert row.values["difference_sd"] == pytest.approx(0.1528, abs=1e-4)  # of -.2, -.4, -.1
    assert "n=3 seeds; paired difference -0.2333 ± 0.1528" in row.measure
    header = {"when": "now", "machine": "m", "commit": "c", "repeats": 2, "seeds": 3,
              "command": "x", "sources": {}}
    text = render([row], header, {}, [])
    assert "## Accuracy per seed" in text and "| 43 | 2.3000 | 2.7000 | -0.4000 |" in text


def test_paired_runs_are_made_once_per_seed_and_shared_between_rows(monkeypatch):
    from types import SimpleNamespace

    from benchmarks.suite import Suite, parse_args

    args = parse_args([])
    assert args.seeds == 5 and args.repeats == 2
    seeds_set = []
    ws = SimpleNamespace(params={"seed": 42}, set=lambda key, value: seeds_set.append(value))
    suite = Suite(args, ws, {})
    made = []
    monkeypatch.setattr(suite, "_run_pair", lambda base, r, count: made.append(r) or
                        {"seed": base + r})
    assert [run["seed"] for run in suite.paired_runs()] == [42, 43]  # --repeats
    five = suite.paired_runs(args.seeds)
    assert [run["seed"] for run in five] == [42, 43, 44, 45, 46]
    assert made == [0, 1, 2, 3, 4]  # the first two not run again
    assert suite.paired_runs() == five[:2] and seeds_set[-1] == 42  # the params' seed back
    with pytest.raises(SystemExit):
        parse_args(["--seeds", "0"])
