"""Where the stages are defined: one DVC pipeline file per stage, stages/<stage>/dvc.yaml.

DVC rewrites a pipeline file's whole lock file after every stage it runs (a YAML round
trip: ~3 s for one 137 KB dvc.lock holding all 31 stages, measured), so each stage kind
has a file and a lock of its own (17-34 KB). The project's dvc.yaml holds the last stage,
`report`: `dvc repro` without a target runs it and everything it depends on, in every file.

A stage outside dvc.yaml is addressed with its file, `stages/train/dvc.yaml:train@imdb_dense`;
`target` writes that for messages that tell users what to run.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_FILE = "dvc.yaml"  # the project's own: the report, the end of the pipeline
STAGES_DIR = "stages"


def stage_file(stage: str) -> str:
    """The pipeline file that defines `stage` (`report`: the project's dvc.yaml)."""
    return f"{STAGES_DIR}/{stage}/{PROJECT_FILE}" if stage != "report" else PROJECT_FILE


def target(stage: str, item: str | None = None) -> str:
    """What `dvc repro` takes for `stage` (of one `foreach` item, or all of them)."""
    name = f"{stage}@{item}" if item else stage
    path = stage_file(stage)
    return name if path == PROJECT_FILE else f"{path}:{name}"


def pipeline_files(root: Path) -> list[str]:
    """Every pipeline file of the project at `root`, relative to it: dvc.yaml first."""
    found = sorted(p.relative_to(root).as_posix() for p in root.glob(f"{STAGES_DIR}/*/dvc.yaml"))
    return [PROJECT_FILE, *found]
