"""Stage `prepare`: raw files -> checked train/val/test feature splits + manifest.

1. verify every raw file's checksum (before anything is unpickled),
2. load them exactly as keras.datasets does (pipeline/formats.py),
3. carve validation rows from train (the upstream test split stays untouched),
4. fit the feature transform on train only and apply it to every split,
5. run the data checks, then write data/<dataset>/prepared/{train,val,test}.npz
   and manifest.json (shapes, dtypes, ranges, class counts, hashes, source).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.config import dataset_config, load_params
from pipeline.console import REAL_SOURCES, run_stage, source_banner
from pipeline.facts import dataset_settings
from pipeline.features import (
    build_transform,
    check_splits,
    describe,
    labels,
    take_rows,
    validation_indices,
)
from pipeline.files import (
    BadFile,
    DataError,
    atomic_dir,
    file_hash,
    save_split,
    verify_file,
    write_json,
)
from pipeline.formats import load_upstream
from pipeline.layout import DATA, MANIFEST, RESULTS, data_card, prepared_dir, raw_dir, read_source

log = logging.getLogger("pipeline.prepare")


def verify_raw(name: str, ds: DictConfig, raw: Path, source: dict) -> None:
    """Every raw file must match its pinned hash (real data) or its recorded one (stand-ins)."""
    for spec in ds.source.files:
        if source["kind"] in REAL_SOURCES:
            expected = spec.hash
        else:
            expected = source.get("files", {}).get(spec.name)
            if expected is None:
                raise DataError(f"{name}: {spec.name} is not in {raw}/source.json. Fix: "
                                f"run `dvc repro download@{name}`")
        verify_file(raw / spec.name, expected, f"{name}: raw file")


def prepare(name: str, params: DictConfig, data_dir: Path,
            results_dir: Path | None = None) -> dict[str, Any]:
    """Build and write the prepared splits of one dataset and its data card (the source and
    rows, committed with the results); return the manifest."""
    started = time.perf_counter()
    ds = dataset_config(params, name)
    raw, out_dir = raw_dir(data_dir, name), prepared_dir(data_dir, name)
    source = read_source(raw)
    if source is None:
        raise DataError(f"{name}: {raw}/source.json not found. Fix: run "
                        f"`dvc repro download@{name}` first")
    banner = source_banner(name, source)
    if banner:
        log.warning("%s", banner)
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
    checks = check_splits(name, ds, splits)

    with atomic_dir(out_dir) as tmp:
        manifest: dict[str, Any] = {
            "dataset": name,
            "task": ds.task,
            "classes": OmegaConf.to_container(ds.classes) if ds.classes else None,
            "source": {k: source[k] for k in ("kind", "detail", "reason", "files") if k in source},
            "settings": dataset_settings(ds),  # what validate checks folds/rows against
            "preprocess": {"kind": transform.kind, **transform.options, **transform.fitted},
            "splits": {},
            "checks": checks,
        }
        for split, (x, y) in splits.items():
            save_split(tmp / f"{split}.npz", x, y)
            manifest["splits"][split] = {**describe(x, y, ds),
                                         "file": f"{split}.npz",
                                         "sha256": file_hash(tmp / f"{split}.npz")}
        write_json(tmp / MANIFEST, manifest)
    results_dir = Path(data_dir).parent / RESULTS if results_dir is None else results_dir
    write_json(data_card(results_dir, name), {
        "dataset": name, "source": manifest["source"],
        "rows": {split: manifest["splits"][split]["rows"] for split in splits}})

    sizes = ", ".join(f"{s} {manifest['splits'][s]['rows']:,}" for s in splits)
    x_bytes = sum(manifest["splits"][s]["x_bytes"] for s in splits)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("prepare %s: %s rows (%s data) [%s], features %.1f MB, %.1fs, peak RSS %.0f MB",
             name, sizes, source["kind"], transform.kind, x_bytes / 1e6,
             time.perf_counter() - started, peak_mb)
    return manifest


def refetch_advice(name: str, source: dict) -> str:
    """Why deleting the file and downloading it again would or wouldn't help, and the fix."""
    if source["kind"] in REAL_SOURCES:
        return ("its checksum is the one pinned in params.yaml, so fetching it again gives these "
                f"same bytes. Fix: make datasets.{name}.source.files (url and hash) name the "
                "genuine upstream file")
    return (f"it is a {source['kind']} stand-in made here. Fix: delete data/{name}/raw and run "
            "`dvc repro` to make it again")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.prepare",
        description="Turn one dataset's raw files into checked train/val/test feature splits.",
    )
    parser.add_argument("dataset", help="a dataset name under `datasets:` in params.yaml")
    parser.add_argument("--params", default="params.yaml", help="the params file to read")
    parser.add_argument("--data-dir", default=str(DATA), help="where data/<dataset> goes")
    parser.add_argument("--results-dir", default=None,
                        help="where results/<dataset>/data.json goes (default: beside data)")
    args = parser.parse_args(argv)
    results = Path(args.results_dir) if args.results_dir else None
    run_stage(lambda: prepare(args.dataset, load_params(args.params), Path(args.data_dir),
                              results),
              params=args.params)


if __name__ == "__main__":
    main()
