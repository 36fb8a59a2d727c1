"""Command `python -m pipeline.sweep`: hyperparameter sweeps over params.yaml (Hydra + MLflow).

    # grid: imdb_dense's hidden units x learning rate, 6 trials one after another
    python -m pipeline.sweep -m models.imdb_dense.layers.0.units=16,32,64 \\
        models.imdb_dense.optimizer.learning_rate=0.001,0.0001
    # Bayesian (Optuna TPE) over conf/search_space/imdb_dense.yaml, 2 trials at a time
    python -m pipeline.sweep -m search_space=imdb_dense launcher=joblib

A trial's config is params.yaml plus the overrides (the keys `dvc exp run -S` takes), typed
by pipeline/schema.py; conf/ only adds sweep options, search spaces and launchers. Before
Hydra starts anything, every value a trial may get is composed and checked
(pipeline/sweep_plan.py; on the joblib launcher, the models are built by its workers while
this process never imports TensorFlow: pipeline/sweep_workers.py): a mistake is one line,
with no parent run and no trial. Trials
train on the data `dvc repro` prepared and are scored on the validation split. Then
`python -m pipeline.promote <model>` writes the best trial into params.yaml.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from pipeline.config import PARAMS_FILE, load_params
from pipeline.console import run_stage
from pipeline.params_file import read_yaml
from pipeline.schema import TrialConfig
from pipeline.sweep_plan import CONF

PARAMS_ENV = "PIPELINE_PARAMS"  # another params file than ./params.yaml
HYDRA_FLAGS = ("--help", "-h", "--hydra-help", "--version", "--cfg", "-c", "--info", "-i",
               "--resolve", "--package", "-p", "--shell-completion", "-sc", "--config-path",
               "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun")


def register_params(path: Path) -> None:
    """params.yaml becomes the config node `params` that conf/sweep.yaml starts from, typed
    by the schema, so Hydra refuses unknown keys and wrong types in overrides."""
    from hydra.core.config_store import ConfigStore

    load_params(path)  # every rule, with params.yaml line numbers, before Hydra sees it
    node = OmegaConf.merge(OmegaConf.structured(TrialConfig), read_yaml(path))
    ConfigStore.instance().store(name="params", node=node)


def trial(cfg) -> float:
    from pipeline.trials import run_trial

    return run_trial(cfg)


def overrides_of(argv: list[str]) -> list[str] | None:
    """The overrides on the command line, or None when Hydra is asked something else (help,
    another config): Hydra answers that itself."""
    if any(arg.split("=")[0] in HYDRA_FLAGS for arg in argv):
        return None
    return [arg for arg in argv if arg not in ("-m", "--multirun")]


def sweep(argv: list[str], params: Path) -> None:
    import hydra

    from pipeline import sweep_record
    from pipeline.sweep_plan import check_sweep
    from pipeline.sweep_workers import Workers

    register_params(params)
    arguments = overrides_of(argv)
    workers = Workers()  # joblib's: they import TensorFlow and build the candidate models
    if arguments is not None:
        check_sweep(arguments, workers=workers)
    workers.join()
    sys.argv = [sys.argv[0], *argv]
    try:
        hydra.main(version_base="1.3", config_path=str(CONF), config_name="sweep")(trial)()
    except sweep_record.Abort as abort:  # an error in our Hydra callback
        sweep_record.end_open(abort.error)
        raise abort.error from None
    except SystemExit as done:
        if done.code:
            sweep_record.end_open(RuntimeError(f"the sweep exited with status {done.code}"))
        raise
    except BaseException as err:
        sweep_record.end_open(err)
        raise


def main() -> None:
    # Ray: no token auth (set RAY_AUTH_MODE=token on a shared cluster), and workers use this
    # project's environment as it is, not one rebuilt by Ray's `uv run` hook.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Hydra would print its own multi-line report of an error and exit; let it reach
    # run_stage, which prints one line (the traceback only with PIPELINE_DEBUG=1).
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")
    params = Path(os.environ.get(PARAMS_ENV, PARAMS_FILE))
    argv = sys.argv[1:]
    run_stage(lambda: sweep(argv, params), params=params)


if __name__ == "__main__":
    main()
