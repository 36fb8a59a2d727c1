"""Benchmark suite: the pipeline against the books' plain code, same data, same machine.

    uv run --locked python -m benchmarks            # everything, defaults (~40-85 min)
    uv run --locked python -m benchmarks --only throughput --datasets mnist,imdb

Builds a throw-away copy of the project (pipeline/, dvc.yaml, params.yaml) in
--workdir, lets the pipeline download the data once, then runs each row. Every
row measures the pipeline and its reference side by side in the same run (the
order alternates between repeats) and reports their ratio: median and range,
because these machines are noisy. Prints a Markdown table and writes it, with
the raw numbers as JSON, to benchmarks/results/<timestamp>.{md,json}.

Rows are independent builders registered in ROWS (select with --only); a row
that needs the paired full runs (accuracy, time, memory) shares them through
the Suite object instead of running them again.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.console import QUIET_ENV
from pipeline.files import atomic_file, write_json

ROOT = Path(__file__).resolve().parents[1]
BOOKS = ROOT / "benchmarks" / "books"
HOOK = ROOT / "benchmarks" / "hook"  # sitecustomize.py: per-process peak RSS and wall time

# Each Keras model of params.yaml -> the books' script that is its reference.
BOOK_SCRIPTS = {
    "mnist_dense": "mnist_dense.py",
    "fashion_mnist_cnn": "fashion_mnist_cnn.py",
    "fashion_mnist_dense": "fashion_mnist_dense.py",
    "imdb_dense": "imdb_dense.py",
    "reuters_dense": "reuters_dense.py",
    "boston_housing_dense": "boston_housing_kfold.py",
}
BASELINE = "baseline"  # the SGD baseline of every dataset: books/sgd_baseline.py <dataset>


class BenchError(RuntimeError):
    """A command of the suite failed; the message carries the tail of its output."""


def say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- measurements ----------------------------------------------------------------------


@dataclass
class Proc:
    """One Python process that exited during a command (written by the hook)."""

    name: str
    seconds: float
    rss_mb: float
    children_rss_mb: float
    imported: list[str]


@dataclass
class Timed:
    seconds: float
    procs: list[Proc]
    stdout: str = ""


def proc_name(argv: list[str]) -> str:
    """'train@mnist_dense', 'report', 'books:imdb_dense', 'books:sgd_baseline@imdb', 'dvc'."""
    path = Path(argv[0]) if argv else Path("?")
    arg = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    if path.parent.name == "pipeline":
        return path.stem + (f"@{arg}" if arg else "")
    if path.parent.name == "books":
        return "books:" + path.stem + (f"@{arg}" if arg else "")
    return path.stem or "?"


def summary(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


# --- the throw-away project -------------------------------------------------------------


class Workspace:
    """A copy of the project (code, dvc.yaml, params) with its own git, DVC and MLflow."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path = path
        self.params = params
        self.logs = path.parent / f"{path.name}-procs"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(QUIET_ENV)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = f"{HOOK}{os.pathsep}{path}"  # the hook, and `pipeline` for books/
        self.env = env
        self._runs = 0

    def create(self) -> None:
        for old in (self.path, self.logs, Path(f"{self.path}-dvc-site")):
            shutil.rmtree(old, ignore_errors=True)
        self.path.mkdir(parents=True)
        self.logs.mkdir()
        shutil.copytree(ROOT / "pipeline", self.path / "pipeline",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "conf", self.path / "conf")  # sweeps (row 5)
        shutil.copy(ROOT / "dvc.yaml", self.path / "dvc.yaml")
        shutil.copy(ROOT / ".dvcignore", self.path / ".dvcignore")
        (self.path / ".gitignore").write_text("/data/\n/mlflow.db\n*.keras\n")
        self.write_params()
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"],
                    ["dvc", "config", "core.site_cache_dir", f"{self.path}-dvc-site"]):
            self.run(cmd)

    def write_params(self) -> None:
        (self.path / "params.yaml").write_text(yaml.safe_dump(self.params, sort_keys=False))

    def get(self, key: str) -> Any:
        node: Any = self.params
        for part in key.split("."):
            node = node[part]
        return node

    def set(self, key: str, value: Any) -> None:
        *parents, last = key.split(".")
        node: Any = self.params
        for part in parents:
            node = node[part]
        node[last] = value
        self.write_params()

    def run(self, cmd: list[str], timeout: float = 7200, **env: str) -> Timed:
        """Run one command in the workspace; wall time and every Python process it ran."""
        self._runs += 1
        log = self.logs / f"{self._runs:04d}.jsonl"
        started = time.perf_counter()
        result = subprocess.run(cmd, cwd=self.path, env={**self.env, **env,
                                                         "BENCH_PROC_LOG": str(log)},
                                capture_output=True, text=True, timeout=timeout)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise BenchError(f"`{' '.join(cmd)}` failed (exit {result.returncode}):\n{tail}")
        records = [json.loads(line) for line in log.read_text().splitlines()] \
            if log.exists() else []
        # Workers (joblib's, forked copies) count in their parent's children_rss, not here.
        parents = {rec["pid"] for rec in records if proc_name(rec["argv"]) != "dvc"}
        procs = [Proc(proc_name(rec["argv"]), rec["seconds"], rec["maxrss_kb"] / 1024,
                      rec["children_maxrss_kb"] / 1024, rec["imported"])
                 for rec in records if rec["ppid"] not in parents]
        return Timed(seconds, procs, result.stdout)

    def repro(self, *args: str) -> Timed:
        return self.run(["dvc", "repro", *args])

    def book(self, model_or_baseline: str, dataset: str) -> tuple[Timed, dict[str, float]]:
        """Run one books' script; its wall time, processes and printed metrics."""
        if model_or_baseline == BASELINE:
            cmd = [sys.executable, str(BOOKS / "sgd_baseline.py"), dataset]
        else:
            cmd = [sys.executable, str(BOOKS / BOOK_SCRIPTS[model_or_baseline])]
        out = self.logs / "book-result.json"
        out.unlink(missing_ok=True)
        timed = self.run(cmd, BOOKS_RESULT=str(out))
        return timed, json.loads(out.read_text())

    def metric(self, dataset: str, model_or_baseline: str) -> dict[str, float]:
        path = self.path / "results" / dataset / model_or_baseline / "metrics.json"
        return json.loads(path.read_text())

    def sources(self) -> dict[str, dict[str, str]]:
        out = {}
        for path in sorted(self.path.glob("data/*/raw/source.json")):
            info = json.loads(path.read_text())
            out[path.parent.parent.name] = {k: str(info.get(k, "")) for k in ("kind", "detail")}
        return out


# --- the suite --------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table. ratio = pipeline / reference, median over repeats."""

    row: str
    measure: str
    pipeline: str
    reference: str
    ratio: float | None = None
    low: float | None = None
    high: float | None = None
    target: str = ""
    met: bool | None = None
    cause: str = ""  # for a missed target: what the suite measured as the reason
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Suite:
    args: argparse.Namespace
    ws: Workspace
    models: dict[str, str]  # model -> dataset
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    _paired: list[dict[str, Any]] | Exception | None = None

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

    def paired_runs(self) -> list[dict[str, Any]]:
        """--repeats full runs, each: a full `dvc repro` and all the books' scripts, on the
        same downloaded files, with the same seed (a new one per repeat, so every stage
        downstream of download reruns and the accuracies are independent samples)."""
        if isinstance(self._paired, Exception):
            raise self._paired  # failed once already: not again for every row that needs it
        if self._paired is not None:
            return self._paired
        try:
            self._paired = self._run_pairs()
        except BenchError as err:
            self._paired = err
            raise
        return self._paired

    def _run_pairs(self) -> list[dict[str, Any]]:
        runs = []
        base_seed = self.ws.params["seed"]
        for r in range(self.args.repeats):
            seed = base_seed + r
            self.ws.set("seed", seed)
            order = ("pipeline", "books") if r % 2 == 0 else ("books", "pipeline")
            run: dict[str, Any] = {"seed": seed, "order": order}
            for side in order:
                say(f"full run {r + 1}/{self.args.repeats} (seed {seed}): {side} ...")
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
            runs.append(run)
        self.ws.set("seed", base_seed)
        return runs


ROWS: dict[str, Callable[[Suite], list[Row]]] = {}


def row(name: str) -> Callable:
    def register(builder: Callable[[Suite], list[Row]]) -> Callable[[Suite], list[Row]]:
        ROWS[name] = builder
        return builder
    return register


# --- 1. accuracy -----------------------------------------------------------------------


@row("accuracy")
def accuracy_rows(suite: Suite) -> list[Row]:
    """Every model's (and baseline's) test metric: pipeline next to the books' script."""
    runs = suite.paired_runs()
    rows = []
    for key in runs[0]["pipeline_metrics"]:
        dataset, entry = key.split("/")
        regression = suite.ws.params["datasets"][dataset]["task"] == "regression"
        metric = "test_mae" if regression else "test_accuracy"
        pipe = [run["pipeline_metrics"][key][metric] for run in runs]
        books = [run["books_metrics"][key][metric] for run in runs]
        ratios = [p / b for p, b in zip(pipe, books, strict=True) if b]
        (pm, ps), (bm, bs) = mean_std(pipe), mean_std(books)
        if regression:  # lower is better
            tolerance = max(2 * bs, 0.05 * bm)
            met, target = pm <= bm + tolerance, "≤ books + max(2 sd, 5%)"
        else:
            tolerance = max(2 * bs, 0.01)
            met, target = pm >= bm - tolerance, "≥ books - max(2 sd, 0.01)"
        label = "SGD baseline" if entry == BASELINE else entry
        rows.append(Row(
            "1 accuracy", f"{dataset} {label}: {metric}, n={len(runs)}",
            f"{pm:.4f} ± {ps:.4f}", f"{bm:.4f} ± {bs:.4f}",
            pm / bm if bm else None, *(summary(ratios)[1:] if ratios else (None, None)),
            target=target, met=met,
            cause="" if met else "a difference beyond the run-to-run spread (per-run values "
            "in the JSON)",
            values={"pipeline": pipe, "books": books}))
    return rows


# --- 2. time ---------------------------------------------------------------------------


def import_seconds(suite: Suite) -> dict[str, float]:
    """What one fresh process pays to import each heavy library here (median);
    nothing with --import-repeats 0."""
    out: dict[str, float] = {}
    if suite.args.import_repeats < 1:
        return out
    rss: dict[str, float] = {}
    for label, code in (("python", "pass"), ("tensorflow+keras", "import keras, tensorflow"),
                        ("mlflow", "import mlflow"), ("sklearn", "import sklearn.linear_model"),
                        ("tensorflow+keras+mlflow", "import keras, tensorflow, mlflow")):
        runs = [suite.ws.run([sys.executable, "-c", code])
                for _ in range(suite.args.import_repeats)]
        out[label] = statistics.median(r.seconds for r in runs)
        rss[label] = statistics.median(max(p.rss_mb for p in r.procs) for r in runs)
    suite.details["import_rss_mb"] = rss  # what the runtime alone costs, for row 3's causes
    return out


def import_tax(processes: list[list[str]], imports: dict[str, float]) -> float:
    """Estimated seconds a run spent importing: TensorFlow (which brings most of what
    sklearn needs), MLflow, sklearn alone, per process that imported them."""
    base = imports["python"]
    total = 0.0
    for modules in processes:
        if "tensorflow" in modules:
            total += imports["tensorflow+keras"] - base
        elif "sklearn" in modules:
            total += imports["sklearn"] - base
        if "mlflow" in modules:
            total += imports["mlflow"] - base
    return total


def time_breakdown(suite: Suite, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Where the pipeline's extra seconds go: stage kinds, DVC itself, imports."""
    kinds: dict[str, list[float]] = {}
    stage_sums, tf_counts, mlflow_counts, books_tf = [], [], [], []
    imported: dict[str, list[list[list[str]]]] = {"pipeline": [], "books": []}
    for run in runs:
        stages = [p for p in run["pipeline"].procs if "@" in p.name or p.name in
                  ("check", "report")]
        per_kind: dict[str, float] = {}
        for p in stages:
            kind = p.name.split("@")[0]
            per_kind[kind] = per_kind.get(kind, 0.0) + p.seconds
        for kind, seconds in per_kind.items():
            kinds.setdefault(kind, []).append(seconds)
        stage_sums.append(sum(p.seconds for p in stages))
        tf_counts.append(sum("tensorflow" in p.imported for p in stages))
        mlflow_counts.append(sum("mlflow" in p.imported for p in stages))
        books_tf.append(sum("tensorflow" in p.imported for t in run["books"].values()
                            for p in t.procs))
        imported["pipeline"].append([p.imported for p in stages])
        imported["books"].append([p.imported for t in run["books"].values() for p in t.procs])
    pipeline_total = statistics.median(r["pipeline"].seconds for r in runs)
    return {
        "load_average": [{k: round(v, 2) for k, v in r.items() if "_load_" in k} for r in runs],
        "pipeline_seconds": pipeline_total,
        "books_seconds": statistics.median(r["books_seconds"] for r in runs),
        "stage_seconds_by_kind": {k: statistics.median(v) for k, v in kinds.items()},
        "dvc_overhead_seconds": pipeline_total - statistics.median(stage_sums),
        "pipeline_processes_with_tensorflow": statistics.median(tf_counts),
        "pipeline_processes_with_mlflow": statistics.median(mlflow_counts),
        "books_processes_with_tensorflow": statistics.median(books_tf),
        "imported": imported,
        "books_script_seconds": {
            key: statistics.median(r["books"][key].seconds for r in runs)
            for key in runs[0]["books"]},
    }


@row("time")
def time_rows(suite: Suite) -> list[Row]:
    runs = suite.paired_runs()
    ratios = [r["pipeline"].seconds / r["books_seconds"] for r in runs]
    pipe = summary([r["pipeline"].seconds for r in runs])
    books = summary([r["books_seconds"] for r in runs])
    breakdown = time_breakdown(suite, runs)
    breakdown["import_seconds"] = imports = import_seconds(suite)
    suite.details["time"] = breakdown
    gap = pipe[0] - books[0]
    tax = {side: statistics.median(import_tax(run, imports) for run in breakdown["imported"][side])
           for side in ("pipeline", "books")} if imports else {}
    breakdown["import_tax_seconds"] = tax
    met = statistics.median(ratios) <= 1.15
    cause = "" if met else (
        f"gap {gap:.0f} s. Imports: {breakdown['pipeline_processes_with_tensorflow']:.0f} stage "
        f"processes import TensorFlow, {breakdown['pipeline_processes_with_mlflow']:.0f} MLflow "
        f"(books: {breakdown['books_processes_with_tensorflow']:.0f} scripts, no MLflow)"
        + (f": about {tax['pipeline']:.0f} s of imports vs {tax['books']:.0f} s, at this run's "
           "import times" if tax else "") +
        "; DVC's own work (hashing, caching outputs, lock) "
        f"{breakdown['dvc_overhead_seconds']:.0f} s; stages by kind (s): " + ", ".join(
            f"{k} {v:.0f}" for k, v in sorted(breakdown["stage_seconds_by_kind"].items())))
    rows = [Row("2 time", f"full `dvc repro` ({len(suite.datasets)} datasets) vs the books' "
                f"scripts one after another, n={len(runs)}",
                f"{pipe[0]:.1f} s ({pipe[1]:.0f}-{pipe[2]:.0f})",
                f"{books[0]:.1f} s ({books[1]:.0f}-{books[2]:.0f})",
                statistics.median(ratios), min(ratios), max(ratios), "≤ 1.15x", met, cause,
                {"pipeline": [r["pipeline"].seconds for r in runs],
                 "books": [r["books_seconds"] for r in runs]})]

    rows.extend(split_time_rows(runs))

    say("no-op dvc repro ...")
    suite.ws.repro()  # the paired runs end on another seed: bring the outputs back first
    timed = [suite.ws.repro() for _ in range(suite.args.noop_repeats)]
    noop = [t.seconds for t in timed]
    ran = sorted({p.name for t in timed for p in t.procs if p.name != "dvc"})
    n = summary(noop)
    rows.append(Row("2 time", f"no-op `dvc repro`, n={len(noop)} (vs rerunning the scripts)",
                    f"{n[0]:.2f} s ({n[1]:.2f}-{n[2]:.2f})", f"{books[0]:.1f} s",
                    n[0] / books[0], n[1] / books[0], n[2] / books[0], "< 3 s", n[0] < 3,
                    "" if n[0] < 3 else (
                        f"DVC itself (stages that ran: {', '.join(ran) or 'none'}); profile "
                        "with `dvc repro --cprofile-dump noop.prof`"),
                    {"pipeline": noop}))
    rows.append(param_change_row(suite))
    return rows


def split_time_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """The full-run ratio split in two, from the same runs: Keras models (prepare, train,
    evaluate stages vs the model scripts) and baselines (baseline stages vs the SGD
    scripts), so one slow side cannot hide behind the other."""
    rows = []
    for label, kinds, is_baseline in (
            ("Keras models: `prepare`+`train`+`evaluate` stages vs the model scripts",
             ("prepare", "train", "evaluate"), False),
            ("baselines: `baseline` stages vs the SGD scripts", ("baseline",), True)):
        pipe, books = [], []
        for run in runs:
            pipe.append(sum(p.seconds for p in run["pipeline"].procs
                            if p.name.split("@")[0] in kinds and "@" in p.name))
            books.append(sum(t.seconds for key, t in run["books"].items()
                             if key.endswith(f"/{BASELINE}") == is_baseline))
        if not all(books):
            continue
        ratios = [p / b for p, b in zip(pipe, books, strict=True)]
        ps, bs = summary(pipe), summary(books)
        rows.append(Row("2 time", f"{label} (part of the full run above)",
                        f"{ps[0]:.1f} s ({ps[1]:.0f}-{ps[2]:.0f})",
                        f"{bs[0]:.1f} s ({bs[1]:.0f}-{bs[2]:.0f})",
                        statistics.median(ratios), min(ratios), max(ratios), "(breakdown)", None,
                        values={"pipeline": pipe, "books": books}))
    return rows


def default_change(suite: Suite) -> str:
    if "imdb" in suite.datasets:
        return "datasets.imdb.load.num_words"  # the README's example: reruns imdb's chain
    return f"models.{next(iter(suite.models))}.epochs"


def param_change_row(suite: Suite) -> Row:
    """Change one param of one dataset: `dvc repro` reruns that chain only; the books'
    way reruns that dataset's scripts. Toggles the value back and forth."""
    key = suite.args.change or default_change(suite)
    parts = key.split(".")
    dataset = parts[1] if parts[0] == "datasets" else suite.models[parts[1]]
    original = suite.ws.get(key)
    if isinstance(original, bool) or not isinstance(original, int | float):
        raise BenchError(f"--change {key}: {original!r} is not a number to nudge")
    if isinstance(original, float):  # fractions (split.validation, learning rates)
        changed = round(original * 0.9, 10)
    else:
        changed = original - 1 if original > 1 else original + 1
    samples = []
    for r in range(suite.args.repeats):
        suite.ws.set(key, changed if r % 2 == 0 else original)
        say(f"param change {r + 1}/{suite.args.repeats}: {key}={suite.ws.get(key)} ...")
        order = ("pipeline", "books") if r % 2 == 0 else ("books", "pipeline")
        sample: dict[str, Any] = {}
        for side in order:
            if side == "pipeline":
                timed = suite.ws.repro("--no-run-cache")
                sample["pipeline"] = timed.seconds
                sample["stages"] = sorted(p.name for p in timed.procs
                                          if "@" in p.name or p.name == "report")
            else:
                sample["books"] = suite.run_books([dataset])[0]
        samples.append(sample)
    if suite.ws.get(key) != original:
        suite.ws.set(key, original)
        suite.ws.repro()  # leave the workspace as params.yaml says, for the next rows
    ratios = [s["pipeline"] / s["books"] for s in samples]
    pipe, books = summary([s["pipeline"] for s in samples]), summary([s["books"] for s in samples])
    return Row("2 time", f"rerun after `{key}` {original}↔{changed} (stages: "
               f"{', '.join(samples[0]['stages'])}) vs {dataset}'s scripts, n={len(samples)}",
               f"{pipe[0]:.1f} s ({pipe[1]:.0f}-{pipe[2]:.0f})",
               f"{books[0]:.1f} s ({books[1]:.0f}-{books[2]:.0f})",
               statistics.median(ratios), min(ratios), max(ratios), "(none set)", None, "",
               {"samples": samples})


# --- 3. memory -------------------------------------------------------------------------


def stage_dataset(name: str, models: dict[str, str]) -> str | None:
    """The dataset a stage (or a books' script run) belongs to; None for check/report."""
    target = name.split("@")[1] if "@" in name else None
    if target is None:
        return None
    return models.get(target, target)


@row("memory")
def memory_rows(suite: Suite) -> list[Row]:
    """Peak RSS per dataset: the pipeline's largest stage against the books' largest script."""
    runs = suite.paired_runs()
    stage_peaks: dict[str, list[float]] = {}
    for run in runs:
        for p in run["pipeline"].procs:
            if p.name == "dvc":  # its children are the stages, listed on their own
                stage_peaks.setdefault(p.name, []).append(p.rss_mb)
            elif "@" in p.name or p.name in ("check", "report"):
                stage_peaks.setdefault(p.name, []).append(max(p.rss_mb, p.children_rss_mb))
    book_peaks: dict[str, list[float]] = {}
    for run in runs:
        for key, timed in run["books"].items():
            book_peaks.setdefault(key, []).append(
                max(max(p.rss_mb, p.children_rss_mb) for p in timed.procs))
    suite.details["peak_rss_mb"] = {
        "stages": {k: statistics.median(v) for k, v in sorted(stage_peaks.items())},
        "books": {k: statistics.median(v) for k, v in sorted(book_peaks.items())}}
    rows = []
    for dataset in suite.datasets:
        stages = {k: statistics.median(v) for k, v in stage_peaks.items()
                  if stage_dataset(k, suite.models) == dataset}
        books = {k: statistics.median(v) for k, v in book_peaks.items()
                 if k.startswith(f"{dataset}/")}
        if not stages or not books:
            continue
        top_stage, top_book = max(stages, key=stages.get), max(books, key=books.get)
        per_run = []
        for run in runs:
            p = max(max(x.rss_mb, x.children_rss_mb) for x in run["pipeline"].procs
                    if stage_dataset(x.name, suite.models) == dataset)
            b = max(max(x.rss_mb, x.children_rss_mb) for k, t in run["books"].items()
                    if k.startswith(f"{dataset}/") for x in t.procs)
            per_run.append(p / b)
        ratio = statistics.median(per_run)
        rows.append(Row(
            "3 memory", f"{dataset}: peak RSS, largest stage vs largest books' script",
            f"{stages[top_stage]:.0f} MB ({top_stage})",
            f"{books[top_book]:.0f} MB ({top_book.split('/')[1]})",
            ratio, min(per_run), max(per_run), "< 1x", ratio < 1,
            "" if ratio < 1 else memory_cause(suite, top_stage),
            {"stages": stages, "books": books}))
    rows.extend(imdb_bytes_rows(suite))
    return rows


def memory_cause(suite: Suite, stage: str) -> str:
    text = ("dense arrays: both sides hold the same data in memory; the difference is the "
            f"runtime {stage} loads")
    rss = suite.details.get("import_rss_mb")
    if rss:
        text += (f" (a bare process importing TensorFlow+Keras peaks at "
                 f"{rss['tensorflow+keras']:.0f} MB, with MLflow too at "
                 f"{rss['tensorflow+keras+mlflow']:.0f} MB)")
    return text


def imdb_bytes_rows(suite: Suite) -> list[Row]:
    manifest_path = suite.ws.path / "data/imdb/prepared/manifest.json"
    if "imdb" not in suite.datasets or not manifest_path.exists():
        return []
    manifest = json.loads(manifest_path.read_text())
    rows = []
    for split, info in manifest["splits"].items():
        dense = info["rows"] * info["x_shape"][1] * 8  # the books' np.zeros float64 matrix
        ratio = info["x_bytes"] / dense
        rows.append(Row("3 memory", f"imdb {split} features ({info['rows']:,} rows): CSR bytes "
                        "vs the books' dense float64 matrix",
                        f"{info['x_bytes'] / 1e6:.1f} MB", f"{dense / 1e9:.2f} GB",
                        ratio, target="≤ 2%", met=ratio <= 0.02,
                        cause="" if ratio <= 0.02 else "long reviews: many words per row",
                        values={"csr_bytes": info["x_bytes"], "dense_bytes": dense}))
    return rows


# --- 4. training throughput ------------------------------------------------------------


@row("throughput")
def throughput_rows(suite: Suite) -> list[Row]:
    """samples/s of `pipeline.training.fit_once` vs bare `model.fit`, one process per run."""
    if not (suite.ws.path / "data").exists() or not any(
            (suite.ws.path / "data" / d / "prepared").exists() for d in suite.datasets):
        say("throughput: preparing the data (dvc repro prepare@*) ...")
        suite.ws.repro("--glob", "prepare@*")
    models = [m for m, d in suite.models.items()
              if (suite.ws.path / "data" / d / "prepared" / "manifest.json").exists()]
    say(f"throughput: {', '.join(models)} ...")
    timed = suite.ws.run([sys.executable, str(ROOT / "benchmarks" / "throughput.py"), *models,
                          "--epochs", str(suite.args.throughput_epochs),
                          "--repeats", str(suite.args.throughput_repeats)])
    result = json.loads(timed.stdout.strip().splitlines()[-1])
    rows = []
    for model, r in result.items():
        ratios = [p / b for p, b in zip(r["pipeline"], r["bare"], strict=True)]
        ratio = statistics.median(ratios)
        pipe, bare = summary(r["pipeline"]), summary(r["bare"])
        rows.append(Row(
            "4 throughput", f"{model}: samples/s, `fit_once` vs bare `model.fit` "
            f"({r['rows']:,} rows, ≤{suite.args.throughput_epochs} epochs, "
            f"n={len(ratios)})",
            f"{pipe[0]:,.0f} ({pipe[1]:,.0f}-{pipe[2]:,.0f})",
            f"{bare[0]:,.0f} ({bare[1]:,.0f}-{bare[2]:,.0f})",
            ratio, min(ratios), max(ratios), "≥ 0.95x", ratio >= 0.95,
            "" if ratio >= 0.95 else throughput_cause(ratios, r, suite.args), r))
    return rows


def throughput_cause(ratios: list[float], result: dict, args: argparse.Namespace) -> str:
    fits = result["rows"] * min(result["epochs"]) / max(max(result["bare"]), 1)
    text = (f"fits of ~{fits:.1f} s, so fit_once's fixed costs weigh: its callbacks "
            "(TerminateOnNaN; with a validation split also EarlyStopping and a best-model "
            "checkpoint, a .keras save per improving epoch)")
    if max(ratios) >= 0.95:
        text += (f"; the pairs' range reaches the target, so this is within the machine's "
                 f"noise at n={len(ratios)}: raise --throughput-epochs/--throughput-repeats")
    return text


# --- 5. sweeps -------------------------------------------------------------------------

SWEEP_MODELS = ("imdb_dense", "reuters_dense", "mnist_dense", "fashion_mnist_dense")


def sweep_model(suite: Suite) -> str:
    """--sweep-model, else the first small model whose dataset the suite has."""
    if suite.args.sweep_model:
        return suite.args.sweep_model
    for model in SWEEP_MODELS:
        if model in suite.models:
            return model
    return next(iter(suite.models))


@row("sweeps")
def sweep_rows(suite: Suite) -> list[Row]:
    """Trials/s of the same grid sweep on the joblib launcher (2 workers) and on the basic
    (sequential) launcher, alternating, each a fresh MLflow parent (no trial reused)."""
    model = sweep_model(suite)
    dataset = suite.models[model]
    if not (suite.ws.path / "data" / dataset / "prepared" / "manifest.json").exists():
        suite.ws.repro(f"prepare@{dataset}")
    trials, epochs = suite.args.sweep_trials, suite.args.sweep_epochs
    rates = ",".join(f"{0.0005 * (i + 1):g}" for i in range(trials))
    grid = [f"models.{model}.epochs={epochs}", f"models.{model}.optimizer.learning_rate={rates}"]
    walls: dict[str, list[float]] = {"basic": [], "joblib": []}
    training: dict[str, list[float]] = {"basic": [], "joblib": []}
    phases: dict[str, list[float]] = {"basic": [], "joblib": []}  # first trial start to last end
    for r in range(suite.args.repeats):
        for launcher in (("basic", "joblib") if r % 2 == 0 else ("joblib", "basic")):
            say(f"sweeps: {trials} trials of {model}, {launcher} launcher ({r + 1}/"
                f"{suite.args.repeats}) ...")
            sweep_dir = suite.ws.path / "sweeps" / f"bench-{r}-{launcher}"
            shutil.rmtree(sweep_dir, ignore_errors=True)
            timed = suite.ws.run([sys.executable, "-m", "pipeline.sweep", "-m",
                                  f"launcher={launcher}", "sweep.resume=false",
                                  f"hydra.sweep.dir={sweep_dir}", *grid])
            records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/trial.json")]
            trained = [t["summary"]["train_seconds"] for t in records if not t.get("reused")]
            if len(trained) != trials:
                raise BenchError(f"sweeps: {launcher} trained {len(trained)} of {trials} trials")
            phases[launcher].append(max(t["ended"] for t in records)
                                    - min(t["started"] for t in records))
            walls[launcher].append(timed.seconds)
            training[launcher].append(sum(trained))
            say(f"  {timed.seconds:.1f} s, {trials / timed.seconds:.3f} trials/s")
    rates_of = {k: [trials / s for s in v] for k, v in walls.items()}
    ratios = [j / b for j, b in zip(rates_of["joblib"], rates_of["basic"], strict=True)]
    ratio = statistics.median(ratios)
    fixed = {k: statistics.median(w) - statistics.median(t) / (2 if k == "joblib" else 1)
             for (k, w), t in zip(walls.items(), training.values(), strict=True)}
    steady = statistics.median(phases["basic"]) / statistics.median(phases["joblib"])
    cause = ""
    if ratio < 1.7:
        cause = (f"each sweep pays fixed costs the trials can't share: ~{fixed['basic']:.0f} s "
                 f"(basic) / ~{fixed['joblib']:.0f} s (joblib) of start-up, TensorFlow/MLflow "
                 "imports (again in each joblib worker), preflight and MLflow bookkeeping; "
                 f"the {trials} trials trained for {statistics.median(training['basic']):.0f} s"
                 f" sequentially (2 TensorFlow threads each) vs "
                 f"{statistics.median(training['joblib']):.0f} s in 2 workers (1 thread each): "
                 "one trial already keeps both cores busy; between the first trial's start "
                 f"and the last one's end, joblib is {steady:.2f}x the basic launcher")
    pipe, ref = summary(rates_of["joblib"]), summary(rates_of["basic"])
    return [Row(
        "5 sweeps", f"{model}: trials/s, joblib (2 workers) vs basic launcher ({trials} "
        f"trials of {epochs} epochs, n={len(ratios)})",
        f"{pipe[0]:.3f} ({pipe[1]:.3f}-{pipe[2]:.3f})", f"{ref[0]:.3f} ({ref[1]:.3f}-{ref[2]:.3f})",
        ratio, min(ratios), max(ratios), "≥ 1.7x", ratio >= 1.7, cause,
        {"walls": walls, "training": training, "trial_phases": phases, "fixed_seconds": fixed,
         "steady_ratio": steady})]


# --- output ----------------------------------------------------------------------------


def ratio_text(r: Row) -> str:
    if r.ratio is None:
        return "—"
    fmt = "{:.2%}" if r.target.endswith("%") else "{:.2f}x"
    text = fmt.format(r.ratio)
    if r.low is not None and r.high is not None and (r.low, r.high) != (r.ratio, r.ratio):
        text += f" ({fmt.format(r.low)}-{fmt.format(r.high)})"
    return text


def render(rows: list[Row], header: dict[str, Any], details: dict[str, Any],
           errors: list[str]) -> str:
    met = {True: "yes", False: "**MISSED**", None: "—"}
    lines = [
        "# Benchmarks: the pipeline against the books' plain code",
        "",
        f"{header['when']} · {header['machine']} · commit {header['commit']} · "
        f"repeats {header['repeats']} · `{header['command']}`",
        "",
        "Data (the same local files on both sides): " + "; ".join(
            f"{d}: **{s['kind']}**" for d, s in header["sources"].items()),
        "",
        "| row | measure | pipeline | books / bare | ratio (median, range) | target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {r.row} | {r.measure} | {r.pipeline} | {r.reference} | {ratio_text(r)} | "
              f"{r.target} | {met[r.met]} |" for r in rows]
    missed = [r for r in rows if r.met is False]
    if missed:
        lines += ["", "## Missed targets", ""]
        lines += [f"- {r.row}, {r.measure}: {ratio_text(r)} vs {r.target}. Cause: {r.cause}"
                  for r in missed]
    if errors:
        lines += ["", "## Rows that failed", ""] + [f"- {e}" for e in errors]
    if "time" in details:
        t = details["time"]
        lines += ["", "## Where the time goes (medians)", "",
                  "| part | seconds |", "| --- | --- |"]
        lines += [f"| pipeline: `{k}` stages | {v:.1f} |"
                  for k, v in sorted(t["stage_seconds_by_kind"].items())]
        lines += [f"| pipeline: DVC itself (total - stages) | {t['dvc_overhead_seconds']:.1f} |",
                  f"| pipeline: processes importing TensorFlow / MLflow | "
                  f"{t['pipeline_processes_with_tensorflow']:.0f} / "
                  f"{t['pipeline_processes_with_mlflow']:.0f} |"]
        lines += [f"| books: `{k}` | {v:.1f} |" for k, v in t["books_script_seconds"].items()]
        lines += [f"| import in a fresh process: {k} | {v:.2f} |"
                  for k, v in t["import_seconds"].items()]
        lines += [f"| {side}: imports per full run, estimated | {v:.0f} |"
                  for side, v in t.get("import_tax_seconds", {}).items()]
        lines += [f"| full run {i + 1}: 1-min load average before/after each side | " + ", ".join(
            f"{k.replace('_load_', ' ')} {v}" for k, v in loads.items()) + " |"
            for i, loads in enumerate(t.get("load_average", []))]
    if "peak_rss_mb" in details:
        rss = details["peak_rss_mb"]
        lines += ["", "## Peak RSS per stage and script (MB, medians)", "",
                  "| process | peak RSS |", "| --- | --- |"]
        lines += [f"| {k} | {v:.0f} |" for k, v in rss["stages"].items()]
        lines += [f"| books: {k} | {v:.0f} |" for k, v in rss["books"].items()]
    return "\n".join(lines) + "\n"


def git_commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"],
                           capture_output=True, text=True).stdout.strip()
    return (out.stdout.strip() or "?") + ("+dirty" if dirty else "")


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
    if args.epochs:
        for cfg in params["models"].values():
            cfg["epochs"] = min(cfg["epochs"], args.epochs)
            if cfg.get("kfold"):
                cfg["kfold"]["epochs"] = min(cfg["kfold"]["epochs"], args.epochs)
    return params, {m: v["dataset"] for m, v in params["models"].items()}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
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
    parser.add_argument("--noop-repeats", type=int, default=5)
    parser.add_argument("--import-repeats", type=int, default=3,
                        help="fresh-process import timings, for the time row's causes")
    parser.add_argument("--throughput-epochs", type=int, default=3)
    parser.add_argument("--throughput-repeats", type=int, default=3)
    parser.add_argument("--sweep-model", default=None,
                        help=f"row 5's model (default: first of {', '.join(SWEEP_MODELS)})")
    parser.add_argument("--sweep-trials", type=int, default=8)
    parser.add_argument("--sweep-epochs", type=int, default=3)
    parser.add_argument("--change", default=None,
                        help="the param the rerun row toggles (default "
                             "datasets.imdb.load.num_words, else the first model's epochs)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="cap every model's epochs (quick runs; figures then differ "
                             "from the books')")
    parser.add_argument("--mirror", action="append", default=[],
                        help="a mirror folder or URL prefix with the real files (repeatable)")
    parser.add_argument("--cache-dir", default=None, help="a download cache with real files")
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
    return args


def main(argv: list[str] | None = None) -> int:
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
    ws.repro("--glob", "download@*")
    sources = ws.sources()
    for dataset, source in sources.items():
        say(f"  {dataset}: {source['kind']} ({source['detail']})")

    rows: list[Row] = []
    errors: list[str] = []
    out = Path(args.out_dir)
    for name in args.only:
        try:
            rows.extend(ROWS[name](suite))
        except Exception as err:  # one broken row must not cost the others' numbers
            errors.append(f"{name}: {type(err).__name__}: {err}")
            say(f"row {name} FAILED: {err}")
        text = write_results(out, started, args, argv, sources, rows, suite.details, errors)
    print(text)
    say(f"wrote {out / started}.md and .json")
    return 1 if errors else 0


def write_results(out: Path, started: str, args: argparse.Namespace, argv: list[str] | None,
                  sources: dict, rows: list[Row], details: dict, errors: list[str]) -> str:
    """The table so far, after every row: a long run that dies still leaves its numbers."""
    header = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.node()}, {os.cpu_count()} cores, Python "
                   f"{platform.python_version()}",
        "commit": args.commit,
        "repeats": args.repeats,
        "command": "python -m benchmarks " + " ".join(argv if argv is not None
                                                      else sys.argv[1:]),
        "sources": sources,
    }
    text = render(rows, header, details, errors)
    with atomic_file(out / f"{started}.md", "w") as fh:
        fh.write(text)
    write_json(out / f"{started}.json", {"header": header, "rows": [asdict(r) for r in rows],
                                         "details": details, "errors": errors})
    return text
