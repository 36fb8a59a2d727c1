"""Teams share results instead of recomputing them, end to end on this machine: a local-folder
DVC remote, clone A (the session's built project, results committed) pushes, clone B (a
`git clone` of A in a fresh folder) pulls, reruns nothing, predicts and reviews a change; a
remote that isn't there and a push cut off midway fail in one line and lose nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.project import dvc, project_env, ran, snapshot, stage_target

from pipeline import layout

# Loaded into every Python process of a push (PYTHONPATH): each file DVC opens for writing in
# the remote folder takes 0.2 s more, a slow network, so the push can be cut midway for real.
SLOW_REMOTE = '''import os, sys, time
_remote = os.environ["SLOW_REMOTE_DIR"]
def _hook(event, args):
    if event == "open" and isinstance(args[0], (str, os.PathLike)):
        mode, flags = args[1] if len(args) > 1 else "r", args[2] if len(args) > 2 else 0
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
        if writes and os.fspath(args[0]).startswith(_remote):
            time.sleep(0.2)
sys.addaudithook(_hook)
'''


def command(project: Path, env: dict[str, str], *args: str,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m <args>` in the project (its own copy of pipeline/)."""
    return subprocess.run([sys.executable, "-m", *args], cwd=project, env=env,
                          capture_output=True, text=True, timeout=timeout)


def git(project: Path, env: dict[str, str], *args: str) -> str:
    return subprocess.run(["git", *args], cwd=project, env=env, check=True,
                          capture_output=True, text=True).stdout


def one_error_line(stderr: str) -> str:
    """The single ERROR line a failed command ends with (no traceback, no DVC noise)."""
    lines = stderr.strip().splitlines()
    assert [ln for ln in lines if ln.startswith("ERROR")] == lines[-1:], stderr
    assert "Traceback" not in stderr, stderr
    return lines[-1]


def remote_files(remote: Path) -> set[str]:
    return {str(p.relative_to(remote)) for p in remote.rglob("*")
            if p.is_file() and not p.name.endswith(".tmp")}  # not a copy cut off midway


@pytest.fixture
def clone_a(built_project, tmp_path) -> tuple[Path, Path, dict[str, str]]:
    """Clone A: the built project with its results committed and the team's remote set."""
    env = project_env()
    a = built_project.copy(tmp_path / "a")
    remote = tmp_path / "remote"
    remote.mkdir()
    git(a, env, "add", "-A")
    git(a, env, "commit", "-qm", "results of dvc repro")
    dvc(a, env, "remote", "add", "-d", "team", str(remote))
    git(a, env, "commit", "-qam", "the team's DVC remote")
    return a, remote, env


def test_a_pushes_b_pulls_reruns_nothing_predicts_and_reviews(clone_a, tmp_path):
    a, remote, env = clone_a
    pushed = command(a, env, "pipeline.share", "push")
    assert pushed.returncode == 0, pushed.stderr
    assert re.search(r"share: push DVC remote 'team' \(.*\): \d+ files pushed", pushed.stderr)
    assert any(remote.glob("runs/*/*/*")), "the run-cache reached the remote"

    started = time.perf_counter()
    b = tmp_path / "b"
    git(tmp_path, env, "clone", "-q", str(a), str(b))
    pulled = command(b, env, "pipeline.share", "pull")
    assert pulled.returncode == 0, pulled.stderr
    pull_done = time.perf_counter()
    output = dvc(b, env, "repro").stdout
    repro_done = time.perf_counter()
    assert ran(output) == {"check"}, output  # trains nothing: the check always runs
    assert git(b, env, "status", "--porcelain") == "", "after `dvc repro`, B is its commit"
    reviews = tmp_path / "reviews.json"
    reviews.write_text("[[1, 14, 22, 16, 43], [1, 5, 9]]")
    predicted = command(b, env, "pipeline.predict", "imdb", str(reviews))
    seconds = time.perf_counter() - started
    print(f"clone B: git clone to a working predict: {seconds:.1f}s (clone and pull "
          f"{pull_done - started:.1f}s, dvc repro {repro_done - pull_done:.1f}s, predict "
          f"{seconds - (repro_done - started):.1f}s)")
    assert predicted.returncode == 0, predicted.stderr
    assert re.fullmatch(r"0: \w+ \(class \d, p=[0-9.]+\)\n1: \w+ \(class \d, p=[0-9.]+\)\n",
                        predicted.stdout), predicted.stdout
    # B's store has no run of A's: predict says whose model answered and where its run is.
    run_a = json.loads((a / "models/imdb_dense/run.json").read_text())
    assert ("has no champion of imdb, so the model files here decide, by the registry's rule: "
            "models/imdb_dense/model.keras (val_accuracy=") in predicted.stderr
    assert (f"its MLflow run {run_a['run_id']} was logged to {run_a['tracking_uri']}, not to "
            "this one") in predicted.stderr

    def metrics(project: Path) -> dict:
        return json.loads(dvc(project, env, "metrics", "show", "--json").stdout)

    assert metrics(b) == metrics(a)
    assert (b / "reports/report.md").read_text() == (a / "reports/report.md").read_text()

    # A change in B, reviewed against B's HEAD (A's results): one page, DVC's diffs.
    params = yaml.safe_load((b / "params.yaml").read_text())
    assert params["baseline"]["cv_folds"] == 2
    params["baseline"]["cv_folds"] = 3
    (b / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = dvc(b, env, "repro", stage_target("baseline@imdb")).stdout
    assert ran(output) == {"check", "baseline@imdb"}, output
    reviewed = command(b, env, "pipeline.review", "HEAD")
    assert reviewed.returncode == 0, reviewed.stderr
    page = reviewed.stdout
    assert page == (b / "reports/review.md").read_text() + "\n"
    assert "| params.yaml: baseline.cv_folds | 2 | 3 |" in page
    assert re.search(r"\| results/imdb/baseline/metrics.json \| cv_accuracy \| [0-9.]+ \| "
                     r"[0-9.]+ \| -?[0-9.]+ \|", page), page
    assert "results/boston_housing" not in page.split("## Metrics")[1].split("## Plots")[0]
    for dataset in ("imdb", "boston_housing"):
        label = layout.data_label(json.loads(
            (b / "results" / dataset / "data.json").read_text())["source"])
        assert f"| {dataset} | {label} | {label} |" in page
    html = (b / "reports/review.html").read_text()
    assert "<h1>Review: workspace against HEAD</h1>" in html
    assert "<td>params.yaml: baseline.cv_folds</td><td>2</td><td>3</td>" in html


def test_push_cut_midway_loses_nothing_and_a_rerun_completes(clone_a, tmp_path):
    a, remote, env = clone_a
    kept = {folder: snapshot(a / folder) for folder in (".dvc/cache", "data", "models",
                                                         "results", "reports")}
    hook = tmp_path / "slow"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SLOW_REMOTE)
    slow = {**env, "PYTHONPATH": str(hook), "SLOW_REMOTE_DIR": str(remote)}
    share = subprocess.Popen([sys.executable, "-m", "pipeline.share", "push"], cwd=a, env=slow,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(remote_files(remote / "files")) < 3 and share.poll() is None:  # after the runs
        assert time.monotonic() < deadline, "no file reached the remote"
        time.sleep(0.05)
    [dvc_pid] = [int(pid) for task in Path(f"/proc/{share.pid}/task").iterdir()
                 for pid in (task / "children").read_text().split()]
    os.kill(dvc_pid, signal.SIGKILL)  # the transfer dies midway
    _, stderr = share.communicate(timeout=60)
    assert share.returncode == 130
    line = one_error_line(stderr)
    assert line == (f"ERROR push to DVC remote 'team' ({remote}) was cut off (dvc was killed "
                    "by SIGKILL): what reached the remote stays there and the local DVC cache "
                    "and workspace are untouched. Fix: rerun `python -m pipeline.share push`: "
                    "it transfers only what is missing")
    reached = remote_files(remote)
    assert len(remote_files(remote / "files")) >= 3, "the cut came after files reached it"
    for folder, files in kept.items():
        assert snapshot(a / folder) == files, f"{folder} changed"
    assert git(a, env, "status", "--porcelain") == ""

    again = command(a, env, "pipeline.share", "push")
    assert again.returncode == 0, again.stderr
    sent = int(re.search(r"(\d+) files pushed", again.stderr).group(1))
    # only what was missing, and the run-cache's few entries (which DVC always sends again)
    assert sent < len(remote_files(remote)), "the rerun sent only what was missing"
    assert reached < remote_files(remote)
    assert json.loads(dvc(a, env, "status", "--cloud", "--json").stdout) == {}  # in sync


def test_a_remote_that_isnt_there_or_lacks_the_files_fails_in_one_line(clone_a, tmp_path):
    a, remote, env = clone_a
    gone = tmp_path / "not-mounted"
    dvc(a, env, "remote", "add", "-f", "-d", "team", str(gone))
    for action in ("push", "pull"):
        failed = command(a, env, "pipeline.share", action)
        assert failed.returncode == 1
        assert one_error_line(failed.stderr) == (
            f"ERROR DVC remote 'team' ({gone}) can't be reached: no such folder (not mounted?). "
            f"Fix: mount the share or create the folder (`mkdir -p {gone}`), or point the "
            "remote at it: `dvc remote modify team url <folder>`")
    assert not gone.exists()

    dvc(a, env, "remote", "remove", "team")
    failed = command(a, env, "pipeline.share", "push")
    assert one_error_line(failed.stderr).startswith(
        "ERROR no DVC remote is set, so there is nowhere to share data, models and the "
        "run-cache. Fix: `dvc remote add -d team /mnt/team/dvc`")
    failed = command(a, env, "pipeline.share", "push", "--remote", "elsewhere")
    assert one_error_line(failed.stderr) == (
        "ERROR DVC remote 'elsewhere' is not configured (configured: none). Fix: `dvc remote "
        "add elsewhere <url>`, or pick one of those")

    # A clone whose remote exists but never received the files: DVC's failure, in one line.
    c = tmp_path / "c"
    git(tmp_path, env, "clone", "-q", str(a), str(c))  # its committed remote: `remote`
    failed = command(c, env, "pipeline.share", "pull")
    assert failed.returncode == 1
    line = one_error_line(failed.stderr)
    assert line.startswith(f"ERROR pull from DVC remote 'team' ({remote}) failed: "), line
    assert line.endswith("Nothing local was lost. Fix: whoever ran those stages runs `python -m "
                         "pipeline.share push`; or rebuild here with `dvc repro`"), line
