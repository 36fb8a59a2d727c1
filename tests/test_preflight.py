"""What only Keras, scikit-learn and the prepared data know about params.yaml, checked
before any training (pipeline/preflight.py, run by the `check` stage): each mistake in one
line naming its key. Split from test_config.py: these pay the TensorFlow import."""

from __future__ import annotations

import pytest
from helpers.params import broken, put
from helpers.paths import ROOT

from pipeline.config import compose, load_params
from pipeline.errors import ConfigError

pytestmark = pytest.mark.fast  # the inner-loop tier: `pytest -m fast` (README: Tests)

M, D = "models.imdb_dense", "datasets.imdb"


def facts(params, dataset: str, rows: int, shape: list[int], sparse: bool = False) -> dict:
    """A manifest as `prepare` writes it, reduced to what the checks read."""
    from pipeline.facts import dataset_settings

    return {"settings": dataset_settings(params.datasets[dataset]),
            "splits": {"train": {"rows": rows, "x_shape": [rows, *shape], "sparse": sparse},
                       "val": {"rows": 10}}}


DEEP = [
    ("loss typo", put(f"{M}.loss", "binary_crossentropyy"), f"{M}.loss",
     "use binary_crossentropy"),
    ("metric typo", put(f"{M}.metrics", ["accuracy", "acuracy"]), f"{M}.metrics[1]",
     "not a Keras metric"),
    ("optimizer typo", put(f"{M}.optimizer.type", "rmsprp"), f"{M}.optimizer",
     "Keras refuses it"),
    ("an optimizer Keras can't build from a config", put(f"{M}.optimizer.type",
     "LossScaleOptimizer"), f"{M}.optimizer", "Keras refuses it"),  # KeyError, not TypeError
    ("optimizer argument typo", put(f"{M}.optimizer.learning_rat", 0.1), f"{M}.optimizer",
     "learning_rat"),
    ("activation typo", put(f"{M}.layers.0.activation", "rleu"), f"{M}.layers[0]", "rleu"),
    ("layer type typo", put(f"{M}.layers.0.type", "Dens"), f"{M}.layers[0].type",
     "use Dense"),
    ("layer argument typo", put(f"{M}.layers.0.unitz", 3), f"{M}.layers[0]", "unitz"),
    ("dropout rate 1.5", put("models.fashion_mnist_dense.layers.2.rate", 1.5),
     "models.fashion_mnist_dense.layers[2]", "rate"),
    ("a layer that doesn't fit the data", put(f"{M}.layers.0", {
        "type": "Conv2D", "filters": 4, "kernel_size": 3}), f"{M}.layers[0]", "fits"),
    ("outputs against classes", put("models.reuters_dense.layers.2.units", 10),
     "models.reuters_dense.layers[2]", "46 output values"),
    ("more folds than rows", put("models.boston_housing_dense.kfold.folds", 500),
     "models.boston_housing_dense.kfold.folds", "at most 404"),
    ("more validation rows than rows", put(f"{D}.split.validation", 30000),
     f"{D}.split.validation", "fewer than 15010"),
    ("SGD loss typo", put("baseline.classifier.loss", "log_losss"),
     "baseline.classifier.loss", "scikit-learn refuses it"),
    ("SGD option typo", put("baseline.regressor.alpah", 0.1), "baseline.regressor.alpah",
     "scikit-learn refuses it"),
    ("one-hot loss for class-index labels", put("models.mnist_dense.loss",
     "categorical_crossentropy"), "models.mnist_dense.loss", "Keras can't score"),
    ("sparse loss on one sigmoid unit", put(f"{M}.loss", "sparse_categorical_crossentropy"),
     f"{M}.loss", "Keras can't score"),
    ("two layers with one name", lambda raw: [layer.update(name="a") for layer in
     raw["models"]["imdb_dense"]["layers"][:2]], f"{M}.layers", "distinct names"),
    ("a layer named like the input", put(f"{M}.layers.0.name", "features"), f"{M}.layers",
     "distinct names"),
    ("an abstract layer", put(f"{M}.layers.1", {"type": "Layer"}), f"{M}.layers[1]",
     "Keras refuses it"),
]


@pytest.mark.parametrize(("what", "edit", "key", "says"), DEEP, ids=[c[0] for c in DEEP])
def test_what_keras_and_the_data_know_is_checked_before_training(what, edit, key, says):
    pytest.importorskip("keras")
    from pipeline.check import asked, part_fingerprints
    from pipeline.preflight import check_all

    params = compose(broken(edit))
    prepared = load_params(ROOT / "params.yaml")  # the data was prepared before the edit
    manifests = {
        "imdb": facts(prepared, "imdb", 15000, [10000], sparse=True),
        "reuters": facts(prepared, "reuters", 7982, [10000], sparse=True),
        "boston_housing": facts(prepared, "boston_housing", 404, [13]),
        "fashion_mnist": facts(prepared, "fashion_mnist", 48000, [28, 28]),
        "mnist": facts(prepared, "mnist", 3600, [28, 28]),
    }
    # As the `check` stage asks after this edit (rows and folds: always; Keras: about the
    # models it reaches; scikit-learn: if it reaches the baseline's options), so this also
    # shows that no mistake hides behind that stage's memo.
    keras, sklearn = asked(part_fingerprints(prepared, manifests),
                           part_fingerprints(params, manifests))
    with pytest.raises(ConfigError) as err:
        check_all(params, manifests, ask_keras=keras, ask_sklearn=sklearn)
    message = str(err.value)
    assert message.startswith(f"params.yaml: {key}:"), message
    assert says in message and "Fix:" in message and "\n" not in message, message


def test_sensible_variants_pass_every_check():
    """What Keras accepts is accepted: `ACC` for accuracy (and its monitor), early stopping on
    the training loss, SGD's own early stopping (needs rows for its validation_fraction)."""
    pytest.importorskip("keras")
    from pipeline.preflight import check_all

    raw = broken(put(f"{M}.metrics", ["accuracy", "ACC"]))
    raw["models"]["imdb_dense"]["early_stopping"] = {"monitor": "val_ACC", "patience": 0}
    raw["models"]["mnist_dense"]["early_stopping"]["monitor"] = "loss"
    raw["baseline"]["classifier"].update(early_stopping=True, validation_fraction=0.1)
    params = compose(raw)
    check_all(params, {"imdb": facts(params, "imdb", 15000, [10000], sparse=True)})


def test_the_project_params_pass_every_check():
    pytest.importorskip("keras")
    from pipeline.preflight import check_all

    params = load_params(ROOT / "params.yaml")
    check_all(params, {
        "imdb": facts(params, "imdb", 15000, [10000], sparse=True),
        "reuters": facts(params, "reuters", 7982, [10000], sparse=True),
        "boston_housing": facts(params, "boston_housing", 404, [13]),
        "fashion_mnist": facts(params, "fashion_mnist", 48000, [28, 28]),
        "mnist": facts(params, "mnist", 3600, [28, 28]),
    })


def test_check_asks_keras_only_about_the_models_a_change_reaches(tmp_path, monkeypatch):
    """The `check` stage's memo (data/check.json): unchanged settings check nothing again;
    a change Keras doesn't read (a learning rate's value, epochs) asks it nothing, one
    model's layers rebuild that model alone, a dataset setting its models; scikit-learn is
    asked only when the baseline's options change. Every rule of validate.py and every
    rows-and-folds check runs after any change."""
    import yaml

    from pipeline import check, facts, preflight

    asked: list[str] = []
    monkeypatch.setattr(preflight, "check_model", lambda name, *_: asked.append(name))
    monkeypatch.setattr(facts, "check_baseline_options", lambda _: asked.append("sklearn"))
    params_file, data = tmp_path / "params.yaml", tmp_path / "data"
    data.mkdir()

    def run(*edits) -> list[str]:
        raw = broken(lambda _: None)
        for edit in edits:
            edit(raw)
        params_file.write_text(yaml.safe_dump(raw, sort_keys=False))
        asked.clear()
        check.check(params_file, data, data / "check.json", data / "probe.json")
        return sorted(asked)

    everything = sorted([*load_params(ROOT / "params.yaml").models, "sklearn"])
    lr, units = put(f"{M}.optimizer.learning_rate", 0.0009), put(f"{M}.layers.0.units", 8)
    assert run() == everything
    assert run() == []  # nothing changed: the ~0.3 s path
    assert run(lr) == []
    assert run(lr, put(f"{M}.epochs", 3)) == []
    assert run(lr, units) == ["imdb_dense"]
    assert run(lr, units, put(f"{D}.load.num_words", 9000)) == ["imdb_dense"]
    assert run(lr, units, put(f"{D}.load.num_words", 9000), put("baseline.cv_folds", 4)) == []
    assert run(lr, put(f"{M}.optimizer.learning_rate", 1)) == ["imdb_dense"]  # int: refused
    # imdb_dense again: its learning rate is back to a float
    assert run(put("baseline.classifier.alpha", 0.001)) == ["imdb_dense", "sklearn"]
    with pytest.raises(ConfigError, match=r"models.imdb_dense.optimizer.learning_rate"):
        run(put(f"{M}.optimizer.learning_rate", -1.0))  # validate.py's rules: every time
    (data / "check.json").write_text("{not json")  # a damaged memo: everything again
    assert run() == everything


def test_keras_check_reads_only_what_the_check_memo_fingerprints():
    """keras_reads (pipeline/keras_reads.py) decides whether Keras is asked again (the check
    stage) and how often (a sweep): models.check_model must read nothing else (struct mode:
    any other key raises), and any float learning rate validate.py allows must pass every
    Keras optimizer alike (its value is left out)."""
    pytest.importorskip("keras")
    import inspect

    import keras
    from omegaconf import OmegaConf

    from pipeline.keras_reads import keras_reads
    from pipeline.models import _optimizer, check_model
    from pipeline.validate import MAX_LEARNING_RATE

    params = load_params(ROOT / "params.yaml")
    shapes = {"imdb": ([10000], True), "reuters": ([10000], True), "boston_housing": ([13], False),
              "fashion_mnist": ([28, 28], False), "mnist": ([28, 28], False)}
    for name, model in params.models.items():
        read = keras_reads(model, params.datasets[model.dataset])
        read["model"]["optimizer"]["learning_rate"] = model.optimizer.learning_rate
        only_model, only_ds = OmegaConf.create(read["model"]), OmegaConf.create(read["dataset"])
        for node in (only_model, only_ds):
            OmegaConf.set_struct(node, True)
        shape, sparse = shapes[model.dataset]
        check_model(name, only_model, only_ds, facts(params, model.dataset, 100, shape, sparse))

    optimizers = [n for n, c in vars(keras.optimizers).items()
                  if inspect.isclass(c) and issubclass(c, keras.optimizers.Optimizer)]
    for optimizer in optimizers:
        answers = set()
        for rate in (1e-12, 0.001, 1.0, MAX_LEARNING_RATE):
            cfg = OmegaConf.create({"optimizer": {"type": optimizer, "learning_rate": rate}})
            try:
                _optimizer("m", cfg)
                answers.add("accepted")
            except Exception as err:  # some refuse whatever the rate: the same each time
                answers.add(f"{type(err).__name__}: {err}".replace(str(rate), "<rate>"))
        assert len(answers) == 1, (optimizer, answers)
