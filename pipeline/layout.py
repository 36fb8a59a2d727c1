"""Where the pipeline's files live, and the small records it keeps beside them.

    data/<dataset>/raw/          download: the source files + source.json (provenance)
    data/<dataset>/prepared/     prepare: {train,val,test}.npz + manifest.json
    data/probe.json, check.json  check: reachable sources; the last settings that passed
    models/<model>/              train: model.keras, history/summary.json, run.json
    models/.pending/<model>/     a trained model not yet logged to MLflow (kept for a retry)
    results/<dataset>/data.json  prepare: the data card (source, rows) the report shows
    results/<dataset>/<model>/   evaluate (and baseline: results/<dataset>/baseline/)

Every name below is an entry name checked by pipeline/validate.py, so no path built
here leaves these folders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

DATA, MODELS, RESULTS = Path("data"), Path("models"), Path("results")
SOURCE_FILE, MANIFEST = "source.json", "manifest.json"
REAL_SOURCES = ("canonical", "mirror")  # source.json kinds of real data (else a stand-in)
PROBE_FILE, CHECK_FILE = DATA / "probe.json", DATA / "check.json"
RUN_FILE = "run.json"
MODEL_FILE, HISTORY_FILE, SUMMARY_FILE = "model.keras", "history.json", "summary.json"


def raw_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "raw"


def prepared_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "prepared"


def data_card(results: Path, dataset: str) -> Path:
    return Path(results) / dataset / "data.json"


def pending_dir(models: Path, model: str) -> Path:
    return Path(models) / ".pending" / model


def model_dir(models: Path, model: str) -> Path:
    return Path(models) / model


def write_training(folder: Path, history: dict, summary: dict) -> None:
    """A trained model's per-epoch history and summary, beside its model.keras."""
    from pipeline.files import write_json

    write_json(Path(folder) / HISTORY_FILE, history)
    write_json(Path(folder) / SUMMARY_FILE, summary)


def read_training(folder: Path) -> tuple[dict, dict]:
    """(history, summary) of a trained model's folder; empty where a file is missing."""
    def read(name: str) -> dict:
        path = Path(folder) / name
        return json.loads(path.read_text()) if path.is_file() else {}

    return read(HISTORY_FILE), read(SUMMARY_FILE)


def write_run(folder: Path, run_id: str, tracking_uri: str) -> None:
    """Which MLflow run holds what the folder's stage made, and in which store."""
    from pipeline.files import write_json

    write_json(Path(folder) / RUN_FILE, {"run_id": run_id, "tracking_uri": tracking_uri})


def read_run(folder: Path, fix: str) -> str:
    """The run id a stage recorded in `folder`; `fix` says how to make it again."""
    path = Path(folder) / RUN_FILE
    try:
        return str(json.loads(path.read_text())["run_id"])
    except (OSError, ValueError, KeyError, TypeError):
        raise DataError(f"{path} is missing or unreadable. Fix: {fix}") from None


def read_source(raw: Path) -> dict | None:
    """The provenance record of a raw folder, or None if there is none yet."""
    try:
        return json.loads((Path(raw) / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None


def stand_in_fingerprint(ds) -> str:
    """What a dataset's stand-in files depend on (recorded in their source.json): the
    download stage makes them again only when this changes."""
    import hashlib

    from omegaconf import OmegaConf

    relevant = {
        "fallback": ds.source.fallback,
        "files": [f.name for f in ds.source.files],
        "classes": ds.classes,
        "load": {k: ds.load[k] for k in ("format", "files", "test_split")},
    }
    blob = json.dumps(OmegaConf.to_container(OmegaConf.create(relevant)), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def raw_is_current(ds, source: dict | None) -> bool:
    """Whether the raw folder holds what `download` would put there now for these settings
    (else it is about to fetch or make new files)."""
    if source is None:
        return False
    if source.get("kind") in REAL_SOURCES:
        return source.get("files") == {f.name: f.hash for f in ds.source.files}
    return source.get("fingerprint") == stand_in_fingerprint(ds)


def read_manifest(prepared: Path) -> dict[str, Any]:
    path = Path(prepared) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} not found. Fix: run `dvc repro` to prepare the dataset")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise DataError(f"{path} is not valid JSON. Fix: run `dvc repro` to prepare the "
                        "dataset again") from None


def manifest_or_none(prepared: Path) -> dict[str, Any] | None:
    """The manifest if the dataset was prepared, else None (a fresh clone)."""
    try:
        return read_manifest(prepared)
    except DataError:
        return None
