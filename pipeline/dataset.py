"""A dataset's prepared splits, built in memory from its verified raw files: what `prepare`
writes, and what `check` builds without writing when a data setting changed, so a setting
the data can't satisfy (a `maxlen` no review is shorter than, more validation rows than
there are, fewer class names than labels) stops `dvc repro` before DVC removes anything.

1. verify every raw file's checksum (before anything is unpickled),
2. load them exactly as keras.datasets does (pipeline/formats.py),
3. carve validation rows from train (the upstream test split stays untouched),
4. fit the feature transform on train only and apply it to every split,
5. run the data checks (pipeline/features.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.dvcfiles import target
from pipeline.errors import BadFile, DataError
from pipeline.facts import dataset_settings
from pipeline.features import (
    Features,
    Transform,
    build_transform,
    check_splits,
    describe,
    labels,
    take_rows,
    validation_indices,
)
from pipeline.files import verify_file
from pipeline.formats import load_upstream
from pipeline.layout import UPSTREAM_KINDS, data_label, read_source


@dataclass
class Built:
    """The splits of one dataset and the manifest that describes them (without file hashes:
    those belong to the files `prepare` writes)."""

    splits: dict[str, tuple[Features, Any]]
    transform: Transform
    manifest: dict[str, Any]


def verify_raw(name: str, ds: DictConfig, raw: Path, source: dict) -> None:
    """Every raw file must match its pinned hash (real data) or its recorded one (stand-ins)."""
    for spec in ds.source.files:
        if source["kind"] in UPSTREAM_KINDS:
            expected = spec.hash
        else:
            expected = source.get("files", {}).get(spec.name)
            if expected is None:
                raise DataError(f"{name}: {spec.name} is not in {raw}/source.json. Fix: "
                                f"run `dvc repro {target('download', name)}`")
        verify_file(raw / spec.name, expected, f"{name}: raw file")


def refetch_advice(name: str, source: dict) -> str:
    """Why deleting the file and downloading it again would or wouldn't help, and the fix."""
    if source["kind"] in UPSTREAM_KINDS:
        return ("its checksum is the one pinned in params.yaml, so fetching it again gives these "
                f"same bytes. Fix: make datasets.{name}.source.files (url and hash) name the "
                "genuine upstream file")
    return (f"it is a {source['kind']} stand-in made here. Fix: delete data/{name}/raw and run "
            "`dvc repro` to make it again")


def read_raw_source(name: str, raw: Path) -> dict:
    source = read_source(raw)
    if source is None:
        raise DataError(f"{name}: {raw}/source.json not found. Fix: run "
                        f"`dvc repro {target('download', name)}` first")
    return source


def build(name: str, params: DictConfig, raw: Path, source: dict) -> Built:
    """The checked splits of dataset `name` from its raw folder (nothing is written)."""
    ds = params.datasets[name]
    verify_raw(name, ds, raw, source)
    try:
        upstream = load_upstream(ds.load, raw, name)
    except BadFile as err:
        raise DataError(f"{name}: {err}; {refetch_advice(name, source)}") from None
    train_rows, val_rows = validation_indices(len(upstream.y_train), ds.split, params.seed, name)
    transform = build_transform(ds).fit(take_rows(upstream.x_train, train_rows))
    parts = {
        "train": (upstream.x_train, upstream.y_train, train_rows),
        "val": (upstream.x_train, upstream.y_train, val_rows),
        "test": (upstream.x_test, upstream.y_test, None),
    }
    splits = {
        split: (transform.apply(x if rows is None else take_rows(x, rows)),
                labels(y if rows is None else y[rows], ds.task))
        for split, (x, y, rows) in parts.items()
    }
    checks = check_splits(name, ds, splits)  # first: describe() trusts the labels
    manifest: dict[str, Any] = {
        "dataset": name,
        "task": ds.task,
        "classes": OmegaConf.to_container(ds.classes) if ds.classes else None,
        "source": {"kind": source["kind"], "label": data_label(source),  # + its proof
                   **{k: source[k] for k in ("detail", "reason", "files", "proof") if k in source}},
        "settings": dataset_settings(ds),  # what the checks compare the data's facts against
        "preprocess": {"kind": transform.kind, **transform.options, **transform.fitted},
        "splits": {split: describe(x, y, ds) for split, (x, y) in splits.items()},
        "checks": checks,
    }
    return Built(splits, transform, manifest)
