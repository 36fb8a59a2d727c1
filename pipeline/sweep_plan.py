"""A sweep's plan, checked before anything runs: what it tunes, by which validation figure,
and every value a trial may get, composed by Hydra and checked by pipeline/validate.py.

`check_sweep` runs in `python -m pipeline.sweep` before Hydra launches anything: no
parent run, no trial, no MLflow call happens unless every candidate value of every
swept key (both ends of an interval) composes (Hydra's compose API: unknown keys,
wrong types, unknown config groups) and passes every check `dvc repro` would apply,
Keras' included (pipeline/preflight.py; on the joblib launcher, run by its workers:
pipeline/sweep_workers.py). Errors are ConfigErrors that name the override.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, Transformer
from omegaconf import DictConfig, OmegaConf

from pipeline import layout, metrics
from pipeline.config import compose, dataset_config, model_config
from pipeline.dvcfiles import target
from pipeline.errors import ConfigError, error_line

if TYPE_CHECKING:
    from pipeline.sweep_workers import Workers

log = logging.getLogger("pipeline.sweep")

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("launcher", "search_space")  # config groups under conf/, not params.yaml keys


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


def parse(arguments: list[str]) -> list[Override]:
    from hydra.errors import OverrideParseException

    try:
        return OverridesParser.create().parse_overrides(arguments)
    except OverrideParseException as err:
        raise ConfigError(f"sweep: {error_line(err)[:300]}. Fix: write overrides as "
                          "key=value, a sweep as key=a,b,c") from None


def param_overrides(overrides: list[Override]) -> list[Override]:
    """The overrides that change params.yaml keys (not conf/ groups or sweep options)."""
    return [o for o in overrides
            if o.key_or_group not in GROUPS and not o.key_or_group.startswith(("sweep.", "hydra"))]


def params_of(cfg: DictConfig) -> DictConfig:
    """The trial's params (params.yaml + overrides), validated like `dvc repro` does."""
    keys = [k for k in cfg if k not in ("sweep", "hydra")]
    return compose(OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True))


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
    default = metrics.selection_metric(task, cfg.kfold is not None)
    objective = options.objective or default
    allowed = {"val_loss", *(f"val_{m}" for m in cfg.metrics)}
    if cfg.kfold is not None:
        allowed |= {f"kfold_val_{m}_mean" for m in ("loss", *cfg.metrics)}
    if objective not in allowed:
        raise ConfigError(
            f"sweep.objective: '{objective}' is not a validation metric of models.{model}. "
            f"Fix: use one of: {', '.join(sorted(allowed))} (the test split never chooses)")
    natural = "maximize" if metrics.higher_is_better(objective) else "minimize"
    direction = options.direction or natural
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"sweep.direction: '{direction}' is not maximize or minimize. "
                          f"Fix: use {natural} (or null: from the metric)")
    if direction != natural:
        raise ConfigError(f"sweep.direction: {direction}, but a higher {objective} is "
                          f"{'better' if natural == 'maximize' else 'worse'}. Fix: use "
                          f"{natural} (or null: from the metric)")
    for key, minimum in (("parallel_trials", 1), ("threads_per_trial", 1)):
        value = options[key]
        if value is not None and value < minimum:
            raise ConfigError(f"sweep.{key}: {value}; expected {minimum} or more. Fix: use 1")
    return Plan(model, cfg.dataset, objective, direction)


def candidate_values(override: Override) -> list[str]:
    """Every value a sweep may give this key (both ends of an interval)."""
    from hydra.core.override_parser.types import Glob

    if isinstance(override.value(), Glob):
        raise ConfigError(f"sweep: {override.input_line}: glob() picks config group options; "
                          "a setting takes a list. Fix: list the values, e.g. key=1,2,3")
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if override.is_choice_sweep() or override.is_range_sweep():
        return [str(v) for v in override.sweep_iterator(transformer=Transformer.encode)]
    if override.is_interval_sweep():
        interval = override.value()
        if not interval.start <= interval.end:
            raise ConfigError(f"sweep: {override.input_line}: the interval runs from "
                              f"{interval.start} down to {interval.end}; expected start <= end. "
                              "Fix: swap the two ends")
        if "log" in (interval.tags or set()) and interval.start <= 0:
            raise ConfigError(f"sweep: {override.input_line}: a log interval from "
                              f"{interval.start}; expected both ends > 0. Fix: start above 0")
        return [str(interval.start), str(interval.end)]
    raise ConfigError(f"sweep: '{override.input_line}': this kind of sweep is not supported. "
                      "Fix: use a list (a,b,c), range(), or interval() with Optuna")


def count_trials(config: DictConfig, overrides: list[Override]) -> int:
    if "optuna" in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")):
        trials = int(config.hydra.sweeper.n_trials)
        if trials < 1:
            raise ConfigError(f"hydra.sweeper.n_trials: {trials}; expected 1 or more. Fix: use "
                              "e.g. hydra.sweeper.n_trials=20")
        return trials
    total = 1
    for override in overrides:
        if override.is_sweep_override():
            total *= len(candidate_values(override))
    return total


def check_launcher(config: DictConfig) -> None:
    """What the launcher will be asked for exists: workers to run trials, a Ray cluster that
    answers (Ray itself would wait minutes for one that doesn't)."""
    import socket

    jobs = OmegaConf.select(config, "hydra.launcher.n_jobs", default=None)
    if jobs is not None and (not isinstance(jobs, int) or jobs == 0 or jobs < -1):
        raise ConfigError(f"hydra.launcher.n_jobs: {jobs}; expected a number of workers (1 or "
                          "more, or -1 for all cores). Fix: use sweep.parallel_trials=2")
    address = OmegaConf.select(config, "hydra.launcher.ray.init.address", default=None)
    if address and address != "auto":
        host, _, port = str(address).rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as err:
            raise ConfigError(f"hydra.launcher.ray.init.address: no Ray cluster answers at "
                              f"{address} ({getattr(err, 'strerror', None) or err}). Fix: start "
                              "it (`ray start --head`) or correct HOST:PORT") from None


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(arguments: list[str]) -> DictConfig:
    """Hydra's composition of conf/sweep.yaml (params.yaml) with these overrides; a refused
    override is one line naming it and what its key takes."""
    from hydra import compose as hydra_compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from pipeline.config import schema_error
    from pipeline.params_file import key_parts

    try:
        return hydra_compose("sweep", overrides=arguments, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as err:
        cause = err if isinstance(err, OmegaConfBaseException) else err.__cause__
        if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
            known = schema_error(cause)
            line = next((a for a in arguments
                         if key_parts(a.lstrip("+~").split("=")[0]) == key_parts(known.key)),
                        known.key)
            raise ConfigError(f"sweep: {line}: {known.unlocated()}") from None
        text = error_line(err)
        raise ConfigError(f"sweep: {text[:300]}. Fix: check the key and value against "
                          "params.yaml (the keys `dvc exp run -S` takes) and conf/") from None


def check_sweep(arguments: list[str], data_dir: Path = layout.DATA,
                workers: Workers | None = None) -> tuple[Plan, int]:
    """Check the whole sweep before it starts; returns (plan, number of trials).
    The parent composes every candidate's params (Hydra); the slow checks (each candidate
    model built by Keras) run on the joblib launcher's warmed workers, started as soon as
    the launcher is known (pipeline/sweep_workers.py), else here.

    Must run after `sweep.register_params` (the params.yaml node Hydra composes from)."""
    from hydra import initialize_config_dir

    from pipeline.sweep_workers import Workers

    workers = workers or Workers()

    overrides = parse(arguments)
    for override in overrides:
        if override.key_or_group in GROUPS:
            options = group_options(override.key_or_group)
            for value in candidate_values(override):
                if value not in options and value != "null":
                    raise ConfigError(f"sweep: {override.key_or_group}={value}: no such "
                                      f"{override.key_or_group}; expected one of: "
                                      f"{', '.join(options)}. Fix: use one of those")
    first = [_single(o, candidate_values(o)[0]) for o in overrides]
    with initialize_config_dir(str(CONF), version_base="1.3", job_name="sweep"):
        base = _compose(first)
        space = {str(k): str(v) for k, v in
                 (OmegaConf.select(base, "hydra.sweeper.params", default=None) or {}).items()}
        swept = param_overrides(parse(arguments + [f"{k}={v}" for k, v in space.items()]))
        try:
            base_params = params_of(base)  # params.yaml with the first value of each override
        except ConfigError as err:
            line = _override_for(err.key, first)
            raise ConfigError(f"sweep: {line}: {err.unlocated()}") from None
        plan = make_plan(base.sweep, base_params, [o.key_or_group for o in swept])
        total = count_trials(base, swept)
        check_launcher(base)
        workers.start(base)
        manifest = layout.manifest_or_none(layout.prepared_dir(data_dir, plan.dataset))
        if manifest is None:
            raise ConfigError(f"sweep: {plan.dataset} is not prepared. Fix: run `dvc repro "
                              f"{target('prepare', plan.dataset)}` first (trials reuse the "
                              "prepared data)")
        candidates, refused = _candidates(swept, first)
    refusal = workers.check(plan.model, plan.dataset, manifest, candidates)
    if refusal is not None:  # before `refused`: it comes earlier in the candidates' order
        raise ConfigError(f"sweep: {refusal[0]}: {refusal[1]}")
    if refused is not None:
        raise refused
    return plan, total


def _candidates(swept: list[Override], first: list[str]
                ) -> tuple[list[tuple[str, DictConfig]], ConfigError | None]:
    """Every candidate value's override and params, in order, up to the first that doesn't
    compose (then also its error: it stands if no candidate before it fails its checks)."""
    candidates = []
    for override in swept:
        try:
            values = candidate_values(override)
        except ConfigError as err:
            return candidates, err
        for value in values:
            line = _single(override, value)
            others = [a for a in first if not a.startswith(override.key_or_group + "=")]
            try:
                candidates.append((line, params_of(_compose([*others, line]))))
            except ConfigError as err:
                return candidates, ConfigError(f"sweep: {line}: {err.unlocated()}")
    return candidates, None


def _override_for(key: str | None, arguments: list[str]) -> str:
    """The command-line override that set `key` (or one above it), else the key itself."""
    from pipeline.params_file import key_parts

    wanted = key_parts(key or "")
    for argument in arguments:
        parts = key_parts(argument.lstrip("+~").split("=")[0])
        if parts and wanted[:len(parts)] == parts:
            return argument
    return key or "?"


def _single(override: Override, value: str) -> str:
    return f"{override.get_key_element()}={value}"
