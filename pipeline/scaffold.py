"""A fresh copy of this project to run in: its code, Hydra configs, pipeline files and ignore
files, a `params.yaml` of your own, and its own git repository and DVC cache.

The tests build tiny projects with it and the benchmark suite its workspace, so both run
exactly what a clone runs; a team can start a new project from it the same way:

    from pathlib import Path
    import yaml
    from pipeline.scaffold import scaffold
    scaffold(Path("../my-project"), yaml.safe_load(Path("params.yaml").read_text()))

It is not part of any DVC stage (no stage imports it).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from pipeline.dvcfiles import pipeline_files

ROOT = Path(__file__).resolve().parents[1]
# The code, its configuration and the pipeline files (not their locks: a new project's own).
COPIED = ("pipeline", "conf", *pipeline_files(ROOT), ".gitignore", ".dvcignore")


def write_params(project: Path, params: dict) -> None:
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def scaffold(project: Path, params: dict, env: dict[str, str] | None = None,
             site_cache: Path | None = None, commit: bool = True) -> Path:
    """Create `project` (it must not exist) as a git + DVC repository with `params`.

    `site_cache`: DVC's site cache folder (default: DVC's own, shared by the user's repos);
    `commit`: commit everything, so `git status` shows exactly what a run leaves behind."""
    project.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, project / name)
    write_params(project, params)
    commands = [["git", "init", "-q"], ["dvc", "init", "-q"]]
    if site_cache is not None:
        commands.append(["dvc", "config", "core.site_cache_dir", str(site_cache)])
    if commit:
        commands += [["git", "add", "-A"], ["git", "commit", "-qm", "a new project"]]
    for command in commands:
        subprocess.run(command, cwd=project, env=env, check=True, capture_output=True,
                       timeout=120)
    return project
