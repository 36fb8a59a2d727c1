"""Stage `prepare`: raw files -> checked train/val/test feature splits + manifest.

The splits are built by pipeline/dataset.py (verified raw files, Keras-exact loading,
validation rows carved from train, the transform fitted on train only, the data
checks); this stage writes them: data/<dataset>/prepared/{train,val,test}.npz and
manifest.json (shapes, dtypes, ranges, class counts, hashes, source), atomically, and
the data card results/<dataset>/data.json (source and rows, committed with the results).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline.config import dataset_config, load_params
from pipeline.console import run_stage, source_banner
from pipeline.dataset import build, read_raw_source
from pipeline.files import atomic_dir, file_hash, save_split, write_json
from pipeline.layout import DATA, MANIFEST, RESULTS, data_card, prepared_dir, raw_dir

log = logging.getLogger("pipeline.prepare")


def prepare(name: str, params: DictConfig, data_dir: Path,
            results_dir: Path | None = None) -> dict[str, Any]:
    """Build and write the prepared splits of one dataset and its data card; return the
    manifest."""
    started = time.perf_counter()
    dataset_config(params, name)
    raw, out_dir = raw_dir(data_dir, name), prepared_dir(data_dir, name)
    source = read_raw_source(name, raw)
    banner = source_banner(name, source)
    if banner:
        log.warning("%s", banner)
    built = build(name, params, raw, source)
    manifest = built.manifest
    with atomic_dir(out_dir) as tmp:
        for split, (x, y) in built.splits.items():
            save_split(tmp / f"{split}.npz", x, y)
            manifest["splits"][split].update(file=f"{split}.npz",
                                             sha256=file_hash(tmp / f"{split}.npz"))
        write_json(tmp / MANIFEST, manifest)
    results_dir = Path(data_dir).parent / RESULTS if results_dir is None else results_dir
    write_json(data_card(results_dir, name), {
        "dataset": name, "source": manifest["source"],
        "rows": {split: manifest["splits"][split]["rows"] for split in built.splits}})

    sizes = ", ".join(f"{s} {manifest['splits'][s]['rows']:,}" for s in built.splits)
    x_bytes = sum(manifest["splits"][s]["x_bytes"] for s in built.splits)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("prepare %s: %s rows (%s data) [%s], features %.1f MB, %.1fs, peak RSS %.0f MB",
             name, sizes, source["kind"], built.transform.kind, x_bytes / 1e6,
             time.perf_counter() - started, peak_mb)
    return manifest


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
