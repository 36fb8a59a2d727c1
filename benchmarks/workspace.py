"""The throw-away project every row runs in, and what one command in it measured.

The workspace is `pipeline.scaffold` (the same project a clone is) plus what only the
suite needs: a folder of per-process records, and an environment that puts the hook
(benchmarks/hook/sitecustomize.py) on PYTHONPATH so every Python process a command
starts - dvc, each stage, each books' script, each sweep worker - reports its wall
time, peak RSS and heavy imports when it exits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import layout
from pipeline.console import QUIET_ENV
from pipeline.scaffold import scaffold, write_params

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
    """Progress on stderr: stdout carries only the final table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Proc:
    """One Python process that exited during a command (written by the hook)."""

    name: str
    seconds: float
    rss_mb: float
    children_rss_mb: float
    imported: list[str]

    @property
    def peak_mb(self) -> float:
        """Its own peak or its largest child's (e.g. a joblib worker), whichever is higher."""
        return max(self.rss_mb, self.children_rss_mb)


@dataclass
class Timed:
    """One command: its wall time, its top-level Python processes, and their children
    (Python processes started by another recorded non-dvc process: joblib's workers,
    forked copies)."""

    seconds: float
    procs: list[Proc]
    stdout: str = ""
    children: list[Proc] = field(default_factory=list)


def proc_name(argv: list[str]) -> str:
    """'train@mnist_dense', 'report', 'books:imdb_dense', 'books:sgd_baseline@imdb', 'dvc'."""
    path = Path(argv[0]) if argv else Path("?")
    arg = argv[1] if len(argv) > 1 and not argv[1].startswith("-") else None
    if path.parent.name == "pipeline":
        return path.stem + (f"@{arg}" if arg else "")
    if path.parent.name == "books":
        return "books:" + path.stem + (f"@{arg}" if arg else "")
    return path.stem or "?"


def is_stage(name: str) -> bool:
    """A process `dvc repro` ran as a stage ('train@mnist_dense', 'check', 'report')."""
    return "@" in name or name in ("check", "report")


class Workspace:
    """A copy of the project (code, dvc.yaml, params) with its own git, DVC and MLflow."""

    def __init__(self, path: Path, params: dict[str, Any]) -> None:
        self.path = path
        self.params = params
        self.logs = path.parent / f"{path.name}-procs"
        self.site_cache = Path(f"{path}-dvc-site")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.update(QUIET_ENV)
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = f"{HOOK}{os.pathsep}{path}"  # the hook, and `pipeline` for books/
        self.env = env
        self._runs = 0

    def create(self) -> None:
        """A fresh scaffold (nothing of an earlier run's outputs or DVC cache survives)."""
        for old in (self.path, self.logs, self.site_cache):
            shutil.rmtree(old, ignore_errors=True)
        scaffold(self.path, self.params, self.env, site_cache=self.site_cache, commit=False)
        self.logs.mkdir()

    def get(self, key: str) -> Any:
        """A dotted params key, e.g. 'datasets.imdb.load.num_words'."""
        node: Any = self.params
        for part in key.split("."):
            node = node[part]
        return node

    def set(self, key: str, value: Any) -> None:
        """Change one dotted params key and rewrite params.yaml (what `dvc repro` reads)."""
        *parents, last = key.split(".")
        node: Any = self.params
        for part in parents:
            node = node[part]
        node[last] = value
        write_params(self.path, self.params)

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
        # Children count in their parent's children_rss: kept apart, not as processes of
        # their own (dvc's children are the stages: those are processes of their own).
        parents = {rec["pid"] for rec in records if proc_name(rec["argv"]) != "dvc"}
        procs: list[Proc] = []
        children: list[Proc] = []
        for rec in records:
            proc = Proc(proc_name(rec["argv"]), rec["seconds"], rec["maxrss_kb"] / 1024,
                        rec["children_maxrss_kb"] / 1024, rec["imported"])
            (children if rec["ppid"] in parents else procs).append(proc)
        return Timed(seconds, procs, result.stdout, children)

    def repro(self, *args: str) -> Timed:
        """`dvc repro` as a user runs it: every stage is a process the hook records."""
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
        """What the pipeline's evaluate (or baseline) stage wrote: the side to compare."""
        return json.loads((self.path / layout.RESULTS / dataset / model_or_baseline
                           / "metrics.json").read_text())

    def manifest(self, dataset: str) -> dict[str, Any] | None:
        """The prepared data's manifest (rows, shapes, bytes), None before `prepare`."""
        return layout.manifest_or_none(layout.prepared_dir(self.path / layout.DATA, dataset))

    def sources(self) -> dict[str, dict[str, str]]:
        """Where each dataset's raw files came from (canonical, mirror, bundled, ...)."""
        out = {}
        for name in sorted(self.params["datasets"]):
            info = layout.read_source(layout.raw_dir(self.path / layout.DATA, name))
            if info is not None:
                out[name] = {k: str(info.get(k, "")) for k in ("kind", "detail")}
        return out
