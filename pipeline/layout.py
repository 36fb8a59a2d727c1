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
PROBE_FILE, CHECK_FILE = DATA / "probe.json", DATA / "check.json"
RUN_FILE = "run.json"


def raw_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "raw"


def prepared_dir(data: Path, dataset: str) -> Path:
    return Path(data) / dataset / "prepared"


def data_card(results: Path, dataset: str) -> Path:
    return Path(results) / dataset / "data.json"


def pending_dir(models: Path, model: str) -> Path:
    return Path(models) / ".pending" / model


def read_source(raw: Path) -> dict | None:
    """The provenance record of a raw folder, or None if there is none yet."""
    try:
        return json.loads((Path(raw) / SOURCE_FILE).read_text())
    except (OSError, ValueError):
        return None


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
