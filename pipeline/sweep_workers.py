"""Parallel trials' workers, started while the sweep is still being checked, and the checks
of its candidate models, run on them.

The joblib launcher runs trials in loky worker processes, and each worker imports
TensorFlow, Keras and MLflow (~10-20 s on 2 cores) before its first trial. Started only
when Hydra launches, that start-up would follow the sweep's checks. Started here, as soon
as the launcher is known, it runs while the parent composes every candidate's params; the
workers then build the candidate models with Keras (`check_chunk`, one chunk each; one
per distinct model, `keras_asked`), so the parent never imports TensorFlow (tested) and,
while it waits, imports only what its parent run needs (MLflow). loky's executor is
reusable: the launcher's `Parallel(n_jobs, backend="loky")` takes these warmed workers
(same pids, tested), and each then pays per trial only what differs between trials, for
the whole sweep (see `keep_worker`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError

log = logging.getLogger("pipeline.sweep")
JOBLIB = "hydra_plugins.hydra_joblib_launcher"
LEAK_GUARD = "_USE_PSUTIL"  # loky's worker loop checks its memory after each task if true
Candidate = tuple[str, DictConfig]  # (the override, the trial's params with it)
Refusal = tuple[str, str]  # (the override, why its params were refused, one line)


def workers_wanted(config: DictConfig) -> int:
    """How many joblib workers the composed sweep config will ask for (0: not joblib)."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    if not target.startswith(JOBLIB):
        return 0
    jobs = int(OmegaConf.select(config, "hydra.launcher.n_jobs", default=1) or 1)
    return (os.cpu_count() or 1) if jobs == -1 else jobs


def warm_worker(sweep: dict[str, Any]) -> int:
    """In a worker: import what every trial needs, and give TensorFlow this worker's share
    of the cores (`sweep`: the sweep options) before anything starts its runtime: the
    candidates' checks here do, and the thread counts can't change after that. Returns its
    pid."""
    from pipeline.console import keras_without_extras, lighter_gc, setup_logging

    lighter_gc()
    keras_without_extras()  # as in a stage process
    import keras  # noqa: F401
    import mlflow  # noqa: F401
    import tensorflow  # noqa: F401

    import pipeline.live
    import pipeline.training  # noqa: F401
    from pipeline.trials import prepare_tensorflow

    prepare_tensorflow(OmegaConf.create(sweep))
    setup_logging()  # Keras' notes on each candidate model it checks stay quiet, as in trials
    keep_worker()
    return os.getpid()


def keep_worker() -> None:
    """Turn off loky's leak guard in this worker, so it keeps its imports for every trial.

    With psutil installed, a loky worker measures its memory after its first task (here
    this warm-up) and exits once it has grown 300 MB past that; loky then starts a new
    worker, which imports TensorFlow again. A trial's TensorFlow runtime, data and model
    always grow past the warm-up's size, so the guard replaced both warmed workers in the
    middle of a 12-trial sweep (measured: new pids from trial 6 on, ~10 s with no trial
    running). It guards nothing here: each trial starts by clearing Keras' state
    (pipeline/trials.py). loky has no public switch; this module flag is what its worker
    loop reads after every task."""
    from joblib.externals.loky import process_executor

    if hasattr(process_executor, LEAK_GUARD):  # a loky without it: nothing to turn off
        setattr(process_executor, LEAK_GUARD, False)


def check_chunk(model: str, dataset: str, manifest: dict[str, Any],
                candidates: list[Candidate]) -> tuple[int, Refusal | None]:
    """Keras' checks (`preflight.check_all`) of each candidate's model, in order, up to the
    first refused; its folds against the rows are `rows_refusal`'s, in the parent. Returns
    this process's pid and the refusal as text: a ConfigError pickled back from a worker
    would lose its fields (loky rebuilds it from its message alone), the text is what the
    parent's one-line error shows."""
    from pipeline.preflight import check_all

    for line, params in candidates:
        try:
            check_all(params, {dataset: manifest}, only=[], baseline=False, ask_keras=[model])
        except ConfigError as err:
            return os.getpid(), (line, err.unlocated())
    return os.getpid(), None


def keras_asked(model: str, dataset: str, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates Keras is asked about: the first of each distinct part of the settings
    its answer depends on (pipeline/keras_reads.py). Keras would answer the others alike: a
    sweep over learning rates, epochs or batch sizes builds its model once."""
    from pipeline.keras_reads import keras_reads

    seen: set[str] = set()
    asked = []
    for line, params in candidates:
        reads = json.dumps(keras_reads(params.models[model], params.datasets[dataset]),
                           sort_keys=True, default=str)
        if reads not in seen:
            seen.add(reads)
            asked.append((line, params))
    return asked


def rows_refusal(model: str, dataset: str, manifest: dict[str, Any],
                 candidates: list[Candidate]) -> Refusal | None:
    """The first candidate whose K-fold folds the data's rows refuse (cheap, no Keras): every
    candidate, the ones Keras isn't asked about too."""
    from pipeline.facts import check_rows

    for line, params in candidates:
        try:
            check_rows(params, {dataset: manifest}, [model], baseline=False)
        except ConfigError as err:
            return line, err.unlocated()
    return None


def parent_imports() -> None:
    """What the parent run (pipeline/sweep_record.py) needs, imported while the workers
    import TensorFlow and build the candidate models: otherwise it runs after them, alone.
    A failure here is only a missed head start: the parent run's own imports report it."""
    try:
        import mlflow
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401

        import pipeline.run_log
        import pipeline.sweep_record
        import pipeline.tracking  # noqa: F401
    except Exception as err:
        log.debug("sweep: importing MLflow early failed: %s", err)


class Workers:
    """The joblib launcher's workers: `start` warms them in a background thread (only for
    2 or more), `check` runs the candidates' checks on them (or here, without them), `join`
    before the launcher takes them."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.imports: threading.Thread | None = None
        self.options: dict[str, Any] = {}  # Parallel's, as the launcher will pass them
        self.jobs = 0
        self.pids: list[int] = []  # the warmed workers'
        self.checked_in: list[int] = []  # the processes that ran the candidates' checks

    def start(self, config: DictConfig) -> None:
        jobs = workers_wanted(config)
        if jobs < 2 or self.thread is not None:
            return

        # The launcher's own Parallel arguments: loky reuses an executor only for the same
        # ones (hydra_joblib_launcher's _core.launch: backend loky, numbers as ints).
        launcher = OmegaConf.to_container(config.hydra.launcher, resolve=True)
        options = {k: v for k, v in launcher.items() if k != "_target_"}
        options["backend"] = "loky"
        for key in ("pre_dispatch", "batch_size", "max_nbytes"):
            with contextlib.suppress(TypeError, ValueError):
                options[key] = int(options[key]) if options.get(key) else options.get(key)
        self.options, self.jobs = options, jobs
        sweep = OmegaConf.to_container(config.sweep, resolve=True)

        def run() -> None:
            from joblib import Parallel, delayed

            try:
                self.pids = Parallel(**options)(delayed(warm_worker)(sweep) for _ in range(jobs))
            except Exception as err:  # the launcher starts its own workers as it would have
                log.debug("sweep: warming the workers failed: %s", err)

        self.thread = threading.Thread(target=run, name="sweep-workers", daemon=True)
        self.thread.start()

    def check(self, model: str, dataset: str, manifest: dict[str, Any],
              candidates: list[Candidate]) -> Refusal | None:
        """The first candidate, in order, that the checks refuse (None: all pass): the rows
        of every candidate, here; Keras about those `keras_asked` picks (a candidate it
        skips would get its first alike's answer, which comes earlier)."""
        first_at: dict[str, int] = {}  # an override's first candidate, in the command's order
        for i, (line, _) in enumerate(candidates):
            first_at.setdefault(line, i)
        found = [r for r in (rows_refusal(model, dataset, manifest, candidates),
                             self._ask_keras(model, dataset, manifest,
                                             keras_asked(model, dataset, candidates))) if r]
        return min(found, key=lambda refusal: first_at[refusal[0]]) if found else None

    def _ask_keras(self, model: str, dataset: str, manifest: dict[str, Any],
                   candidates: list[Candidate]) -> Refusal | None:
        """The first of `candidates` that the checks refuse. On the warmed workers, a
        contiguous chunk each, so the first refusal of the first chunk that has one is the
        first overall; here if they couldn't be had or one died."""
        if self.thread is not None and self.imports is None:
            self.imports = threading.Thread(target=parent_imports, name="sweep-imports",
                                            daemon=True)
            self.imports.start()
        self.join_warmup()
        if self.pids and candidates:
            from joblib import Parallel, delayed

            size = math.ceil(len(candidates) / self.jobs)
            try:
                results = Parallel(**self.options)(
                    delayed(check_chunk)(model, dataset, manifest, candidates[i:i + size])
                    for i in range(0, len(candidates), size))
            except Exception as err:  # e.g. a worker killed: loky raises, never hangs
                log.debug("sweep: checking on the workers failed: %s", err)
            else:
                self.checked_in = sorted({pid for pid, _ in results})
                self.join_imports()
                return next((refusal for _, refusal in results if refusal), None)
        self.join_imports()
        pid, refusal = check_chunk(model, dataset, manifest, candidates)
        self.checked_in = [pid]
        return refusal

    def join_warmup(self) -> None:
        if self.thread is not None:
            self.thread.join()

    def join_imports(self) -> None:
        """Before going on: no import is left half-done in a thread if the sweep stops."""
        if self.imports is not None:
            self.imports.join()

    def join(self) -> None:
        self.join_warmup()
        if self.pids:
            log.info("sweep: %d workers ready (pids %s), their imports done while the "
                     "sweep was checked", len(set(self.pids)),
                     ", ".join(map(str, sorted(set(self.pids)))))
