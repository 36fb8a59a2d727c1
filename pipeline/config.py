"""The schema of params.yaml, and its validation.

`params.yaml` is the only place defaults live: the dataclasses below declare
*shapes and types* (most fields are MISSING), so a typo, a wrong type or an
impossible value fails before any stage does work, with a message that names
the key and the fix. Hydra (sweeps) composes on top of the same schema.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import ConfigError

PARAMS_FILE = Path("params.yaml")

TASKS = ("multiclass", "binary", "regression")
FORMATS = ("npz", "idx_gz", "sequences_npz")
PREPROCESSORS = ("images", "multi_hot", "standardize")
FALLBACK_KINDS = ("bundled", "generated")
HASH_ALGORITHMS = ("sha256", "md5")



@dataclass
class SourceFile:
    name: str = MISSING
    url: str = MISSING
    hash: str = MISSING  # "sha256:<hex>" (or "md5:<hex>" where upstream publishes only md5)


@dataclass
class Fallback:
    kind: str = MISSING  # bundled: real data shipped by a package; generated: synthetic stand-in
    recipe: str = MISSING  # a recipe in pipeline/fallback.py, chosen by the file format
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Source:
    files: list[SourceFile] = MISSING
    fallback: Fallback | None = None


@dataclass
class Load:
    """How raw files become keras.datasets.*.load_data() arrays."""

    format: str = MISSING
    files: dict[str, str] = MISSING  # role (data, x_train, ...) -> file name
    seed: int | None = None  # keras shuffles with RandomState(seed); null keeps file order
    test_split: float | None = None  # null: the file holds its own train/test split
    # Sequence datasets only (keras text semantics):
    num_words: int | None = None
    skip_top: int = 0
    maxlen: int | None = None
    start_char: int | None = 1
    oov_char: int | None = 2
    index_from: int = 3


@dataclass
class Preprocess:
    kind: str = MISSING


@dataclass
class Split:
    validation: int | float = MISSING  # int >= 1: a count; float in (0, 1): a fraction; 0: none
    shuffle: bool = MISSING  # false: the first rows of train (the books' way); true: seeded


@dataclass
class Checks:
    max_overlap: float = MISSING  # fraction of a split's rows that may reappear in another


@dataclass
class Dataset:
    task: str = MISSING
    classes: list[str] | None = None
    source: Source = MISSING
    load: Load = MISSING
    preprocess: Preprocess = MISSING
    split: Split = MISSING
    checks: Checks = MISSING
    published: list[dict[str, Any]] = field(default_factory=list)  # the books' results


@dataclass
class Download:
    cache_dir: str | None = MISSING  # null: the OS cache dir (~/.cache/keras-pipeline)
    mirrors: list[str] = MISSING
    fallback: bool = MISSING
    retries: int = MISSING
    timeout: float = MISSING


@dataclass
class Tracking:
    uri: str | None = MISSING  # null: sqlite:///mlflow.db here ($MLFLOW_TRACKING_URI wins)


@dataclass
class Baseline:
    cv_folds: int = MISSING
    n_jobs: int | None = MISSING
    classifier: dict[str, Any] = MISSING  # SGDClassifier arguments
    regressor: dict[str, Any] = MISSING  # SGDRegressor arguments


@dataclass
class EarlyStopping:
    monitor: str = MISSING
    patience: int = MISSING


@dataclass
class KFold:
    folds: int = MISSING
    epochs: int = MISSING


@dataclass
class Model:
    dataset: str = MISSING
    layers: list[dict[str, Any]] = MISSING  # {type: <keras.layers class>, **its arguments}
    optimizer: dict[str, Any] = MISSING  # {type: <keras optimizer name>, **its arguments}
    loss: str = MISSING
    metrics: list[str] = MISSING
    epochs: int = MISSING
    batch_size: int = MISSING
    early_stopping: EarlyStopping | None = None
    kfold: KFold | None = None


@dataclass
class Params:
    seed: int = MISSING
    download: Download = MISSING
    datasets: dict[str, Dataset] = MISSING
    tracking: Tracking = MISSING
    baseline: Baseline = MISSING
    models: dict[str, Model] = MISSING


@dataclass
class SweepOptions:
    """What a sweep adds to params.yaml (defaults in conf/sweep.yaml, not here)."""

    model: str | None = MISSING  # the entry of `models:` to tune; null: the one overrides name
    objective: str | None = MISSING  # a validation metric; null: the champion's (evaluate)
    direction: str | None = MISSING  # maximize | minimize; null: from the metric's name
    resume: bool = MISSING  # reuse finished trials of the same sweep recorded in MLflow
    parallel_trials: int = MISSING  # trials at once (the launcher's workers)
    threads_per_trial: int | None = MISSING  # TF threads in a trial; null: cores / parallel


@dataclass
class TrialConfig(Params):
    """A sweep trial's config: params.yaml plus the sweep's options (pipeline/sweep.py)."""

    sweep: SweepOptions = MISSING


def _fail(key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"params.yaml: {key}: {problem}. Fix: {fix}")


def compose(raw: Any) -> DictConfig:
    """Merge raw params onto the schema; translate OmegaConf errors into one clear line."""
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Params), raw)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        message = str(err).splitlines()[0]
        if "not in" in message:
            fix = "check the spelling against the keys of that section in params.yaml"
        elif "Missing mandatory value" in message:
            fix = "add the key (see the other datasets in params.yaml for an example)"
        else:
            fix = "use a value of the type the key expects"
        raise _fail(key, message, fix) from None
    _check_values(cfg)
    return cfg


def load_params(path: Path | str = PARAMS_FILE) -> DictConfig:
    """Read and validate params.yaml (and nothing else: one source of truth)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found. Fix: run from the project root (where dvc.yaml is)")
    return compose(OmegaConf.load(path))


def dataset_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one dataset; an unknown name lists the known ones."""
    if name not in params.datasets:
        known = ", ".join(params.datasets)
        raise ConfigError(
            f"unknown dataset '{name}'. Fix: use one of: {known} (or add an entry under "
            "`datasets:` in params.yaml)"
        )
    return params.datasets[name]


def model_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one Keras model; an unknown name lists the known ones."""
    if name not in params.models:
        raise ConfigError(
            f"unknown model '{name}'. Fix: use one of: {', '.join(params.models)} (or add an "
            "entry under `models:` in params.yaml)"
        )
    return params.models[name]


def _check_values(cfg: DictConfig) -> None:
    """Range and cross-field checks the type system can't express."""
    if cfg.download.retries < 0:
        raise _fail("download.retries", f"{cfg.download.retries} is negative", "use 0 or more")
    if cfg.download.timeout <= 0:
        raise _fail("download.timeout", "must be positive", "use a number of seconds > 0")
    for name, ds in cfg.datasets.items():
        _check_dataset(f"datasets.{name}", ds)
    if cfg.baseline.cv_folds < 2:
        raise _fail("baseline.cv_folds", "needs at least 2 folds", "use 5 (the books' choice)")
    for name, model in cfg.models.items():
        _check_model(f"models.{name}", model, cfg)


def _check_model(key: str, model: DictConfig, cfg: DictConfig) -> None:
    if model.dataset not in cfg.datasets:
        raise _fail(f"{key}.dataset", f"unknown dataset '{model.dataset}'",
                    f"use one of: {', '.join(cfg.datasets)}")
    for field_name in ("epochs", "batch_size"):
        if model[field_name] < 1:
            raise _fail(f"{key}.{field_name}", f"{model[field_name]} is not positive", "use >= 1")
    if not model.layers:
        raise _fail(f"{key}.layers", "no layers", "list at least the output layer")
    for i, layer in enumerate(model.layers):
        if "type" not in layer:
            raise _fail(f"{key}.layers[{i}]", "no `type`", "name a keras.layers class, e.g. Dense")
    if "type" not in model.optimizer:
        raise _fail(f"{key}.optimizer", "no `type`", "e.g. {type: rmsprop, learning_rate: 0.001}")
    rate = model.optimizer.get("learning_rate")
    if isinstance(rate, (int, float)) and not 0 < rate < math.inf:
        raise _fail(f"{key}.optimizer.learning_rate", f"{rate} is not positive",
                    "use a small positive number, e.g. 0.001")
    if model.kfold is not None and (model.kfold.folds < 2 or model.kfold.epochs < 1):
        raise _fail(f"{key}.kfold", "needs folds >= 2 and epochs >= 1",
                    "e.g. {folds: 4, epochs: 100}")


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise _fail(key, f"'{value}' is not one of {', '.join(allowed)}", "pick one of those")


def _check_dataset(key: str, ds: DictConfig) -> None:
    _one_of(f"{key}.task", ds.task, TASKS)
    _one_of(f"{key}.load.format", ds.load.format, FORMATS)
    _one_of(f"{key}.preprocess.kind", ds.preprocess.kind, PREPROCESSORS)
    if ds.task == "regression" and ds.classes:
        raise _fail(f"{key}.classes", "a regression task has no classes", "remove `classes`")
    if ds.task == "binary" and ds.classes and len(ds.classes) != 2:
        raise _fail(f"{key}.classes", "a binary task has 2 classes", "list exactly two names")

    names = [f.name for f in ds.source.files]
    if len(set(names)) != len(names):
        raise _fail(f"{key}.source.files", "a file name is listed twice", "list each file once")
    for i, f in enumerate(ds.source.files):
        algorithm, _, digest = f.hash.partition(":")
        expected_len = {"sha256": 64, "md5": 32}.get(algorithm)
        if expected_len is None or len(digest) != expected_len:
            raise _fail(
                f"{key}.source.files[{i}].hash",
                f"'{f.hash}' is not 'sha256:<64 hex>' (or 'md5:<32 hex>')",
                "copy the checksum published with the file",
            )
        if "/" in f.name or f.name.startswith("."):
            raise _fail(f"{key}.source.files[{i}].name", f"'{f.name}' is not a plain file name",
                        "use the upstream file's base name")
    for role, fname in ds.load.files.items():
        if fname not in names:
            raise _fail(f"{key}.load.files.{role}", f"'{fname}' is not in source.files",
                        f"use one of: {', '.join(names)}")
    if ds.source.fallback is not None:
        _one_of(f"{key}.source.fallback.kind", ds.source.fallback.kind, FALLBACK_KINDS)

    test_split = ds.load.test_split
    if test_split is not None and not 0 < test_split < 1:
        raise _fail(f"{key}.load.test_split", f"{test_split} is outside (0, 1)",
                    "use a fraction such as 0.2")
    if ds.load.format == "sequences_npz":
        for opt in ("num_words", "maxlen"):
            value = ds.load[opt]
            if value is not None and value < 1:
                raise _fail(f"{key}.load.{opt}", f"{value} is not positive", "use null or >= 1")
        if ds.load.skip_top < 0 or ds.load.index_from < 0:
            raise _fail(f"{key}.load", "skip_top and index_from must be >= 0", "fix the value")
    if ds.preprocess.kind == "multi_hot" and not ds.load.num_words:
        raise _fail(f"{key}.load.num_words", "multi_hot needs a vocabulary size",
                    "set num_words (the books use 10000)")

    validation = ds.split.validation
    if isinstance(validation, bool) or validation < 0 or math.isnan(validation):
        raise _fail(f"{key}.split.validation", f"{validation} is negative or not a number",
                    "use a count (e.g. 10000), a fraction in (0, 1) (e.g. 0.2), or 0 for none")
    if isinstance(validation, float) and validation >= 1 and not validation.is_integer():
        raise _fail(f"{key}.split.validation", f"{validation} is neither a count nor a fraction",
                    "use a whole count or a fraction below 1")
    if not 0 <= ds.checks.max_overlap <= 1:
        raise _fail(f"{key}.checks.max_overlap", "must be a fraction in [0, 1]", "e.g. 0.01")
