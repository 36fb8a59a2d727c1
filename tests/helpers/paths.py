"""Where things are: the repository root (its params.yaml, dvc.yaml, pipeline/, conf/), and
the pipeline's stages and lock entries across its pipeline files."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipeline.dvcfiles import pipeline_files

ROOT = Path(__file__).resolve().parents[2]
# dvc.yaml (the report) and stages/<stage>/dvc.yaml, each with its lock (pipeline/dvcfiles.py).
PIPELINE_FILES = tuple(pipeline_files(ROOT))


def dvc_stages(root: Path = ROOT) -> dict[str, dict]:
    """Every stage of the pipeline files, by name."""
    stages: dict[str, dict] = {}
    for name in PIPELINE_FILES:
        stages.update(yaml.safe_load((root / name).read_text())["stages"])
    return stages


def locked_stages(root: Path = ROOT) -> dict[str, dict]:
    """Every stage's entry in the lock files beside them (absent files: none)."""
    stages: dict[str, dict] = {}
    for name in PIPELINE_FILES:
        lock = (root / name).with_suffix(".lock")
        if lock.exists():
            stages.update((yaml.safe_load(lock.read_text()) or {}).get("stages", {}))
    return stages
