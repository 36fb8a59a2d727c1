"""Command `python -m pipeline.sweep`: hyperparameter sweeps over params.yaml (Hydra + MLflow).

    # grid: imdb_dense's hidden units x learning rate, 6 trials one after another
    python -m pipeline.sweep -m models.imdb_dense.layers.0.units=16,32,64 \\
        models.imdb_dense.optimizer.learning_rate=0.001,0.0001
    # Bayesian (Optuna TPE) over conf/search_space/imdb_dense.yaml, 2 trials at a time
    python -m pipeline.sweep -m search_space=imdb_dense launcher=joblib

A trial's config is params.yaml plus the overrides (the keys `dvc exp run -S` takes), typed
by pipeline/config.py; conf/ only adds sweep options, search spaces and launchers. Trials
train on the data `dvc repro` prepared and are scored on the validation split.
Then `python -m pipeline.promote <model>` writes the best trial into params.yaml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.config import TrialConfig
from pipeline.console import setup_logging
from pipeline.errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
PARAMS_ENV = "PIPELINE_PARAMS"  # another params file than ./params.yaml


def register_params(path: Path) -> None:
    """params.yaml becomes the config node `params` that conf/sweep.yaml starts from, typed
    by the schema, so Hydra refuses unknown keys and wrong types in overrides."""
    from hydra.core.config_store import ConfigStore

    if not path.is_file():
        raise ConfigError(f"{path}: not found. Fix: run from the project root (where dvc.yaml is)")
    try:
        node = OmegaConf.merge(OmegaConf.structured(TrialConfig), OmegaConf.load(path))
    except Exception as err:
        raise ConfigError(f"{path}: {str(err).splitlines()[0]}. Fix: `python -m pipeline."
                          "train --help` validates it; see the README's params.yaml") from None
    ConfigStore.instance().store(name="params", node=node)


def trial(cfg: DictConfig) -> float:
    from pipeline.trials import run_trial

    return run_trial(cfg)


def main() -> None:
    import hydra

    setup_logging()  # quiet TensorFlow/MLflow before anything imports them
    # Ray: no token auth (set RAY_AUTH_MODE=token on a shared cluster), and workers use this
    # project's environment as it is, not one rebuilt by Ray's `uv run` hook.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        register_params(Path(os.environ.get(PARAMS_ENV, "params.yaml")))
    except ConfigError as err:
        print(f"ERROR {err}", file=sys.stderr)
        sys.exit(1)
    try:
        hydra.main(version_base="1.3", config_path=str(CONF), config_name="sweep")(trial)()
    except KeyboardInterrupt:
        print("ERROR sweep interrupted: finished trials are kept in MLflow. Fix: rerun the same "
              "command to resume (finished trials are reused)", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
