"""Stage `prepare`: raw files -> checked train/val/test feature splits + manifest.

The splits are built by pipeline/dataset.py (verified raw files, Keras-exact loading,
validation rows carved from train, the transform fitted on train only, the data
checks); this stage writes them: data/<dataset>/prepared/{train,val,test}.npz and
manifest.json (shapes, dtypes, ranges, class counts, hashes, source), atomically, and
the data card results/<dataset>/data.json (source and rows, committed with the results).
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline import cli
from pipeline.arrays import save_split
from pipeline.config import dataset_config, load_params
from pipeline.console import source_banner
from pipeline.dataset import build, read_raw_source
from pipeline.files import atomic_dir, file_hash, write_json
from pipeline.layout import MANIFEST, RESULTS, data_card, prepared_dir, raw_dir

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
    log.info("prepare %s: %s rows (data: %s) [%s], features %.1f MB, %.1fs, peak RSS %.0f MB",
             name, sizes, manifest["source"]["label"], built.transform.kind, x_bytes / 1e6,
             time.perf_counter() - started, peak_mb)
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.prepare", "Turn one dataset's raw files into checked "
                         "train/val/test feature splits.", "dataset")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where results/<dataset>/data.json goes (default: beside data)")
    cli.run(parser, argv, lambda args: prepare(args.dataset, load_params(args.params),
                                               args.data_dir, args.results_dir))


if __name__ == "__main__":
    main()
