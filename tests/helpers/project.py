"""Throw-away DVC projects: the pipeline's code and dvc.yaml with a tiny params.yaml, `dvc
repro` in them, and what it ran."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.params import pipeline_params
from pipeline.dvcfiles import target
from pipeline.scaffold import scaffold

AUDIT = Path(__file__).resolve().parent / "audit"  # sitecustomize: files each stage opens
GIT_USER = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@t"}


def project_env(audit_dir: Path | None = None) -> dict[str, str]:
    """This venv's tools first on PATH, no inherited cache or tracking overrides."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "KERAS_PIPELINE_CACHE", "MLFLOW_TRACKING_URI")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["DVC_NO_ANALYTICS"] = "1"
    env.update(GIT_USER)
    if audit_dir is not None:
        env["PYTHONPATH"] = str(AUDIT)
        env["PIPELINE_AUDIT_DIR"] = str(audit_dir)
    return env


def make_project(tmp_path: Path, params: dict, audit_dir: Path | None = None
                 ) -> tuple[Path, dict[str, str]]:
    """tmp_path/project: git + DVC, this repository's pipeline/, conf/ and dvc.yaml, and
    `params`; committed, so `git status` shows what a run leaves behind."""
    env = project_env(audit_dir)
    project = scaffold(tmp_path / "project", params, env, site_cache=tmp_path / "dvc-site")
    return project, env


def dvc(project: Path, env: dict[str, str], *args: str, check: bool = True,
        timeout: float = 900) -> subprocess.CompletedProcess:
    result = subprocess.run(["dvc", *args], cwd=project, env=env, capture_output=True,
                            text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def stage_target(name: str) -> str:
    """What DVC takes for a stage named as `dvc repro` prints it: 'train@imdb_dense' is
    'stages/train/dvc.yaml:train@imdb_dense' (pipeline/dvcfiles.py). Options pass as they
    are, and so does '*': the stages of dvc.yaml (the report), with all they depend on."""
    if name.startswith("-") or ":" in name or name == "*":
        return name
    stage, _, item = name.partition("@")
    return target(stage, item or None)


def repro(project: Path, env: dict[str, str], *targets: str) -> tuple[str, float]:
    """`dvc repro --glob <targets>` (stage names, e.g. 'train@imdb_dense'; default: the data
    stages); (output, seconds)."""
    started = time.perf_counter()
    wanted = [stage_target(t) for t in targets] or [stage_target("prepare@*")]
    result = dvc(project, env, "repro", "--glob", *wanted)
    return result.stdout + result.stderr, time.perf_counter() - started


def ran(output: str) -> set[str]:
    """The stages `dvc repro` ran, by name ('stages/check/dvc.yaml:check' is 'check')."""
    return {name.rsplit(":", 1)[-1] for name in re.findall(r"Running stage '([^']+)'", output)}


def copy_project(project: Path, dest: Path) -> Path:
    """A copy of a built project (git, DVC cache, data, mlflow.db) to break things in."""
    shutil.copytree(project.parent, dest, symlinks=True)
    return dest / "project"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@dataclass
class BuiltProject:
    """`dvc repro` of every stage for imdb and boston_housing on tiny data, once per session.
    Tests that change anything work on `copy()`, run with `env` (no audit hook: a copy's
    runs never mix with the build's); `audit` holds the files each stage of the build read."""

    path: Path
    env: dict[str, str]
    params: dict[str, Any]
    audit: Path
    output: str
    seconds: float

    def copy(self, dest: Path) -> Path:
        return copy_project(self.path, dest)

    def record(self) -> dict[str, Any]:
        """What another pytest-xdist worker needs to use it (helpers/shared.py)."""
        return {"path": str(self.path), "params": self.params, "audit": str(self.audit),
                "output": self.output, "seconds": self.seconds}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> BuiltProject:
        return cls(Path(record["path"]), project_env(), record["params"],
                   Path(record["audit"]), record["output"], record["seconds"])


def build_project(root: Path) -> BuiltProject:
    """root/project: every stage of pipeline_params() run by `dvc repro`, audited."""
    audit = root / "audit"
    audit.mkdir()
    params = pipeline_params(root)
    path, env = make_project(root, params, audit_dir=audit)
    output, seconds = repro(path, env, "*")
    return BuiltProject(path, project_env(), params, audit, output, seconds)
