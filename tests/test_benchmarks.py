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


@pytest.mark.slow  # ~4 min: a real dvc repro, the books' scripts and 2 sweeps, tiny data
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

    (table,) = out.glob("*.md")
    text = table.read_text()
    assert "| row | measure | pipeline | books / bare |" in text
    assert text in result.stdout  # printed and written: the same table
