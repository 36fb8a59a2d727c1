"""A sweep's durable record in MLflow: one parent run in the dataset's experiment (overrides,
search space, launcher, objective, best trial), one child run per trial.

MLflow is also the resume log: a trial is keyed by what decides its result (the model's
effective config, the seed, the prepared data, the training code: training.training_key),
so rerunning an interrupted sweep finds its finished trials and reuses their values. A
parent or trial left RUNNING by a killed process is ended KILLED when the next sweep of
that model starts; a sweep that fails ends its parent FAILED with the reason.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline import layout, tables
from pipeline.console import setup_logging, source_banner
from pipeline.errors import DataError
from pipeline.files import clean_stale
from pipeline.sweep_plan import Plan
from pipeline.sweep_runs import best_of, children, step, sweep_key
from pipeline.tables import columns_of, csv_text

log = logging.getLogger("pipeline.sweep")

OPEN: set[str] = set()  # parent runs this process opened and hasn't ended (sweep.main ends them)


class Abort(BaseException):
    """An error raised in a Hydra callback, carried past Hydra, which would turn it into a
    warning and go on; pipeline.sweep unwraps it into its one-line error."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _escalate(step_fn) -> None:
    try:
        step_fn()
    except Exception as err:
        raise Abort(err) from err


class SweepTracking(Callback):
    """Hydra callback: the parent run at the start, the summary at the end. Every setting was
    checked before Hydra started (sweep_plan.check_sweep, run by pipeline.sweep)."""

    def __init__(self) -> None:
        self.parent_id: str | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        setup_logging()
        # The Optuna sweeper's study/storage/best lines: our summary says it once, clearer.
        logging.getLogger("hydra_plugins.hydra_optuna_sweeper").setLevel(logging.WARNING)
        if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        _escalate(lambda: self._start(config))

    def _start(self, config: DictConfig) -> None:
        import mlflow

        from pipeline import run_log, tracking
        from pipeline.sweep_plan import (
            count_trials,
            make_plan,
            param_overrides,
            params_of,
            parse,
        )

        params = params_of(config)
        arguments = list(config.hydra.overrides.task)
        space = {str(k): str(v) for k, v in
                 (OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}).items()}
        swept = param_overrides(parse(arguments + [f"{k}={v}" for k, v in space.items()]))
        plan = make_plan(config.sweep, params, [o.key_or_group for o in swept])
        total = count_trials(config, swept)
        join_ray_cluster(config)  # before any run: a cluster that isn't there stops us here
        manifest = layout.read_manifest(layout.prepared_dir(layout.DATA, plan.dataset))
        banner = source_banner(plan.dataset, manifest["source"])
        if banner:
            log.warning("%s", banner)
        tracking.connect(params)
        client = mlflow.MlflowClient()
        experiment = tracking.experiment_id(client, plan.dataset)
        tracking.end_abandoned(client, experiment, step(plan.model))  # parents and trials
        key = sweep_key(plan, params, config, arguments, space, manifest)
        sweeper = str(config.hydra.sweeper._target_).rsplit(".", 1)[-1]
        launcher = str(config.hydra.launcher._target_).rsplit(".", 1)[-1]
        tags = {"sweep.role": "parent", "sweep.id": key, "sweep.model": plan.model,
                "sweep.objective": plan.objective, "sweep.direction": plan.direction,
                "sweep.dir": str(Path(config.hydra.sweep.dir).resolve()),
                "sweep.launcher": launcher, "sweep.trials": str(total),
                tracking.STEP_TAG: step(plan.model), **tracking.owner_tags(),
                **run_log.run_tags(plan.dataset, manifest, "sweep", "keras")}
        previous = client.search_runs(
            [experiment], f"tags.`sweep.id` = '{key}' and tags.`sweep.role` = 'parent'",
            max_results=1, order_by=["attributes.start_time DESC"]) if config.sweep.resume else []
        self.started_ms = int(time.time() * 1000)
        if previous:
            self.parent_id = previous[0].info.run_id
            runs = children(client, experiment, self.parent_id)
            client.update_run(self.parent_id, status="RUNNING")
            if "pipeline.error" in previous[0].data.tags:  # why it ended last time: not now
                client.delete_tag(self.parent_id, "pipeline.error")
            for name, value in tags.items():
                client.set_tag(self.parent_id, name, value)
            finished = sum(r.info.status == "FINISHED" for r in runs)
            log.info("sweep %s: resuming sweep %s (run %s): %d finished trials are reused",
                     plan.model, key, self.parent_id, finished)
        else:
            run = client.create_run(experiment, tags=tags,
                                    run_name=f"sweep {plan.model} {time.strftime('%m-%d %H:%M')}")
            self.parent_id = run.info.run_id
            run_log.log_params(client, self.parent_id, {
                "model": plan.model, "objective": plan.objective, "direction": plan.direction,
                "sweeper": sweeper, "overrides": json.dumps(arguments),
                "search_space": json.dumps(space)})
            client.log_text(self.parent_id, OmegaConf.to_yaml(config.hydra.sweeper),
                            "sweeper.yaml")
        OPEN.add(self.parent_id)
        for trial_dir in Path(config.hydra.sweep.dir).parent.glob("*/*"):
            if trial_dir.is_dir():  # not a sweep's multirun.yaml
                clean_stale(trial_dir / "scratch")  # what killed trials left in earlier sweeps
        log.info("sweep %s on %s: %d trials, %s, %s launcher, objective %s (%s); MLflow "
                 "experiment '%s', parent run %s", plan.model, plan.dataset, total, sweeper,
                 launcher, plan.objective, plan.direction, plan.dataset, self.parent_id)
        self.plan, self.experiment = plan, experiment

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id is not None:
            _escalate(lambda: summarize(self.parent_id, self.experiment, self.plan,
                                        Path(config.hydra.sweep.dir), self.started_ms))


def end_open(error: BaseException) -> None:
    """End the parent runs this process opened as FAILED (or KILLED) after `error`."""
    import mlflow

    from pipeline.tracking import end_failed

    for run_id in sorted(OPEN):
        end_failed(mlflow.MlflowClient(), run_id, error)
    OPEN.clear()


def join_ray_cluster(config: DictConfig) -> None:
    """Connect to a running Ray cluster ourselves: Hydra's Ray launcher 1.2.2 always passes
    `object_store_memory` to ray.init, which Ray refuses when joining a cluster. It skips
    its own ray.init when Ray is already up, so it then just submits the trials."""
    from pipeline.errors import ConfigError

    address = OmegaConf.select(config, "hydra.launcher.ray.init.address", default=None)
    if not address:
        return  # a local Ray: the launcher starts it with hydra.launcher.ray.init
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as err:
            raise ConfigError(f"hydra.launcher.ray.init.address: no Ray cluster answers at "
                              f"{address} ({err}). Fix: start it (`ray start --head`) or "
                              "check the address") from None


def summarize(parent_id: str, experiment: str, plan: Plan, sweep_dir: Path,
              started_ms: int) -> list[dict[str, Any]]:
    """The trials table (printed, saved beside the sweep's outputs, logged to the parent);
    tag the best trial and record it on the parent."""
    import mlflow

    from pipeline.files import atomic_file
    from pipeline.run_log import log_metrics

    client = mlflow.MlflowClient()
    runs = sorted(children(client, experiment, parent_id),
                  key=lambda r: int(r.data.tags.get("sweep.trial", "0")))
    best = best_of(runs, plan.objective)
    rows = []
    for run in runs:
        tags, logged = run.data.tags, run.data.metrics
        swept = dict(o.split("=", 1) for o in json.loads(tags.get("sweep.overrides", "[]")))
        status = {"FINISHED": "done", "FAILED": "failed", "KILLED": "killed"}.get(
            run.info.status, run.info.status.lower())
        if status == "done" and run.info.start_time < started_ms:
            status = "reused"
        rows.append({
            "trial": tags.get("sweep.trial", "?"),
            **{k.removeprefix(f"models.{plan.model}."): v for k, v in swept.items()},
            plan.objective: logged.get("objective"),
            "epochs run": None if "epochs" not in logged else int(logged["epochs"]),
            "seconds": None if "train_seconds" not in logged else round(
                logged["train_seconds"], 1),
            "status": status, "best": "*" if best is not None and run is best else "",
            "run_id": run.info.run_id})
        if best is not None:
            client.set_tag(run.info.run_id, "sweep.best", str(run is best).lower())
    table = markdown_table(rows)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    with atomic_file(sweep_dir / "summary.md", "w") as fh:
        fh.write(table)
    with atomic_file(sweep_dir / "summary.csv", "w") as fh:
        fh.write(csv_text(rows))
    client.log_artifact(parent_id, str(sweep_dir / "summary.md"))
    client.log_artifact(parent_id, str(sweep_dir / "summary.csv"))
    if best is not None:
        value = best.data.metrics["objective"]
        log_metrics(client, parent_id, {"best_objective": value, f"best_{plan.objective}": value,
                                        "trials": len(rows)})
        for name, tag in (("sweep.best_run_id", best.info.run_id),
                          ("sweep.best_trial", best.data.tags.get("sweep.trial", "?")),
                          ("sweep.best_overrides", best.data.tags.get("sweep.overrides", "[]"))):
            client.set_tag(parent_id, name, tag)
    print(f"\nsweep {plan.model}: {len(rows)} trials, objective {plan.objective} "
          f"({plan.direction})\n{table}", flush=True)
    if best is None:
        failure = next((r.data.tags.get("pipeline.error") for r in runs
                        if r.data.tags.get("pipeline.error")), "no trial ran")
        raise DataError(f"sweep {plan.model}: no trial finished (first error: {failure}). "
                        f"Fix: see the trials in MLflow (parent run {parent_id}), correct the "
                        "cause and rerun the same command (finished trials are reused)")
    client.set_terminated(parent_id, "FINISHED")
    OPEN.discard(parent_id)
    if best is not None:
        print(f"best: trial {best.data.tags.get('sweep.trial')} {plan.objective}="
              f"{best.data.metrics['objective']:.4f} (run {best.info.run_id}). Make it the "
              f"default: python -m pipeline.promote {plan.model}\nsaved: {sweep_dir}/summary.md",
              flush=True)
    return rows


def cell(value: Any) -> str:
    if isinstance(value, str):  # an override's value: shorten long floats for people
        try:
            number = float(value)
        except ValueError:
            return value
        return value if "." not in value or len(value) < 8 else f"{number:.4g}"
    if isinstance(value, float):
        return repr(round(value, 4))
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(no trials)\n"
    columns = columns_of(rows)
    return "\n".join(tables.markdown_table(
        columns, ([cell(row.get(c)) for c in columns] for row in rows))) + "\n"
