"""Parallel trials' workers, started while the sweep is still being checked.

The joblib launcher runs trials in loky worker processes, and each worker imports
TensorFlow, Keras and MLflow (~10-20 s on 2 cores) before its first trial. Started only
when Hydra launches, that start-up follows the parent's own checks (which build every
candidate model, so the parent pays the same imports). Started here, as soon as the
launcher is known, it runs alongside them. loky's executor is reusable: the launcher's
`Parallel(n_jobs, backend="loky")` takes these warmed workers (same pids, tested), and
each then pays per trial only what differs between trials, for the whole sweep (see
`keep_worker`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("pipeline.sweep")
JOBLIB = "hydra_plugins.hydra_joblib_launcher"
LEAK_GUARD = "_USE_PSUTIL"  # loky's worker loop checks its memory after each task if true


def workers_wanted(config: DictConfig) -> int:
    """How many joblib workers the composed sweep config will ask for (0: not joblib)."""
    target = str(OmegaConf.select(config, "hydra.launcher._target_", default="") or "")
    if not target.startswith(JOBLIB):
        return 0
    jobs = int(OmegaConf.select(config, "hydra.launcher.n_jobs", default=1) or 1)
    return (os.cpu_count() or 1) if jobs == -1 else jobs


def warm_worker() -> int:
    """In a worker: import what every trial needs, without starting TensorFlow's runtime
    (a trial still sets its thread count first: pipeline/trials.py). Returns its pid."""
    import keras  # noqa: F401
    import mlflow  # noqa: F401
    import tensorflow  # noqa: F401

    import pipeline.live
    import pipeline.training
    import pipeline.trials  # noqa: F401

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


class Warmup:
    """Start the workers in a background thread; `join` before the launcher needs them."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.pids: list[int] = []

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

        def run() -> None:
            from joblib import Parallel, delayed

            try:
                self.pids = Parallel(**options)(delayed(warm_worker)() for _ in range(jobs))
            except Exception as err:  # the launcher starts its own workers as it would have
                log.debug("sweep: warming the workers failed: %s", err)

        self.thread = threading.Thread(target=run, name="sweep-workers", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
            if self.pids:
                log.info("sweep: %d workers ready (pids %s), their imports done while the "
                         "sweep was checked", len(set(self.pids)),
                         ", ".join(map(str, sorted(set(self.pids)))))
