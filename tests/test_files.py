"""Nothing half-done survives: what a killed writer left beside an output is removed by the
next writer of that output (never a live process's), and git and DVC never see it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.paths import ROOT

from pipeline import files

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def leftover(final: Path, kind: str, pid: int, host: str = files.HOST, folder: bool = True):
    path = final.with_name(f".{final.name}.{kind}-{host}-{pid}-abc123")
    if folder:
        path.mkdir(parents=True)
        (path / "half.npz").write_bytes(b"half")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    return path


def test_atomic_dir_removes_what_a_killed_writer_left(tmp_path):
    final = tmp_path / "data" / "imdb" / "prepared"
    killed = leftover(final, "tmp", dead_pid())
    old = leftover(final, "old", dead_pid())
    running = leftover(final, "tmp", os.getppid())  # a live process: not ours to remove
    elsewhere = leftover(final, "tmp", 1, host="other_machine")  # can't tell: kept a day
    with files.atomic_dir(final) as tmp:
        (tmp / "train.npz").write_bytes(b"ok")
    assert not killed.exists() and not old.exists()
    assert running.exists() and elsewhere.exists()
    assert (final / "train.npz").read_bytes() == b"ok"
    os.utime(elsewhere, (0, 0))  # a day and more later
    with files.atomic_dir(final):
        pass
    assert not elsewhere.exists()


def test_an_exited_but_unreaped_writer_counts_as_gone(tmp_path):
    """A writer that died after its parent (DVC) was killed may stay a zombie forever when
    the container's init doesn't reap it: its temp files are still cleaned."""
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{zombie.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    try:
        assert files.process_gone(files.HOST, zombie.pid)
        left = leftover(tmp_path / "out", "tmp", zombie.pid)
        assert files.clean_stale(tmp_path / "out") == [left] and not left.exists()
    finally:
        zombie.wait()
    assert not files.process_gone(files.HOST, os.getppid())


def test_nothing_to_clean_beside_a_path_under_a_file(tmp_path):
    (tmp_path / "multirun.yaml").write_text("a sweep's record, not a folder")
    assert files.clean_stale(tmp_path / "multirun.yaml" / "scratch") == []
    assert files.clean_stale(tmp_path / "missing" / "scratch") == []


def test_atomic_file_and_download_parts_are_cleaned_too(tmp_path):
    target = tmp_path / "results" / "metrics.json"
    killed = leftover(target, "tmp", dead_pid(), folder=False)
    files.write_json(target, {"a": 1})
    assert not killed.exists()
    part = leftover(tmp_path / "cache" / "imdb" / "imdb.npz", "part", dead_pid(), folder=False)
    assert files.clean_stale(tmp_path / "cache" / "imdb" / "imdb.npz") == [part]


def test_a_failed_writer_leaves_nothing_and_keeps_the_previous_output(tmp_path):
    final = tmp_path / "models" / "m"
    with files.atomic_dir(final) as tmp:
        (tmp / "model.keras").write_bytes(b"v1")
    with pytest.raises(RuntimeError), files.atomic_dir(final) as tmp:
        (tmp / "model.keras").write_bytes(b"half")
        raise RuntimeError("killed")
    assert (final / "model.keras").read_bytes() == b"v1"
    assert sorted(p.name for p in final.parent.iterdir()) == ["m"]


@pytest.mark.parametrize("name", [
    "data/imdb/.prepared.tmp-host-123-abc", "models/.imdb_dense.tmp-h-1-x/model.keras",
    "models/.imdb_dense.old-h-1-0", "results/imdb/.metrics.json.tmp-h-1-x",
    "models/.pending/imdb_dense/model.keras",
])
def test_git_and_dvc_ignore_temp_files(tmp_path, name):
    """`git status` stays clean after a kill; the `models`/`results` folders the report
    depends on don't change because of one."""
    for ignore in (".gitignore", ".dvcignore"):
        (tmp_path / ignore).write_text((ROOT / ignore).read_text())
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    assert subprocess.run(["git", "check-ignore", "-q", name], cwd=tmp_path).returncode == 0
    from pathspec import GitIgnoreSpec

    spec = GitIgnoreSpec.from_lines((ROOT / ".dvcignore").read_text().splitlines())
    assert spec.match_file(name), f".dvcignore misses {name}"


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_a_stage_watches_the_process_that_started_it_through_any_shell(shell):
    """DVC runs a stage as `$SHELL -c <cmd>` with DVC_STAGE set for that command only:
    dash forks (the stage's parent is the shell), bash execs (its parent is DVC). Either
    way the stage watches the nearest ancestor without DVC_STAGE: here, this test."""
    if not Path(shell).exists():
        pytest.skip(f"{shell} is not installed")
    code = ("from pipeline.console import _starter; import os; "
            "print(_starter('DVC_STAGE'), _starter(None), os.getppid())")
    result = subprocess.run([shell, "-c", f"{sys.executable} -c \"{code}\"; true"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "DVC_STAGE": "train@x"})
    assert result.returncode == 0, result.stderr
    starter, direct, parent = map(int, result.stdout.split())
    assert starter == os.getpid()
    assert direct == parent  # without `beyond`: the direct parent, whatever it is
    assert parent != os.getpid()  # `; true` keeps the shell between: a real shell level
