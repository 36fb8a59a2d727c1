"""Parallel trials' workers, started while the sweep is still being checked.

The joblib launcher runs trials in loky worker processes, and each worker imports
TensorFlow, Keras and MLflow (~10-20 s on 2 cores) before its first trial. Started only
when Hydra launches, that start-up follows the parent's own checks (which build every
candidate model, so the parent pays the same imports). Started here, as soon as the
launcher is known, it runs alongside them. loky's executor is reusable: the launcher's
`Parallel(n_jobs, backend="loky")` takes these warmed workers (same pids, tested), and
each then pays per trial only what differs between trials.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("pipeline.sweep")
JOBLIB = "hydra_plugins.hydra_joblib_launcher"


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

    return os.getpid()


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
