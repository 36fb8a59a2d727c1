"""Where the pipeline's files live, and the small records it keeps beside them.

    data/<dataset>/raw/          download: the source files + source.json (provenance)
    data/<dataset>/prepared/     prepare: {train,val,test}.npz + manifest.json
    data/probe.json, check.json  check: reachable sources; the last settings that passed
    models/<model>/              train: model.keras, history/summary.json, run.json
    models/.pending/<model>/     a trained model not yet logged to MLflow (kept for a retry)
    results/<dataset>/data.json  prepare: the data card (source, rows) the report shows
    results/<dataset>/<model>/   evaluate (and baseline: results/<dataset>/baseline/)
    results/<dataset>/<model>/seeds.json   seed_study: the model's spread over N seeds

Every name below is an entry name checked by pipeline/validate.py, so no path built
here leaves these folders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import DataError

DATA, MODELS, RESULTS = Path("data"), Path("models"), Path("results")
SOURCE_FILE, MANIFEST = "source.json", "manifest.json"
UPSTREAM_KINDS = ("canonical", "mirror")  # source.json kinds: the pinned upstream files
PROBE_FILE, CHECK_FILE = DATA / "probe.json", DATA / "check.json"
RUN_FILE = "run.json"
KEY_FILE = "training_key.json"  # models/<model>/: what decided the training (train.py)
BASELINE = "baseline"  # results/<dataset>/baseline/: the SGD baseline's results
SEEDS_FILE = "seeds.json"
MODEL_FILE, HISTORY_FILE, SUMMARY_FILE = "model.keras", "history.json", "summary.json"


# --- what the data is: the one set of words for stage output, source.json, the manifest,
# MLflow's `data_label` tag and the report. Only synthetic data is called NOT real; data
# is called real only when it is the pinned file or its arrays are proven equal to it.
REAL = "real"  # canonical or mirror: the exact upstream file(s) params.yaml pins
IDENTICAL = "real (identical to canonical)"  # bundled, arrays digest = the canonical file's
UNVERIFIED = "bundled (unverified)"  # bundled, and nothing proves what it is
SYNTHETIC = "stand-in (synthetic)"  # generated: NOT the real dataset


def subset_label(rows: int, of_rows: int, unit: str = "rows") -> str:
    """A bundled real subset, with its size: `real subset (5,000 of 60,000 training images)`."""
    return f"real subset ({rows:,} of {of_rows:,} {unit})"


def data_label(source: Mapping[str, Any]) -> str:
    """The words for a source record's data. Records written before labels existed (and
    the report's placeholder for a dataset not prepared yet) get their kind's cautious words."""
    if source.get("label"):
        return str(source["label"])
    kind = source.get("kind")
    if kind in UPSTREAM_KINDS:
        return REAL
    return {"generated": SYNTHETIC, "bundled": UNVERIFIED}.get(str(kind), f"unknown ({kind})")


def data_tier(source: Mapping[str, Any]) -> str:
    """How loudly to say what the data is: `real` (nothing to say), `subset` (one line),
    `unverified` (not proven real: a box), `synthetic` (a box saying NOT real)."""
    label = data_label(source)
    if label in (REAL, IDENTICAL):
        return "real"
    if label.startswith("real subset ("):
        return "subset"
    return "synthetic" if label == SYNTHETIC else "unverified"


def raw_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "raw"


def prepared_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "prepared"


def data_card(results: Path, dataset: str) -> Path:
    return Path(results) / dataset / "data.json"


def results_dir(results: Path, dataset: str, model_or_baseline: str) -> Path:
    return Path(results) / dataset / model_or_baseline


def seeds_file(results: Path, dataset: str, model: str) -> Path:
    """A seed study's record (pipeline/seed_study.py); not a DVC output: it is made on
    request, committed with the results, and read by the report."""
    return results_dir(results, dataset, model) / SEEDS_FILE


def pending_dir(models: Path, model: str) -> Path:
    return Path(models) / ".pending" / model


def model_dir(models: Path, model: str) -> Path:
    return Path(models) / model


def write_training(folder: Path, history: dict, summary: dict) -> None:
    """A trained model's per-epoch history and summary, beside its model.keras."""
    from pipeline.files import write_json

    write_json(Path(folder) / HISTORY_FILE, history)
    write_json(Path(folder) / SUMMARY_FILE, summary)


def read_record(path: Path) -> dict[str, Any]:
    """A JSON record the pipeline wrote, or {} where it is missing (not made yet)."""
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else {}


def read_training(folder: Path) -> tuple[dict, dict]:
    """(history, summary) of a trained model's folder; empty where a file is missing."""
    return read_record(Path(folder) / HISTORY_FILE), read_record(Path(folder) / SUMMARY_FILE)


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
    if source.get("kind") in UPSTREAM_KINDS:
        return source.get("files") == {f.name: f.hash for f in ds.source.files}
    # a stand-in recorded before labels existed is made again, to record what it is
    return "label" in source and source.get("fingerprint") == stand_in_fingerprint(ds)


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
