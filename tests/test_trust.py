"""`dvc repro` keeps its promises under bad input and kills: a bad edit stops in the `check`
stage, in one line naming its params.yaml line, before DVC removes any output; names can't
reach outside the project; a killed stage's leftovers go with the next run; a stop
signal sent again during the cleanup doesn't cut it short.

Each DVC test breaks a copy of the shared tiny project (tests/conftest.py: built_project)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.paths import ROOT
from helpers.project import dvc, ran, snapshot, stage_target

from pipeline.files import HOST, process_gone
from pipeline.params_file import locate
from pipeline.scaffold import write_params

OUTPUTS = ("data", "models", "results")


def state(project: Path) -> dict[str, dict[str, bytes]]:
    """Every output folder's files (DVC's own check.json and probe.json aside)."""
    found = {name: snapshot(project / name) for name in OUTPUTS}
    for name in ("check.json", "probe.json"):
        found["data"].pop(name, None)
    return found


def edited(project: Path, edit) -> dict:
    params = yaml.safe_load((project / "params.yaml").read_text())
    edit(params)
    write_params(project, params)
    return params


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR ")
            and not line.startswith("ERROR: ")]  # DVC's own summary line starts "ERROR:"


@pytest.fixture
def project(built_project, tmp_path):
    return built_project.copy(tmp_path / "copy"), built_project.env


BAD_EDITS = [
    ("key typo", lambda p: p["datasets"]["imdb"]["load"].update(num_wrds=5000),
     "datasets.imdb.load.num_wrds"),
    ("loss typo", lambda p: p["models"]["imdb_dense"].update(loss="binary_crossentropyy"),
     "models.imdb_dense.loss"),
    ("metric typo", lambda p: p["models"]["imdb_dense"].update(metrics=["accuracy", "acuracy"]),
     "models.imdb_dense.metrics[1]"),
    ("monitor never logged",
     lambda p: p["models"]["imdb_dense"]["early_stopping"].update(monitor="val_los"),
     "models.imdb_dense.early_stopping.monitor"),
    ("more folds than the data has",
     lambda p: p["models"]["boston_housing_dense"]["kfold"].update(folds=100),
     "models.boston_housing_dense.kfold.folds"),
    ("validation rows the data doesn't have",
     lambda p: p["datasets"]["imdb"]["split"].update(validation=5000),
     "datasets.imdb.split.validation"),
    # data settings only the data can judge: `check` builds the splits in memory first
    ("a maxlen no review is shorter than", lambda p: p["datasets"]["imdb"]["load"].update(
        maxlen=2), "datasets.imdb.load.maxlen"),
    ("a test split that leaves no training rows",
     lambda p: p["datasets"]["boston_housing"]["load"].update(test_split=0.99), None),
]


@pytest.mark.parametrize(("what", "edit", "key"), BAD_EDITS, ids=[c[0] for c in BAD_EDITS])
def test_a_bad_edit_stops_dvc_repro_before_anything_is_touched(project, what, edit, key):
    path, env = project
    before = state(path)
    edited(path, edit)
    line = locate((path / "params.yaml").read_text(), key) if key else None
    started = time.monotonic()
    result = dvc(path, env, "repro", check=False)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ran(output) == {"check"}, output
    [error] = error_lines(output)
    if key:
        assert error.startswith(f"ERROR params.yaml:{line}: {key}: "), error
    assert "Fix:" in error and "Traceback" not in output
    assert state(path) == before, "an output changed"
    print(f"{what}: stopped in {seconds:.1f}s")


def test_dvc_exp_run_with_a_bad_value_deletes_nothing(project):
    path, env = project
    before = state(path)
    result = dvc(path, env, "exp", "run", "-S", "models.imdb_dense.epochs=0", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and ran(output) == {"check"}, output
    [error] = error_lines(output)
    assert "models.imdb_dense.epochs: 0 is not a positive whole number" in error
    assert state(path) == before


def test_a_yaml_syntax_error_stops_dvc_repro_with_line_and_column(project):
    """DVC itself reads params.yaml first (dvc.yaml iterates over it): its message names
    the file, line and column; nothing runs."""
    path, env = project
    before = state(path)
    text = (path / "params.yaml").read_text()
    (path / "params.yaml").write_text(text.replace("seed: 42", "seed: [42", 1))
    result = dvc(path, env, "repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and not ran(output)
    assert "params.yaml" in output and re.search(r"line \d+, column \d+", output), output
    assert state(path) == before


@pytest.mark.parametrize("key", ["../../evil", "x; touch pwned", "$(touch pwned)"])
def test_a_dataset_key_cant_reach_outside_the_project(project, key, tmp_path):
    path, env = project
    outside = {p for p in tmp_path.rglob("*") if "copy/project" not in str(p)}

    def rename(params):
        params["datasets"][key] = params["datasets"].pop("imdb")
        params["models"]["imdb_dense"]["dataset"] = key

    edited(path, rename)
    result = dvc(path, env, "repro", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ran(output) <= {"check"}, output  # nothing but the check ran
    assert not list(tmp_path.rglob("pwned")) and not (path / "pwned").exists()
    assert {p for p in tmp_path.rglob("*") if "copy/project" not in str(p)} == outside
    assert not (path.parent.parent / "evil").exists()
    if ran(output):  # DVC accepted the paths; our check refused the name
        [error] = error_lines(output)
        assert "is not an entry name" in error


def test_a_killed_stage_leaves_nothing_that_the_next_run_keeps(project):
    """SIGKILL mid-training: the half-built folder is git-ignored and gone after the next
    `dvc repro`, which trains again from scratch and ends cleanly."""
    path, env = project
    params = edited(path, lambda p: p["models"]["imdb_dense"].update(
        epochs=400, early_stopping=None))
    process = subprocess.Popen([sys.executable, "-m", "pipeline.train", "imdb_dense"],
                               cwd=path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    pending = training_began(path, process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = list(pending.glob(".imdb_dense.tmp-*"))
    assert left
    status = subprocess.run(["git", "status", "--porcelain"], cwd=path, capture_output=True,
                            text=True).stdout
    assert ".tmp-" not in status and ".pending" not in status, status

    params["models"]["imdb_dense"].update(epochs=3)
    write_params(path, params)
    output = dvc(path, env, "repro", stage_target("train@imdb_dense")).stdout
    assert "train@imdb_dense" in ran(output)
    assert not any(p.exists() for p in left)
    assert not list(pending.glob("*")) and (path / "models" / "imdb_dense" / "run.json").is_file()


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_killed_dvc_takes_its_stage_with_it(project, shell):
    """`kill <dvc pid>` (SIGTERM to DVC alone, as a CI runner or a supervisor sends it): the
    stage it ran stops too, cleans up, and never finishes a training nobody records. DVC
    runs a stage through `$SHELL -c`: bash execs the command, dash (`/bin/sh`, DVC's choice
    where SHELL is unset) forks it, so the stage's parent is a shell that outlives DVC."""
    path, env = project
    edited(path, lambda p: p["models"]["imdb_dense"].update(epochs=400, early_stopping=None))
    process = subprocess.Popen(["dvc", "repro", stage_target("train@imdb_dense")], cwd=path,
                               env={**env, "SHELL": shell},
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    pending = training_began(path, process, seconds=180)
    stage = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
             and "-m pipeline.train imdb_dense" in _cmdline(p) and _cwd(p) == path.resolve()]
    assert stage
    process.send_signal(signal.SIGTERM)  # DVC only, not its process group
    process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while not all(process_gone(HOST, pid) for pid in stage):  # exited (a zombie counts)
        assert time.monotonic() < deadline, "the stage went on after DVC was killed"
        time.sleep(0.2)
    assert not list(pending.glob(".imdb_dense.tmp-*")) and not (
        path / "models" / "imdb_dense").exists()
    assert last_run_status(path, "train@imdb_dense") == "KILLED"


def test_more_stop_signals_during_the_cleanup_dont_cut_it_short(project):
    """A stop often comes more than once (DVC killed: the parent-death signal, then the
    stage's own watcher; a group kill; Ctrl-C pressed again). Only the first stops the
    training: a second raise in the cleanup left the run RUNNING, the half-built folder
    behind, and a SQLite transaction half-written that held the stage up ~20-40 s at exit."""
    path, env = project
    edited(path, lambda p: p["models"]["imdb_dense"].update(epochs=400, early_stopping=None))
    log = path.parent / "train.log"  # a file, not a pipe: nothing waits for a reader
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.train", "imdb_dense"],
                                   cwd=path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    pending = training_began(path, process)
    for _ in range(30):  # 0.3 s of SIGTERMs: the first stops it, the rest hit its cleanup
        if process.poll() is not None:
            break
        process.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    process.wait(timeout=60)
    output = log.read_text()
    assert "ERROR stopped by SIGTERM; nothing half-done was kept" in output, output
    assert "Traceback" not in output and "Exception ignored" not in output, output
    assert not list(pending.glob("*"))
    assert last_run_status(path, "train@imdb_dense") == "KILLED"


STOPS = """
import os, signal, time
from pipeline import console

def stop():  # a SIGTERM, handled at the next line as a real one is
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.05)

console.handle_sigterm()
steps = []
try:
    try:
        with console.held_stop():
            stop()
            steps.append("write")  # a held block runs to its end
        steps.append("next epoch")  # never: the stop is raised as the block ends
    finally:
        stop()
        stop()
        steps.append("cleanup")  # more stops are only noted
except console.Interrupted as stopped:
    steps.append(f"stopped by {stopped}")
print(steps)
"""


def test_a_stop_waits_for_a_held_store_write_and_is_raised_once():
    result = subprocess.run([sys.executable, "-c", STOPS], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "['write', 'cleanup', 'stopped by SIGTERM']", (
        result.stdout + result.stderr)


def training_began(path: Path, process: subprocess.Popen, seconds: float = 120) -> Path:
    """Wait for imdb_dense's half-built folder to hold a first checkpoint; its parent."""
    pending = path / "models" / ".pending"
    deadline = time.monotonic() + seconds
    while not list(pending.glob(".imdb_dense.tmp-*/checkpoint.keras")):
        assert process.poll() is None and time.monotonic() < deadline, "training never began"
        time.sleep(0.2)
    return pending


def last_run_status(path: Path, step: str) -> str:
    """How the newest MLflow run of `step` in the project's store ended."""
    import mlflow

    from pipeline.tracking import STEP_TAG

    client = mlflow.MlflowClient(f"sqlite:///{path / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    [run] = client.search_runs(experiments, f"tags.`{STEP_TAG}` = '{step}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return run.info.status


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cwd(proc: Path) -> Path | None:
    """Where the process runs: this test's stage, not another test's (pytest-xdist)."""
    try:
        return (proc / "cwd").resolve(strict=True)
    except OSError:
        return None
