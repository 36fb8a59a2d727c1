"""One sweep trial: train a model config on the prepared data and score it on validation.

It runs `training.fit_and_score`, the code the `train` stage runs, so a trial's value is
what `dvc repro` would get. A trial whose key (config, seed, data, training code) already
finished in this sweep is reused, not retrained. A trial that fails (a NaN loss at a high
learning rate is a normal sweep outcome) is a FAILED child run with the reason, one line
here, and the worst possible value for the sweeper; the sweep goes on.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

from pipeline import layout, metrics
from pipeline.console import die_with_parent, handle_sigterm, setup_logging
from pipeline.errors import DataError, error_line
from pipeline.files import temp_prefix
from pipeline.live import LiveTraining
from pipeline.sweep_plan import (
    Plan,
    make_plan,
    param_overrides,
    params_of,
    parse,
)

log = logging.getLogger("pipeline.sweep")


def prepare_tensorflow(options: DictConfig) -> None:
    """Parallel trials share the cores: give each its slice, before TensorFlow starts."""
    threads = options.threads_per_trial
    if options.parallel_trials > 1 and threads is None:
        threads = max(1, (os.cpu_count() or 1) // options.parallel_trials)
    import tensorflow as tf

    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already set by this worker's first trial
        pass


def fresh_keras() -> None:
    """A worker (or the basic launcher's one process) runs trial after trial: each starts
    from Keras' empty state, as `dvc repro`'s own process does, and the last trial's
    model and graph are let go instead of piling up for the rest of the sweep. No forced
    garbage collection: Python's own frees them, and a full one cost ~0.4 s a trial."""
    import keras

    keras.backend.clear_session(free_memory=False)


def objective_value(plan: Plan, history: dict, summary: dict) -> float:
    value = metrics.figure(plan.objective, history, summary)
    if value is None:
        raise DataError(f"sweep: the trial recorded no '{plan.objective}'. Fix: pick a metric "
                        f"of its history: {', '.join(sorted(history))}")
    return value


def shown(plan: Plan, swept: list[str]) -> str:
    from pipeline.sweep_record import cell

    return ", ".join(f"{key.removeprefix(f'models.{plan.model}.')}={cell(value)}"
                     for key, value in (s.split("=", 1) for s in swept)) or "params.yaml"


def run_trial(cfg: DictConfig) -> float:
    """Train one trial (or reuse its finished record) and return its objective value."""
    import mlflow
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pipeline import run_log, tracking
    from pipeline.arrays import load_split
    from pipeline.files import write_json
    from pipeline.sweep_runs import find_parent, finished_trial, step
    from pipeline.training import fit_and_score, training_key

    hydra_cfg = HydraConfig.get()
    root = Path(hydra_cfg.runtime.cwd)  # the project (a Ray worker starts elsewhere)
    setup_logging()
    overrides = param_overrides(parse(list(hydra_cfg.overrides.task)))
    params = params_of(cfg)
    plan = make_plan(cfg.sweep, params, [o.key_or_group for o in overrides])
    swept = [o.input_line for o in overrides]
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    number = int(hydra_cfg.job.num) if multirun else 0
    out_dir = Path(hydra_cfg.runtime.output_dir)

    prepare_tensorflow(cfg.sweep)
    fresh_keras()  # after the thread settings: it may start TensorFlow's runtime
    prepared = layout.prepared_dir(root / layout.DATA, plan.dataset)
    manifest = layout.read_manifest(prepared)
    key = training_key(params, plan.model, manifest, "pipeline.trials")
    tracking.connect(params, root)
    client = mlflow.MlflowClient()
    experiment = tracking.experiment_id(client, plan.dataset)
    # The sweep's parent run says what this trial needs from the sweep's process: how many
    # trials there are, and which process it is (a trial in another one runs in a worker).
    parent = find_parent(client, experiment, str((root / hydra_cfg.sweep.dir).resolve())) \
        if multirun else None
    total = parent.data.tags.get("sweep.trials") if parent is not None else None
    label = f"trial {number}" + (f"/{total}" if total else "")
    worker = parent is not None and not tracking.owned_here(parent)
    if worker:  # a killed sweep takes this worker with it: its trial ends KILLED, no orphan
        handle_sigterm()  # trains on and logs a result nobody collects
        die_with_parent()
    record = {"trial": number, "overrides": swept, "objective": plan.objective, "key": key,
              "started": time.time(), "pid": os.getpid()}

    if parent is not None and cfg.sweep.resume:
        done = finished_trial(client, experiment, parent.info.run_id, key)
        if done is not None:
            value = done.data.metrics["objective"]
            log.info("%s: %s -> %s=%.4f (finished before, run %s: reused)", label,
                     shown(plan, swept), plan.objective, value, done.info.run_id)
            write_json(out_dir / "trial.json", {**record, "value": value, "reused": True,
                                                "run_id": done.info.run_id, "ended": time.time()})
            return value

    tags = {**run_log.run_tags(plan.dataset, manifest, "sweep", "keras", root),
            "sweep.role": "trial", "sweep.trial": str(number), "sweep.trial_key": key,
            "sweep.model": plan.model, "sweep.overrides": json.dumps(swept),
            tracking.STEP_TAG: step(plan.model), **tracking.owner_tags()}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    run = client.create_run(experiment, tags=tags,
                            run_name=f"trial {number}: {shown(plan, swept)}")
    run_id = run.info.run_id
    try:
        run_log.log_params(client, run_id,
                            run_log.flatten(run_log.run_config(params, plan.model)))
        client.log_inputs(run_id, datasets=run_log.split_inputs(
            params.datasets[plan.dataset], plan.dataset, manifest, run_log.TRAINING_INPUTS))
        live = LiveTraining(client, run)  # its epochs appear as they end
        train_split = load_split(prepared / "train.npz")
        with tempfile.TemporaryDirectory(prefix=temp_prefix(out_dir / "scratch", "tmp"),
                                         dir=out_dir) as scratch:
            _, history, summary = fit_and_score(
                plan.model, params, prepared, manifest, train_split, Path(scratch),
                final_fit=not plan.objective.startswith("kfold_"),
                progress=cfg.sweep.parallel_trials <= 1,  # parallel bars would interleave
                live=live)
        value = objective_value(plan, history, summary)
        live.send()
        run_log.log_summary(client, run_id, history, summary, {"objective": value})
        client.set_terminated(run_id, "FINISHED")
    except BaseException as err:
        status = tracking.end_failed(client, run_id, err)
        if status == "KILLED" and worker:  # the sweep is gone: end quietly (the pool
            os._exit(143)  # would print a traceback)
        if status == "KILLED" or not multirun or not isinstance(err, Exception):
            raise  # a single run's failure, or a stop, is the command's
        # a failed trial is a result of the sweep, not its end
        worst = -math.inf if plan.higher else math.inf
        log.info("%s: %s -> FAILED: %s (run %s)", label, shown(plan, swept), error_line(err),
                 run_id)
        write_json(out_dir / "trial.json", {**record, "value": None, "failed": error_line(err),
                                            "run_id": run_id, "ended": time.time()})
        return worst
    write_json(out_dir / "trial.json", {**record, "value": value, "run_id": run_id,
                                        "history": history, "summary": summary,
                                        "ended": time.time()})
    log.info("%s: %s -> %s=%.4f, %s epochs, %.1fs (run %s)", label, shown(plan, swept),
             plan.objective, value, summary.get("epochs", "-"), summary["train_seconds"], run_id)
    return value
