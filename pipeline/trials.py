"""Sweep trials and their durable record in MLflow: the library behind `pipeline/sweep.py`.

One sweep is one MLflow parent run in the dataset's experiment (its overrides, search
space, launcher, objective, best trial); each trial is a child run (its effective params,
per-epoch metrics, objective). MLflow is also the resume log: a trial is keyed by what
decides its result (the model's effective config, the seed, the prepared data's hashes),
so rerunning an interrupted sweep finds its finished trials and returns their recorded
value instead of training again. Optuna's sampler is seeded from params.yaml, so fed the
same values it proposes the same next trials: Bayesian sweeps resume too, although the
Optuna sweeper keeps its own study in memory only.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from pipeline.config import compose, dataset_config, model_config
from pipeline.console import setup_logging, source_banner
from pipeline.errors import ConfigError, DataError

log = logging.getLogger("pipeline.sweep")

GROUPS = ("launcher", "search_space")  # config groups under conf/, not params.yaml keys
MINIMIZED = ("loss", "mae", "mse", "error")
TOTAL_ENV = "PIPELINE_SWEEP_TRIALS"  # trials in the sweep, for "trial 3/8" lines


@dataclass(frozen=True)
class Plan:
    """What a sweep tunes and by which validation figure."""

    model: str
    dataset: str
    objective: str
    direction: str  # maximize | minimize

    @property
    def higher(self) -> bool:
        return self.direction == "maximize"


# --- config ---------------------------------------------------------------------------


def params_of(cfg: DictConfig) -> DictConfig:
    """The trial's params (params.yaml + overrides), validated like `dvc repro` does."""
    keys = [k for k in cfg if k not in ("sweep", "hydra")]
    return compose(OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True))


def parse(arguments: list[str]) -> list[Override]:
    return OverridesParser.create().parse_overrides(arguments)


def param_overrides(overrides: list[Override]) -> list[Override]:
    """The overrides that change params.yaml keys (not conf/ groups or sweep options)."""
    return [o for o in overrides
            if o.key_or_group not in GROUPS and not o.key_or_group.startswith(("sweep.", "hydra"))]


def make_plan(options: DictConfig, params: DictConfig, keys: list[str]) -> Plan:
    """Resolve the model, objective and direction; refuse what a sweep can't honestly tune."""
    for key in keys:
        if not key.startswith("models.") or key.count(".") < 2:
            raise ConfigError(
                f"sweep: '{key}' is not a model setting. Trials train on the data that `dvc "
                "repro` prepared, so a sweep tunes models.<model>.* only. Fix: to change data "
                f"or seed, edit params.yaml (or `dvc exp run -S {key}=...`) and run `dvc repro`")
    named = sorted({key.split(".")[1] for key in keys})
    model = options.model
    if model is None:
        if len(named) != 1:
            raise ConfigError(
                f"sweep.model: not set, and the overrides name {len(named)} models "
                f"({', '.join(named) or 'none'}). Fix: add sweep.model=<one of: "
                f"{', '.join(params.models)}> or a search space (search_space=<model>)")
        model = named[0]
    cfg = model_config(params, model)
    if set(named) - {model}:
        raise ConfigError(f"sweep: the overrides tune {', '.join(named)}, but a sweep trains "
                          f"one model (sweep.model={model}). Fix: sweep one model at a time")
    task = dataset_config(params, cfg.dataset).task
    from pipeline.tracking import selection_metric

    default, higher = selection_metric(task, cfg.kfold is not None)
    objective = options.objective or default
    allowed = {"val_loss", *(f"val_{m}" for m in cfg.metrics)}
    if cfg.kfold is not None:
        allowed.add(f"kfold_val_{cfg.metrics[0]}_mean")
    if objective not in allowed:
        raise ConfigError(
            f"sweep.objective: '{objective}' is not a validation metric of models.{model}. "
            f"Fix: use one of: {', '.join(sorted(allowed))} (the test split never chooses)")
    direction = options.direction
    if direction is None and objective == default:
        direction = "maximize" if higher else "minimize"
    elif direction is None:
        direction = "minimize" if any(w in objective for w in MINIMIZED) else "maximize"
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"sweep.direction: '{direction}' is not maximize or minimize. "
                          "Fix: pick one of those (or null: from the metric)")
    return Plan(model, cfg.dataset, objective, direction)


def candidate_values(override: Override) -> list[str]:
    """Every value a sweep may give this key (both ends of an interval)."""
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if override.is_choice_sweep() or override.is_range_sweep():
        return [str(v) for v in override.sweep_iterator(transformer=Transformer.encode)]
    if override.is_interval_sweep():
        interval = override.value()
        return [str(interval.start), str(interval.end)]
    raise ConfigError(f"sweep: '{override.input_line}': this kind of sweep is not supported. "
                      "Fix: use a list (a,b,c), range(), or interval() with Optuna")


def check_values(params: DictConfig, plan: Plan, overrides: list[Override]) -> None:
    """Compose and build every value of every swept key now, so no trial fails on config.

    Unknown keys and wrong types fail in Hydra/OmegaConf, ranges in pipeline/config.py,
    impossible layer arguments in Keras itself; each error names the key and value."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.errors import ConfigCompositionException

    from pipeline.models import build_model
    from pipeline.prepare import read_manifest

    manifest = read_manifest(Path("data") / plan.dataset / "prepared")
    split = manifest["splits"]["train"]
    base = OmegaConf.to_container(params)
    for override in overrides:
        key = override.get_key_element()
        for value in candidate_values(override):
            candidate = OmegaConf.create(base)
            OmegaConf.set_struct(candidate, True)
            try:
                ConfigLoaderImpl._apply_overrides_to_config(parse([f"{key}={value}"]), candidate)
                checked = compose(candidate)
                build_model(plan.model, checked.models[plan.model], tuple(split["x_shape"][1:]),
                            split["sparse"])
            except ConfigCompositionException as err:
                raise ConfigError(f"sweep: {key}={value}: {str(err).splitlines()[0]} Fix: check "
                                  f"the key against models.{plan.model} in params.yaml") from None
            except ConfigError as err:
                raise ConfigError(f"sweep: {key}={value}: {err}") from None
            except (ValueError, TypeError) as err:  # Keras refusing a layer argument
                raise ConfigError(f"sweep: {key}={value}: Keras refuses it: "
                                  f"{str(err).splitlines()[0]} Fix: use a valid value") from None


def count_trials(config: DictConfig, overrides: list[Override]) -> int:
    if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
        return int(config.hydra.sweeper.n_trials)
    total = 1
    for override in overrides:
        if override.is_sweep_override():
            total *= len(candidate_values(override))
    return total


def preflight(config: DictConfig) -> tuple[Plan, DictConfig, list[str], dict[str, str], int]:
    """Everything checked before the first trial: (plan, params, arguments, space, trials)."""
    params = params_of(config)
    arguments = list(config.hydra.overrides.task)
    space = {str(k): str(v) for k, v in
             (OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}).items()}
    overrides = param_overrides(parse(arguments + [f"{k}={v}" for k, v in space.items()]))
    plan = make_plan(config.sweep, params, [o.key_or_group for o in overrides])
    check_values(params, plan, overrides)
    return plan, params, arguments, space, count_trials(config, overrides)


# --- the record in MLflow ---------------------------------------------------------------


def digest(payload: Any, size: int = 16) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:size]


def data_hashes(manifest: dict) -> list[str]:
    return [manifest["splits"][s]["sha256"] for s in ("train", "val") if s in manifest["splits"]]


def trial_key(params: DictConfig, model: str, manifest: dict) -> str:
    """Same key, same result: the model's effective config, the seed and the data."""
    return digest({"seed": params.seed, "data": data_hashes(manifest),
                   "model": OmegaConf.to_container(params.models[model], resolve=True)})


def sweep_key(plan: Plan, params: DictConfig, config: DictConfig, arguments: list[str],
              space: dict[str, str], manifest: dict) -> str:
    """Same key, same sweep: what it searches and how; not the launcher or the trial count,
    so a sweep can be resumed on another launcher or extended with more trials."""
    sampler = OmegaConf.select(config, "hydra.sweeper.sampler", default=None)
    tuned = sorted(a for a in arguments if a.startswith("models."))
    return digest({"plan": [plan.model, plan.objective, plan.direction], "arguments": tuned,
                   "space": space, "seed": params.seed, "data": data_hashes(manifest),
                   "sampler": OmegaConf.to_container(sampler, resolve=True) if sampler else None,
                   "base": OmegaConf.to_container(params.models[plan.model], resolve=True)})


def experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return experiment.experiment_id if experiment else client.create_experiment(name)


def find_parent(client, experiment: str, sweep_dir: str):
    """The running sweep that writes to this directory (found by tag: works on any worker
    that reaches the tracking store, a Ray node included)."""
    runs = client.search_runs([experiment], f"tags.`sweep.dir` = '{sweep_dir}' and "
                              "tags.`sweep.role` = 'parent' and attributes.status = 'RUNNING'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def children(client, experiment: str, parent_id: str) -> list:
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              max_results=5000, order_by=["attributes.start_time ASC"])


def finished_trial(client, experiment: str, parent_id: str, key: str):
    runs = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent_id}' and "
        f"tags.`sweep.trial_key` = '{key}' and attributes.status = 'FINISHED'", max_results=1)
    return runs[0] if runs else None


def best_of(runs: list, plan_higher: bool):
    done = [r for r in runs if r.info.status == "FINISHED" and "objective" in r.data.metrics]
    if not done:
        return None
    pick = max if plan_higher else min
    return pick(done, key=lambda r: r.data.metrics["objective"])


class SweepTracking(Callback):
    """Hydra callback: preflight checks, the parent run, and the summary at the end."""

    def __init__(self) -> None:
        self.parent_id: str | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        setup_logging()
        _exit_on_error(lambda: preflight(config))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        setup_logging()
        # The Optuna sweeper's study/storage/best lines: our summary says it once, clearer.
        logging.getLogger("hydra_plugins.hydra_optuna_sweeper").setLevel(logging.WARNING)
        if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        _exit_on_error(lambda: self._start(config))

    def _start(self, config: DictConfig) -> None:
        import mlflow

        from pipeline import tracking
        from pipeline.prepare import read_manifest

        plan, params, arguments, space, total = preflight(config)
        manifest = read_manifest(Path("data") / plan.dataset / "prepared")
        banner = source_banner(plan.dataset, manifest["source"])
        if banner:
            log.warning("%s", banner)
        tracking.connect(params)
        client = mlflow.MlflowClient()
        experiment = experiment_id(client, plan.dataset)
        key = sweep_key(plan, params, config, arguments, space, manifest)
        sweeper = str(config.hydra.sweeper._target_).rsplit(".", 1)[-1]
        launcher = str(config.hydra.launcher._target_).rsplit(".", 1)[-1]
        tags = {"sweep.role": "parent", "sweep.id": key, "sweep.model": plan.model,
                "sweep.objective": plan.objective, "sweep.direction": plan.direction,
                "sweep.dir": str(Path(config.hydra.sweep.dir).resolve()),
                "sweep.launcher": launcher, "sweep.trials": str(total),
                **tracking.run_tags(plan.dataset, manifest, "sweep", "keras")}
        previous = client.search_runs(
            [experiment], f"tags.`sweep.id` = '{key}' and tags.`sweep.role` = 'parent'",
            max_results=1, order_by=["attributes.start_time DESC"]) if config.sweep.resume else []
        self.started_ms = int(time.time() * 1000)
        if previous:
            self.parent_id = previous[0].info.run_id
            runs = children(client, experiment, self.parent_id)
            for run in runs:
                if run.info.status == "RUNNING":  # cut off by the interruption
                    client.set_terminated(run.info.run_id, "KILLED")
            client.update_run(self.parent_id, status="RUNNING")
            for name, value in tags.items():
                client.set_tag(self.parent_id, name, value)
            finished = sum(r.info.status == "FINISHED" for r in runs)
            log.info("sweep %s: resuming sweep %s (run %s): %d finished trials are reused",
                     plan.model, key, self.parent_id, finished)
        else:
            run = client.create_run(experiment, tags=tags,
                                    run_name=f"sweep {plan.model} {time.strftime('%m-%d %H:%M')}")
            self.parent_id = run.info.run_id
            tracking.log_params(client, self.parent_id, {
                "model": plan.model, "objective": plan.objective, "direction": plan.direction,
                "sweeper": sweeper, "overrides": json.dumps(arguments),
                "search_space": json.dumps(space)})
            client.log_text(self.parent_id, OmegaConf.to_yaml(config.hydra.sweeper),
                            "sweeper.yaml")
        os.environ[TOTAL_ENV] = str(total)
        join_ray_cluster(config)
        log.info("sweep %s on %s: %d trials, %s, %s launcher, objective %s (%s); MLflow "
                 "experiment '%s', parent run %s", plan.model, plan.dataset, total, sweeper,
                 launcher, plan.objective, plan.direction, plan.dataset, self.parent_id)
        self.plan, self.experiment = plan, experiment

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id is not None:
            summarize(self.parent_id, self.experiment, self.plan,
                      Path(config.hydra.sweep.dir), self.started_ms)


def join_ray_cluster(config: DictConfig) -> None:
    """Connect to a running Ray cluster ourselves: Hydra's Ray launcher 1.2.2 always passes
    `object_store_memory` to ray.init, which Ray refuses when joining a cluster. It skips
    its own ray.init when Ray is already up, so it then just submits the trials."""
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


def _exit_on_error(step) -> None:
    """Stop the sweep before any trial: Hydra would turn a callback's error into a warning."""
    try:
        step()
    except (ConfigError, DataError) as err:
        log.error("ERROR %s", err)
        sys.exit(1)
    except Exception:
        log.exception("ERROR the sweep could not start")
        sys.exit(1)


def summarize(parent_id: str, experiment: str, plan: Plan, sweep_dir: Path,
              started_ms: int) -> list[dict[str, Any]]:
    """The trials table (printed, saved beside the sweep's outputs, logged to the parent);
    tag the best trial and record it on the parent."""
    import mlflow

    from pipeline.files import atomic_file
    from pipeline.tracking import log_metrics

    client = mlflow.MlflowClient()
    runs = sorted(children(client, experiment, parent_id),
                  key=lambda r: int(r.data.tags.get("sweep.trial", "0")))
    best = best_of(runs, plan.higher)
    rows = []
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        swept = dict(o.split("=", 1) for o in json.loads(tags.get("sweep.overrides", "[]")))
        status = {"FINISHED": "done", "FAILED": "failed", "KILLED": "killed"}.get(
            run.info.status, run.info.status.lower())
        if status == "done" and run.info.start_time < started_ms:
            status = "reused"
        rows.append({
            "trial": tags.get("sweep.trial", "?"),
            **{k.removeprefix(f"models.{plan.model}."): v for k, v in swept.items()},
            plan.objective: metrics.get("objective"),
            "epochs": None if "epochs" not in metrics else int(metrics["epochs"]),
            "seconds": None if "train_seconds" not in metrics else round(
                metrics["train_seconds"], 1),
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
    client.set_terminated(parent_id, "FINISHED")
    print(f"\nsweep {plan.model}: {len(rows)} trials, objective {plan.objective} "
          f"({plan.direction})\n{table}", flush=True)
    if best is not None:
        print(f"best: trial {best.data.tags.get('sweep.trial')} {plan.objective}="
              f"{best.data.metrics['objective']:.4f} (run {best.info.run_id}). Make it the "
              f"default: python -m pipeline.promote {plan.model}\nsaved: {sweep_dir}/summary.md",
              flush=True)
    return rows


def _cell(value: Any) -> str:
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
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict[str, Any]]) -> str:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


# --- one trial --------------------------------------------------------------------------


def prepare_tensorflow(options: DictConfig) -> None:
    """Parallel trials share the cores: give each its slice, before TensorFlow starts."""
    threads = options.threads_per_trial
    if options.parallel_trials > 1:
        from pipeline.progress import OFF_ENV

        os.environ[OFF_ENV] = "off"  # one line per trial instead of interleaved epoch bars
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // options.parallel_trials)
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)  # "retracing" notes: each trial builds a new model
    if threads is None:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already set by this worker's first trial
        pass


def objective_value(plan: Plan, history: dict, summary: dict) -> float:
    from pipeline.tracking import best_value

    value = best_value(plan.objective, plan.higher, history, summary)
    if value is None:
        raise DataError(f"sweep: the trial recorded no '{plan.objective}'. Fix: pick a metric "
                        f"of its history: {', '.join(sorted(history))}")
    return value


def run_trial(cfg: DictConfig) -> float:
    """Train one trial (or reuse its finished record) and return its objective value."""
    import mlflow
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from pipeline import tracking
    from pipeline.files import load_split, write_json
    from pipeline.prepare import read_manifest
    from pipeline.train import fit_and_score

    hydra_cfg = HydraConfig.get()
    os.chdir(hydra_cfg.runtime.cwd)  # Ray workers start elsewhere; data/ is relative
    setup_logging()
    overrides = param_overrides(parse(list(hydra_cfg.overrides.task)))
    params = params_of(cfg)
    plan = make_plan(cfg.sweep, params, [o.key_or_group for o in overrides])
    swept = [o.input_line for o in overrides]
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    number = int(hydra_cfg.job.num) if multirun else 0
    total = os.environ.get(TOTAL_ENV)
    label = f"trial {number}" + (f"/{total}" if total else "")
    shown = ", ".join(f"{key.removeprefix(f'models.{plan.model}.')}={_cell(value)}"
                      for key, value in (s.split("=", 1) for s in swept)) or "params.yaml"
    out_dir = Path(hydra_cfg.runtime.output_dir)

    prepare_tensorflow(cfg.sweep)
    prepared = Path("data") / plan.dataset / "prepared"
    manifest = read_manifest(prepared)
    key = trial_key(params, plan.model, manifest)
    tracking.connect(params)
    client = mlflow.MlflowClient()
    experiment = experiment_id(client, plan.dataset)
    parent = find_parent(client, experiment, str(Path(hydra_cfg.sweep.dir).resolve())) \
        if multirun else None
    record = {"trial": number, "overrides": swept, "objective": plan.objective, "key": key,
              "started": time.time()}

    if parent is not None and cfg.sweep.resume:
        done = finished_trial(client, experiment, parent.info.run_id, key)
        if done is not None:
            value = done.data.metrics["objective"]
            log.info("%s: %s -> %s=%.4f (finished before, run %s: reused)", label, shown,
                     plan.objective, value, done.info.run_id)
            write_json(out_dir / "trial.json", {**record, "value": value, "reused": True,
                                                "run_id": done.info.run_id, "ended": time.time()})
            return value

    tags = {**tracking.run_tags(plan.dataset, manifest, "sweep", "keras"),
            "sweep.role": "trial", "sweep.trial": str(number), "sweep.trial_key": key,
            "sweep.model": plan.model, "sweep.overrides": json.dumps(swept)}
    if parent is not None:
        tags["mlflow.parentRunId"] = parent.info.run_id
    run_id = client.create_run(experiment, tags=tags,
                               run_name=f"trial {number}: {shown}").info.run_id
    try:
        train_split = load_split(prepared / "train.npz")
        with tempfile.TemporaryDirectory(dir=out_dir) as scratch:
            _, history, summary = fit_and_score(
                plan.model, params, prepared, manifest, train_split, Path(scratch),
                final_fit=not plan.objective.startswith("kfold_"))
        value = objective_value(plan, history, summary)
        tracking.log_params(client, run_id,
                            tracking.flatten(tracking.run_config(params, plan.model)))
        tracking.log_metric_series(client, run_id, [
            (epoch, {k: v[epoch] for k, v in history.items()})
            for epoch in range(len(history.get("loss", [])))])
        scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float))}
        tracking.log_metrics(client, run_id, {**scalars, "objective": value})
    except BaseException as err:
        client.set_terminated(run_id, "KILLED" if isinstance(err, KeyboardInterrupt)
                              else "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    write_json(out_dir / "trial.json", {**record, "value": value, "run_id": run_id,
                                        "history": history, "summary": summary,
                                        "ended": time.time()})
    log.info("%s: %s -> %s=%.4f, %s epochs, %.1fs (run %s)", label, shown, plan.objective,
             value, summary.get("epochs", "-"), summary["train_seconds"], run_id)
    return value
