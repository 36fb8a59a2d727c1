"""Command `python -m pipeline.promote <model>`: make a sweep's best trial the default.

Finds the model's latest sweep in MLflow (or `--sweep <parent run id>`), takes its best
finished trial by the sweep's own objective, shows the diff and writes that trial's
overrides into params.yaml in place (comments and layout kept; checked against Hydra's
reading of the same overrides, which is what `dvc exp run -S` applies). Then `dvc repro`
retrains the model as the pipeline's default and `git diff params.yaml` documents it.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from pipeline import cli
from pipeline.config import compose, load_params, model_config
from pipeline.errors import ConfigError, DataError
from pipeline.files import atomic_file

log = logging.getLogger("pipeline.promote")


def yaml_scalar(value: Any) -> str:
    """A value as YAML text that PyYAML, ruamel (DVC) and OmegaConf all read back the same."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):  # never 1e-05: YAML 1.1 readers take that for a string
        return np.format_float_positional(value, unique=True, trim="0")
    if isinstance(value, str):
        plain = re.fullmatch(r"[A-Za-z_][\w.\-]*", value) and value.lower() not in (
            "null", "true", "false", "yes", "no", "on", "off", "nan", "inf")
        return value if plain else json.dumps(value)
    raise ConfigError(f"promote: {value!r} is not a single value. Fix: promote scalar overrides "
                      "only (edit params.yaml by hand for lists or mappings)")


def hydra_reading(text: str, overrides: list[str]) -> dict:
    """The params a sweep trial with these overrides gets: Hydra's compose API applied to
    `text` (the same reading `dvc exp run -S` makes of them)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.config_store import ConfigStore

    from pipeline.schema import TrialConfig
    from pipeline.sweep_plan import CONF, params_of

    node = OmegaConf.merge(OmegaConf.structured(TrialConfig), OmegaConf.create(text))
    ConfigStore.instance().store(name="params", node=node)
    with initialize_config_dir(str(CONF), version_base="1.3", job_name="promote"):
        cfg = hydra_compose("sweep", overrides=overrides)
    return OmegaConf.to_container(params_of(cfg))


def apply_overrides(text: str, overrides: list[str]) -> str:
    """params.yaml's text with each `key=value` written in place: only the changed values
    move, comments and layout stay, so `git diff params.yaml` shows just the promotion.

    The result is checked against the same overrides applied by Hydra (what `dvc exp run
    -S` does), so the text edit can't drift from the meaning."""
    from ruamel.yaml import YAML

    from pipeline.sweep_plan import parse

    parsed = parse(overrides)
    by_hand = (f"Fix: set it by hand in params.yaml (the best trial's overrides: "
               f"{' '.join(overrides)})")
    expected = hydra_reading(text, overrides)
    for override in parsed:
        node = YAML().load(text)
        *parents, last = override.key_or_group.split(".")
        for part in parents:
            node = node[int(part) if isinstance(node, list) else part]
        index = int(last) if isinstance(node, list) else last
        if (isinstance(node, list) and index >= len(node)) or (
                not isinstance(node, list) and last not in node):
            raise ConfigError(f"promote: {override.key_or_group} is not in params.yaml (the "
                              f"sweep added it); promote writes values, not new keys. {by_hand}")
        line, column = node.lc.item(index) if isinstance(node, list) else node.lc.value(last)
        lines = text.splitlines(keepends=True)
        row = lines[line]
        span = _value_span(row, column, node[index])
        if span is None:
            raise ConfigError(f"promote: {override.key_or_group} spans several lines in "
                              f"params.yaml. {by_hand}")
        lines[line] = row[:column] + yaml_scalar(override.value()) + row[column + span:]
        text = "".join(lines)
    try:
        written = OmegaConf.to_container(compose(OmegaConf.create(text)))
    except Exception:  # the edit broke the file: nothing is written
        written = None
    if written != expected:
        raise ConfigError("promote: could not write the overrides into params.yaml in place. "
                          f"Fix: apply them by hand: {' '.join(overrides)}")
    return text


def _value_span(row: str, column: int, value: Any) -> int | None:
    """How many characters from `column` the value takes: a scalar up to its delimiter, a
    flow mapping or list up to its closing bracket; None for a block over several lines."""
    rest = row[column:]
    if isinstance(value, (dict, list)):
        if not rest.startswith(("{", "[")):
            return None
        depth = 0
        for i, char in enumerate(rest):
            depth += 1 if char in "{[" else -1 if char in "}]" else 0
            if depth == 0:
                return i + 1
        return None
    return len(re.match(r"[^,\]}#\n]*", rest).group(0).rstrip())


def best_trial(model: str, dataset: str, sweep: str | None):
    """(parent run, best finished child run) of the model's latest (or given) sweep."""
    import mlflow

    from pipeline.sweep_runs import best_of, children

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(dataset)
    how = (f"Fix: run a sweep first, e.g. `python -m pipeline.sweep -m search_space={model}`")
    if experiment is None:
        raise DataError(f"promote {model}: no MLflow experiment '{dataset}' in "
                        f"{mlflow.get_tracking_uri()}. {how}")
    if sweep:
        from mlflow.exceptions import MlflowException

        try:
            parent = client.get_run(sweep)
        except MlflowException:
            raise DataError(f"promote {model}: no run {sweep} in {mlflow.get_tracking_uri()}. "
                            "Fix: pass the parent run id the sweep printed") from None
        if parent.data.tags.get("sweep.model") != model:
            raise ConfigError(f"promote {model}: run {sweep} is not a sweep of {model}. "
                              "Fix: pass the parent run id the sweep printed")
    else:
        parents = client.search_runs(
            [experiment.experiment_id],
            f"tags.`sweep.role` = 'parent' and tags.`sweep.model` = '{model}'",
            max_results=1, order_by=["attributes.start_time DESC"])
        if not parents:
            raise DataError(f"promote {model}: no sweep of {model} recorded. {how}")
        parent = parents[0]
    objective = parent.data.tags.get("sweep.objective", "")
    best = best_of(children(client, experiment.experiment_id, parent.info.run_id), objective)
    if best is None:
        raise DataError(f"promote {model}: sweep run {parent.info.run_id} has no finished "
                        "trial. Fix: rerun the sweep (it resumes) and promote again")
    return parent, best


def promote(model: str, params_path: Path, sweep: str | None = None,
            dry_run: bool = False) -> list[str]:
    from pipeline import tracking

    params = load_params(params_path)
    cfg = model_config(params, model)
    tracking.connect(params)
    parent, best = best_trial(model, cfg.dataset, sweep)
    overrides = json.loads(best.data.tags.get("sweep.overrides", "[]"))
    objective = parent.data.tags.get("sweep.objective", "objective")
    log.info("promote %s: trial %s of sweep %s, %s=%.4f (run %s)", model,
             best.data.tags.get("sweep.trial", "?"), parent.info.run_id, objective,
             best.data.metrics["objective"], best.info.run_id)
    before = params_path.read_text()
    after = apply_overrides(before, overrides)
    compose(OmegaConf.create(after))  # still valid params
    diff = list(difflib.unified_diff(before.splitlines(keepends=True),
                                     after.splitlines(keepends=True),
                                     f"a/{params_path.name}", f"b/{params_path.name}"))
    if not diff:
        log.info("promote %s: params.yaml already holds these values; nothing to change", model)
        return []
    print("".join(diff), end="", flush=True)
    if dry_run:
        log.info("promote %s: --dry-run, params.yaml unchanged", model)
        return diff
    with atomic_file(params_path, "w") as fh:
        fh.write(after)
    log.info("promote %s: params.yaml updated. Next: `dvc repro` retrains %s with these values "
             "(its validation score should match the trial's); `git diff %s` shows the change",
             model, model, params_path)
    return diff


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.promote", "Write the best trial of a model's latest sweep "
                         "into params.yaml.", "model", folders=())
    parser.add_argument("--sweep", default=None,
                        help="the sweep's parent run id (default: the model's latest sweep)")
    parser.add_argument("--dry-run", action="store_true", help="show the diff, change nothing")
    cli.run(parser, argv, lambda args: promote(args.model, args.params, args.sweep,
                                               args.dry_run))


if __name__ == "__main__":
    main()
