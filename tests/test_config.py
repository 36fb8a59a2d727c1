"""Every setting is checked up front: params.yaml composes, and every kind of mistake fails
in one line naming the key, what was expected and a fix (the line number is added when a
command shows it); what only Keras and scikit-learn know is asked of them, before training."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from helpers.params import DELETE, broken, project_params, put, rename
from helpers.paths import ROOT

from pipeline.config import compose, dataset_config, load_params, model_config
from pipeline.errors import ConfigError
from pipeline.params_file import locate
from pipeline.schema import FORMAT_ROLES, PREPROCESS_FORMATS, RECIPE_OPTIONS

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

DATASETS = {"mnist", "fashion_mnist", "imdb", "reuters", "boston_housing"}


def test_params_yaml_composes():
    params = load_params(ROOT / "params.yaml")
    assert set(params.datasets) == DATASETS
    assert {m.dataset for m in params.models.values()} == DATASETS


def test_the_schema_tables_match_the_code_behind_them():
    """The allowed values in schema.py are exactly what the readers, transforms and recipes
    implement: one list, checked, not two that drift."""
    from pipeline import fallback, features, formats

    assert set(FORMAT_ROLES) == set(formats.READERS)
    assert set(RECIPE_OPTIONS) == set(fallback.RECIPES)
    for kind in PREPROCESS_FORMATS:
        assert features.Transform(kind, {"num_words": 3}).kind == kind
    with pytest.raises(features.DataError):
        features.Transform("pca").apply([[1.0]])


M, D = "models.imdb_dense", "datasets.imdb"
B = "models.boston_housing_dense"

CASES = [
    # the schema: keys and types
    ("typo in a key", put(f"{D}.load.num_wrds", 5000), f"{D}.load.num_wrds", "num_words"),
    ("unknown top-level key", put("sed", 1), "sed", "unknown key"),
    ("wrong type", put(f"{D}.load.num_words", "many"), f"{D}.load.num_words", "type"),
    ("missing key", put(f"{M}.loss", DELETE), f"{M}.loss", "missing"),
    ("metrics not a list", put(f"{M}.metrics", "accuracy"), f"{M}.metrics", "a list"),
    # ranges
    ("negative split", put("datasets.reuters.split.validation", -5),
     "datasets.reuters.split.validation", "row count"),
    ("fraction above 1", put("datasets.mnist.split.validation", 1.5),
     "datasets.mnist.split.validation", "row count"),
    ("1.0 is ambiguous", put("datasets.mnist.split.validation", 1.0),
     "datasets.mnist.split.validation", "ambiguous"),
    ("negative retries", put("download.retries", -1), "download.retries", "0 to 20"),
    ("test split outside (0, 1)", put("datasets.reuters.load.test_split", 1.2),
     "datasets.reuters.load.test_split", "(0, 1)"),
    ("zero epochs", put("models.mnist_dense.epochs", 0), "models.mnist_dense.epochs", ">= 1"),
    ("negative seed", put("seed", -1), "seed", "seed range"),
    ("negative patience", put(f"{M}.early_stopping.patience", -1),
     f"{M}.early_stopping.patience", "negative"),
    ("negative learning rate", put(f"{M}.optimizer.learning_rate", -0.1),
     f"{M}.optimizer.learning_rate", "positive"),
    ("one fold", put("models.boston_housing_dense.kfold.folds", 1),
     "models.boston_housing_dense.kfold.folds", "2 or more"),
    ("no CV workers", put("baseline.n_jobs", 0), "baseline.n_jobs", "0 workers"),
    ("smoothing that never moves", put(f"{B}.kfold.choose_epochs", {"smoothing": 1.0,
                                                                     "skip": 10}),
     f"{B}.kfold.choose_epochs.smoothing", "[0, 1)"),
    ("every epoch of the curve skipped", put(f"{B}.kfold.choose_epochs", {"smoothing": 0.9,
                                                                          "skip": 100}),
     f"{B}.kfold.choose_epochs.skip", "0 to 99"),
    ("a typo in choose_epochs", put(f"{B}.kfold.choose_epochs", {"smothing": 0.9, "skip": 1}),
     f"{B}.kfold.choose_epochs.smothing", "smoothing"),
    ("fold models without K-fold", put(f"{M}.ensemble", {"fits": 2, "folds": True}),
     f"{M}.ensemble.folds", "kfold is null"),
    ("an ensemble of one model", put(f"{B}.ensemble", {"fits": 1, "folds": False}),
     f"{B}.ensemble", "nothing to average"),
    ("no final fit in the ensemble", put(f"{B}.ensemble", {"fits": 0, "folds": True}),
     f"{B}.ensemble.fits", ">= 1"),
    ("ensemble folds not true/false", put(f"{B}.ensemble", {"fits": 2, "folds": "yes"}),
     f"{B}.ensemble.folds", "true or false"),
    # what goes with what
    ("bad hash", put("datasets.mnist.source.files.0.hash", "sha256:abc"),
     "datasets.mnist.source.files[0].hash", "checksum"),
    ("role names a missing file", put("datasets.mnist.load.files", {"data": "nope.npz"}),
     "datasets.mnist.load.files.data", "not in source.files"),
    ("a role the format lacks", put("datasets.mnist.load.files", {"x": "mnist.npz"}),
     "datasets.mnist.load.files", "exactly data"),
    ("unknown task", put("datasets.mnist.task", "ranking"), "datasets.mnist.task", "unknown"),
    ("unknown format", put("datasets.mnist.load.format", "csv"), "datasets.mnist.load.format",
     "unknown"),
    ("unknown preprocess", put("datasets.mnist.preprocess.kind", "pca"),
     "datasets.mnist.preprocess.kind", "unknown"),
    ("preprocessing that can't read the format", put(f"{D}.preprocess.kind", "images"),
     f"{D}.preprocess.kind", "can't read"),
    ("idx files with a test split", put("datasets.fashion_mnist.load.test_split", 0.2),
     "datasets.fashion_mnist.load.test_split", "null"),
    ("skip every word", put(f"{D}.load.skip_top", 10000), f"{D}.load.skip_top", "fewer"),
    ("binary with 3 classes", put(f"{D}.classes", ["a", "b", "c"]), f"{D}.classes",
     "exactly 2"),
    ("a class twice", put("datasets.mnist.classes", ["0"] * 10), "datasets.mnist.classes",
     "twice"),
    ("classes of a regression", put("datasets.boston_housing.classes", ["a", "b"]),
     "datasets.boston_housing.classes", "no classes"),
    ("model on unknown dataset", put(f"{M}.dataset", "imbd"), f"{M}.dataset", "unknown"),
    ("unknown recipe", put(f"{D}.source.fallback.recipe", "magic"),
     f"{D}.source.fallback.recipe", "unknown"),
    ("recipe option typo", put(f"{D}.source.fallback.options.train_sise", 10),
     f"{D}.source.fallback.options.train_sise", "unknown option"),
    ("recipe option missing", put(f"{D}.source.fallback.options.vocab_size", DELETE),
     f"{D}.source.fallback.options", "vocab_size is missing"),
    ("noise above 1", put(f"{D}.source.fallback.options.label_noise", 2.0),
     f"{D}.source.fallback.options.label_noise", "[0, 1]"),
    # a model must be ranked and stopped by something it logs
    ("monitor never logged", put(f"{M}.early_stopping.monitor", "val_los"),
     f"{M}.early_stopping.monitor", "val_loss"),
    ("ranked metric missing", put(f"{M}.metrics", ["acuracy"]), f"{M}.metrics",
     "did you mean accuracy"),
    ("a classifier with nothing to validate on", put(f"{D}.split.validation", 0),
     f"{M}.kfold", "no validation rows"),
    # the books' figures, the report's yardstick
    ("published figure on another dataset's model",
     put("datasets.imdb.published.0.models", ["mnist_dense"]),
     "datasets.imdb.published[0].models[0]", "expected one of: baseline, imdb_dense"),
    ("published figure of a metric the rows lack",
     put("datasets.imdb.published.0.metric", "test_mae"), "datasets.imdb.published[0].metric",
     "cv_accuracy, test_accuracy"),
    ("published figure not a number", put("datasets.imdb.published.0.value", "about 0.88"),
     "datasets.imdb.published[0].value", "e.g. ~0.88"),
    # sources and stores
    ("mirror placeholder typo", put("download.mirrors", ["https://m.example/{filename}"]),
     "download.mirrors[0]", "{filename}"),
    ("mirror format attack", put("download.mirrors", ["https://m/{dataset.__class__}"]),
     "download.mirrors[0]", "placeholder"),
    ("mirror without a host", put("download.mirrors", ["http:///keras"]),
     "download.mirrors[0]", "not an http(s) URL"),
    ("mirror of another scheme", put("download.mirrors", ["ftp://m.example/keras"]),
     "download.mirrors[0]", "not an http(s) URL"),
    ("mirror with a bad port", put("download.mirrors", ["http://m.example:99999x/k"]),
     "download.mirrors[0]", "not an http(s) URL"),
    ("source URL malformed", put("datasets.mnist.source.files.0.url", "htps//x/mnist.npz"),
     "datasets.mnist.source.files[0].url", "not an http(s) URL"),
    ("file name is a path", put("datasets.mnist.source.files.0.name", "../../mnist.npz"),
     "datasets.mnist.source.files[0].name", "plain file name"),
    ("tracking URI without a scheme", put("tracking.uri", "localhost:5000"), "tracking.uri",
     "http://host:5000"),
    # types, strictly (OmegaConf would turn "5" into 5; DVC would not)
    ("a number written as text", put("models.mnist_dense.epochs", "5"),
     "models.mnist_dense.epochs", "without quotes"),
    ("a float for a count", put("models.mnist_dense.batch_size", 128.0),
     "models.mnist_dense.batch_size", "whole number"),
    ("a number for a boolean", put("datasets.mnist.split.shuffle", 2),
     "datasets.mnist.split.shuffle", "true or false"),
    ("a list for a mapping", put("models.boston_housing_dense.kfold", [4, 100]),
     "models.boston_housing_dense.kfold", "a mapping"),
    ("a mapping for a list", put(f"{M}.layers", {"type": "Dense"}), f"{M}.layers", "a list"),
    ("an empty class name", put("datasets.mnist.classes.0", None), "datasets.mnist.classes[0]",
     "expected text"),
    ("a learning rate that can only diverge", put(f"{M}.optimizer.learning_rate", 1e300),
     f"{M}.optimizer.learning_rate", "up to 10"),
    ("NaN in an optimizer argument", put(f"{M}.optimizer.weight_decay", float("nan")),
     f"{M}.optimizer.weight_decay", "finite"),
    ("a bundled file outside the package", put(
        "datasets.mnist.source.fallback.options.file", "../../../../etc/passwd"),
     "datasets.mnist.source.fallback.options.file", "plain file name"),
    # names are entry names, never paths or shell words
    ("path-like dataset key", rename("datasets", "imdb", "../../evil"),
     "datasets.../../evil", "entry name"),
    ("dataset key with a shell word", rename("datasets", "imdb", "x;touch pwned"),
     "datasets.x;touch pwned", "entry name"),
    ("model key with a slash", rename("models", "imdb_dense", "a/b"), "models.a/b",
     "entry name"),
    ("a model named like the baseline's folder", rename("models", "imdb_dense", "baseline"),
     "models.baseline", "baseline's results folder"),
]


def test_the_final_epochs_may_come_from_the_kfold_curve():
    cfg = compose(broken(put(f"{B}.kfold.choose_epochs", {"smoothing": 0.0, "skip": 3})))
    assert cfg.models.boston_housing_dense.kfold.choose_epochs.skip == 3
    book = compose(project_params()).models.boston_housing_book  # the book's plain recipe
    assert book.kfold.choose_epochs is None and book.ensemble is None and book.epochs == 80


def test_an_ensemble_is_a_setting_and_null_unless_set():
    cfg = compose(broken(put(f"{M}.ensemble", {"fits": 3, "folds": False})))
    assert cfg.models.imdb_dense.ensemble.fits == 3
    assert compose(project_params()).models.mnist_dense.ensemble is None  # not listed: null


@pytest.mark.parametrize(("what", "edit", "key", "says"), CASES, ids=[c[0] for c in CASES])
def test_mistakes_fail_with_the_key_expected_value_and_fix(what, edit, key, says):
    with pytest.raises(ConfigError) as err:
        compose(broken(edit))
    message = str(err.value)
    assert message.startswith(f"params.yaml: {key}:"), message
    assert says in message, message
    assert "expected" in message and "Fix:" in message and "\n" not in message


READ_AS_DVC = [
    ("classes: [negative, positive]", "classes: [no, yes]", "datasets.imdb.classes[0]",
     "reads False here but DVC (YAML 1.2) reads 'no'"),
    ("    epochs: 5\n", "    epochs: 010\n", "models.mnist_dense.epochs", "reads 8"),
    ("    epochs: 5\n", "    epochs: 1:30\n", "models.mnist_dense.epochs", "reads 90"),
    ("    epochs: 5\n", "    epochs: ${models.imdb_dense.epochs}\n", "models.mnist_dense.epochs",
     "interpolation"),
    ("seed: 42", "seed: ${oc.env:SEED,42}", "seed", "interpolation"),
]


@pytest.mark.parametrize(("old", "new", "key", "says"), READ_AS_DVC,
                         ids=[c[1].strip() for c in READ_AS_DVC])
def test_params_are_read_as_dvc_reads_them(tmp_path, old, new, key, says):
    """The pipeline (YAML 1.1, OmegaConf) and DVC (YAML 1.2) must see the same settings, or
    DVC would rerun (or not) on values the pipeline doesn't use."""
    text = (ROOT / "params.yaml").read_text()
    assert old in text
    path = tmp_path / "params.yaml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_params(path)
    line = locate(path.read_text(), key)
    message = str(err.value)
    assert message.startswith(f"{path}:{line}: {key}: ") and says in message, message


def test_unknown_dataset_and_model_list_the_known_ones():
    params = load_params(ROOT / "params.yaml")
    with pytest.raises(ConfigError, match=r"unknown dataset 'nosuch'.*imdb"):
        dataset_config(params, "nosuch")
    with pytest.raises(ConfigError, match=r"unknown model 'nosuch'.*imdb_dense"):
        model_config(params, "nosuch")


def test_locate_finds_the_line_of_a_key():
    text = (ROOT / "params.yaml").read_text()
    lines = text.splitlines()
    line = locate(text, "models.imdb_dense.layers[1].units")
    assert "units: 16" in lines[line - 1] and "imdb_dense" not in lines[line - 1]
    assert lines[locate(text, "models.imdb_dense.loss") - 1].strip() == (
        "loss: binary_crossentropy")
    # a key that isn't in the file (a missing one): its nearest enclosing line
    assert lines[locate(text, "models.imdb_dense.nosuch") - 1].strip().startswith("imdb_dense:")


# --- what a user sees -------------------------------------------------------------------


def run(module: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def test_a_stage_fails_on_bad_params_before_any_work_naming_the_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(broken(put("datasets.imdb.split.validation", -1)),
                                  sort_keys=False))
    line = locate(bad.read_text(), "datasets.imdb.split.validation")
    data = tmp_path / "data"
    result = run("pipeline.prepare", "imdb", "--params", str(bad), "--data-dir", str(data))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [lines[0]], result.stderr
    assert lines[0].startswith(f"ERROR {bad}:{line}: datasets.imdb.split.validation: -1 ")
    assert "Traceback" not in result.stderr and not data.exists()


def test_a_yaml_syntax_error_is_one_line_with_line_and_column(tmp_path):
    bad = tmp_path / "params.yaml"
    text = (ROOT / "params.yaml").read_text().replace("seed: 42", "seed: [42", 1)
    bad.write_text(text)
    result = run("pipeline.check", "--params", str(bad), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"ERROR {bad}:") and "YAML syntax error" in line and "Fix:" in line
    assert line.split(":")[1].isdigit() and line.split(":")[2].isdigit()  # line, column


def test_an_unexpected_error_is_one_line_and_the_switch_shows_the_traceback(tmp_path):
    """No user sees a traceback; PIPELINE_DEBUG=1 (README: Troubleshooting) shows it."""
    script = tmp_path / "boom.py"
    script.write_text("from pipeline.console import run_stage\n"
                      "run_stage(lambda: {}['missing'])\n")
    env = {k: v for k, v in __import__("os").environ.items() if k != "PIPELINE_DEBUG"}
    env["PYTHONPATH"] = str(ROOT)
    quiet = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env=env, timeout=60)
    assert quiet.returncode == 1
    [line] = quiet.stderr.strip().splitlines()
    assert "unexpected KeyError" in line and "PIPELINE_DEBUG=1" in line
    loud = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**env, "PIPELINE_DEBUG": "1"}, timeout=60)
    assert loud.returncode == 1 and "Traceback" in loud.stderr


def test_a_stage_process_collects_garbage_rarely_and_not_at_exit(tmp_path):
    """run_stage (pipeline/console.py): full collections 1000 young ones apart, and every
    object frozen after the other exit handlers ran, so the teardown doesn't walk them."""
    script = tmp_path / "stage.py"
    script.write_text("import atexit, gc\n"
                      "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
                      "from pipeline.console import run_stage\n"
                      "run_stage(lambda: print('threshold', gc.get_threshold()[2]))\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["threshold", "1000", "frozen", "True"], result.stdout


KERAS_STAGE = """
import sys
from pipeline.console import run_stage

def main():
    import numpy as np
    import tensorflow as tf
    print("at import", sorted(m for m in ("sklearn", "matplotlib") if m in sys.modules))
    model = tf.keras.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(np.zeros((4, 3)), np.zeros(4), verbose=0)
    import matplotlib.pyplot  # what evaluate needs after Keras still imports
    import sklearn.metrics  # noqa: F401
    print("after", sorted(m for m in ("sklearn", "matplotlib") if m in sys.modules))

run_stage(main)
"""


def test_a_stage_process_loads_keras_without_the_extras_it_never_uses(tmp_path):
    """run_stage: TensorFlow's import of Keras brings in neither scikit-learn nor matplotlib
    (Keras' optional wrappers and plots); Keras trains, and both import afterwards."""
    script = tmp_path / "stage.py"
    script.write_text(KERAS_STAGE)
    env = {**__import__("os").environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["at import []", "after ['matplotlib', 'sklearn']"], \
        result.stdout


@pytest.mark.parametrize("stage", ["check", "download", "prepare", "baseline", "train",
                                   "evaluate", "report", "predict", "promote", "seed_study"])
def test_every_command_has_help(stage):
    result = run(f"pipeline.{stage}", "--help")
    assert result.returncode == 0 and "usage:" in result.stdout


@pytest.mark.parametrize(("args", "says"), [
    (["--seeds", "0"], "--seeds: '0' is not a whole number >= 1, e.g. 5"),
    (["--first-seed", "-1"], "--first-seed: '-1' is not a seed from 0 to 4294967295, e.g. 42"),
    (["--first-seed", "4294967295", "--seeds", "2"], "passes the largest seed, 4294967295; "
                                                      "use a smaller --first-seed"),
])
def test_a_seed_study_refuses_bad_seeds_on_its_command_line(args, says):
    """Command-line mistakes are the command line's (argparse's usage), not params.yaml's."""
    result = run("pipeline.seed_study", "imdb_dense", *args)
    assert result.returncode == 2 and says in result.stderr, result.stderr
    assert "params.yaml" not in result.stderr
