"""Training throughput, one process: the pipeline's loop (`pipeline.training.fit_once`, with
its callbacks: early stopping, best-model checkpoint, TerminateOnNaN) against bare
`model.fit` on the same prepared arrays and the same model, interleaved A/B/B/A.

Run by the suite from a project directory (its workspace); prints one JSON object:
{model: {"pipeline": [samples/s, ...], "bare": [...], "rows": n, "epochs": [...],
"pipeline_seconds": [...], "bare_seconds": [...], "pipeline_epochs": [...], "bare_epochs":
[...]}} ("epochs": both sides in the order they ran; the per-side lists let the suite say
how long a fit took and how many epochs each side ran).
Samples/s counts training rows x epochs actually run, over the wall time of building,
compiling and fitting the model (fit_once does all three; so does the bare side).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.arrays import load_split
from pipeline.config import load_params, model_config
from pipeline.layout import DATA, prepared_dir, read_manifest
from pipeline.models import build_model
from pipeline.training import fit_once, seed_everything

Split = tuple[Any, Any]  # (x, y) as pipeline.files.load_split returns them


def bare_fit(name: str, cfg: DictConfig, manifest: dict, train: Split, val: Split | None,
             epochs: int) -> tuple[float, int]:
    """The books' way: build, compile, `model.fit` - no callbacks, same arrays and model."""
    x, y = train
    started = time.perf_counter()  # fit_once builds its model inside: time the build here too
    model = build_model(name, cfg, tuple(x.shape[1:]), manifest["splits"]["train"]["sparse"])
    has_val = val is not None and val[0].shape[0] > 0
    history = model.fit(x, y, epochs=epochs, batch_size=cfg.batch_size, verbose=0,
                        validation_data=val if has_val else None, shuffle=True).history
    return time.perf_counter() - started, len(history["loss"])


def pipeline_fit(name: str, cfg: DictConfig, manifest: dict, train: Split, val: Split | None,
                 epochs: int, tmp: Path) -> tuple[float, int]:
    """The pipeline's way: `fit_once` builds, compiles and fits, with its callbacks."""
    started = time.perf_counter()
    _, history = fit_once(name, cfg, manifest, train, val, epochs, tmp / "checkpoint.keras")
    return time.perf_counter() - started, len(history["loss"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--epochs", type=int, default=3, help="at most this many per fit")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    params = load_params("params.yaml")
    seed_everything(params.seed)  # process-wide (op determinism): the same for both sides
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = model_config(params, name)
            prepared = prepared_dir(DATA, cfg.dataset)
            manifest = read_manifest(prepared)
            train = load_split(prepared / "train.npz")
            val = load_split(prepared / "val.npz")
            epochs = min(args.epochs, cfg.epochs)
            cfg = OmegaConf.merge(cfg, {"epochs": epochs})
            rows = train[0].shape[0]
            result: dict = {"rows": rows, "pipeline": [], "bare": [], "epochs": [],
                            "pipeline_seconds": [], "bare_seconds": [],
                            "pipeline_epochs": [], "bare_epochs": []}
            bare_fit(name, cfg, manifest, train, val, 1)  # warm-up: first graph build, caches
            for r in range(args.repeats):
                order = ("bare", "pipeline") if r % 2 == 0 else ("pipeline", "bare")
                for side in order:
                    if side == "bare":
                        seconds, ran = bare_fit(name, cfg, manifest, train, val, epochs)
                    else:
                        seconds, ran = pipeline_fit(name, cfg, manifest, train, val, epochs,
                                                    Path(tmp))
                    result[side].append(rows * ran / seconds)
                    result["epochs"].append(ran)
                    result[f"{side}_seconds"].append(seconds)
                    result[f"{side}_epochs"].append(ran)
            out[name] = result
    print(json.dumps(out))


if __name__ == "__main__":
    main()
