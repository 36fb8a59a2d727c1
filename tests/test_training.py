"""baseline -> train -> evaluate on tiny prepared data, tracked in a throw-away MLflow store."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import closed_port_url, mirrored_params

from pipeline.config import compose
from pipeline.download import download
from pipeline.errors import ConfigError
from pipeline.files import load_split
from pipeline.prepare import prepare

pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")


def small_models(raw: dict) -> dict:
    """The project's models, trained for 2 epochs (K-fold: 2 folds of 2 epochs)."""
    for model in raw["models"].values():
        model["epochs"] = 2
        if model["kfold"]:
            model["kfold"] = {"folds": 2, "epochs": 2}
    raw["baseline"]["cv_folds"] = 2
    raw["baseline"]["n_jobs"] = 1
    return raw


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Prepared tiny datasets (served from a local mirror folder) and an empty MLflow store."""
    root = tmp_path_factory.mktemp("training")
    raw = small_models(mirrored_params(root))
    raw["tracking"]["uri"] = f"sqlite:///{root / 'mlflow.db'}"
    params = compose(raw)
    data = root / "data"
    for name in params.datasets:
        download(name, params, data / name / "raw")
        prepare(name, params, data)
    return {"root": root, "raw": raw, "params": params, "data": data}


@pytest.fixture(autouse=True)
def _tracking(workspace, monkeypatch):
    monkeypatch.chdir(workspace["root"])  # MLflow puts artifacts under ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(workspace["raw"]["tracking"]["uri"])


def run_of(path: Path):
    return mlflow.MlflowClient().get_run(json.loads(path.read_text())["run_id"])


def test_baseline_scores_and_is_tracked(workspace):
    from pipeline.baseline import baseline

    out = workspace["root"] / "results" / "imdb" / "baseline"
    metrics = baseline("imdb", workspace["params"], workspace["data"], out)

    for key in ("cv_accuracy", "val_accuracy", "test_accuracy", "test_loss"):
        assert key in metrics and np.isfinite(metrics[key])
    assert json.loads((out / "metrics.json").read_text()) == metrics
    run = run_of(out / "run.json")
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test_accuracy"])
    assert run.data.params["baseline.classifier.loss"] == "log_loss"
    assert run.data.tags["dataset"] == "imdb" and run.data.tags["data_source"] == "mirror"
    experiment = mlflow.MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "imdb"


def test_regression_baseline(workspace):
    from pipeline.baseline import baseline

    out = workspace["root"] / "results" / "boston_housing" / "baseline"
    metrics = baseline("boston_housing", workspace["params"], workspace["data"], out)
    assert {"cv_mae", "test_mae", "test_rmse"} <= set(metrics)
    assert "val_mae" not in metrics  # Boston has no validation split: K-fold instead


@pytest.mark.parametrize("model", ["imdb_dense", "fashion_mnist_cnn", "boston_housing_dense"])
def test_train_and_evaluate_are_tracked(workspace, model):
    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    dataset = params.models[model].dataset
    models_dir, out = root / "models", root / "results" / dataset / model
    summary = train(model, params, data, models_dir / model)
    metrics = evaluate(model, params, data, models_dir, out)

    assert (models_dir / model / "model.keras").is_file()
    run = run_of(models_dir / model / "run.json")
    client = mlflow.MlflowClient()
    assert run.info.run_name == f"{dataset} {model} (keras)"
    assert run.data.params["model.epochs"] == "2" and "dataset.task" in run.data.params
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(summary["epochs"]))
    for key, value in metrics.items():
        if key.startswith("test_") and isinstance(value, float):
            assert run.data.metrics[key] == pytest.approx(value)
    assert (out / "metrics.json").is_file() and (out / "history.csv").is_file()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/learning_curves.png" in artifacts
    if params.datasets[dataset].task == "regression":
        assert "kfold_val_mae" in summary and len(summary["kfold_val_mae"]) == 2
        assert "plots/predictions.png" in artifacts
    else:
        assert "plots/confusion_matrix.png" in artifacts
        assert len(metrics["confusion_matrix"]) == len(params.datasets[dataset].classes)
        assert set(metrics["per_class"]) == set(params.datasets[dataset].classes)
    loaded = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    x, _ = load_split(data / dataset / "prepared" / "test.npz")
    x = x[:2].toarray() if hasattr(x, "toarray") else x[:2]
    assert loaded.predict(x, verbose=0).shape[0] == 2


def test_training_is_deterministic(workspace):
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    first = root / "det1"
    second = root / "det2"
    train("reuters_dense", params, data, first)
    train("reuters_dense", params, data, second)
    assert (json.loads((first / "history.json").read_text())
            == json.loads((second / "history.json").read_text()))


def test_nan_loss_fails_and_saves_nothing(workspace):
    from pipeline.train import TrainingFailed, train

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["boston_housing_dense"]["optimizer"]["learning_rate"] = 1e30
    raw["models"]["boston_housing_dense"]["kfold"] = None
    out = workspace["root"] / "nan_model"
    with pytest.raises(TrainingFailed, match=r"NaN.*models\.boston_housing_dense\.optimizer"):
        train("boston_housing_dense", compose(raw), workspace["data"], out)
    assert not out.exists()


@pytest.mark.parametrize("via", ["MLFLOW_TRACKING_URI", "tracking.uri in params.yaml"])
def test_unreachable_tracking_store_fails_before_training(workspace, monkeypatch, via):
    import re
    import time

    from pipeline.train import train

    server = closed_port_url()  # an http:// tracking server that is down
    params = workspace["params"]
    if via == "MLFLOW_TRACKING_URI":
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    else:  # the one setting, with no MLFLOW_TRACKING_URI around to outrank it
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        raw = copy.deepcopy(workspace["raw"])
        raw["tracking"]["uri"] = server
        params = compose(raw)
    fitted = []
    monkeypatch.setattr("pipeline.train.fit_once", lambda *a, **k: fitted.append(1))
    out = workspace["root"] / "no_store"
    started = time.monotonic()
    with pytest.raises(ConfigError) as failure:
        train("imdb_dense", params, workspace["data"], out)
    message = str(failure.value)
    assert f"{server} (from {via}) cannot be reached" in message
    assert re.search(r"Fix: start the server .* or unset MLFLOW_TRACKING_URI", message)
    assert "\n" not in message and time.monotonic() - started < 10  # one line, fast
    assert fitted == [] and not out.exists()


def test_tracking_failure_after_training_keeps_the_model(workspace, monkeypatch):
    from pipeline.train import train

    def broken(*args, **kwargs):
        raise ConnectionError("store went away")

    monkeypatch.setattr("pipeline.train.log_training_run", broken)
    out = workspace["root"] / "kept"
    with pytest.raises(ConfigError, match=r"model is saved in .*kept/model\.keras"):
        train("imdb_dense", workspace["params"], workspace["data"], out)
    assert (out / "model.keras").is_file() and (out / "history.json").is_file()


def test_bad_layer_config_fails_before_training(workspace):
    from pipeline.train import train

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["imdb_dense"]["layers"][0] = {"type": "Dense", "unitz": 16}
    with pytest.raises(ConfigError, match=r"models\.imdb_dense\.layers\[0\]"):
        train("imdb_dense", compose(raw), workspace["data"], workspace["root"] / "bad")


def test_champion_alias_moves_only_for_a_better_validation_score(workspace):
    import keras

    from pipeline import tracking

    mlflow.set_experiment("registry-test")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    example = np.zeros((1, 3), dtype=np.float32)
    runs = []
    for _ in range(3):
        with mlflow.start_run() as run:
            tracking.log_keras_model(model, None, example)
            runs.append(run.info.run_id)
    client = mlflow.MlflowClient()

    def champion() -> str:
        return client.get_model_version_by_alias("toy", tracking.CHAMPION).run_id

    assert tracking.promote_if_best("toy", runs[0], "val_accuracy", 0.80, True)[1]
    assert champion() == runs[0]
    assert not tracking.promote_if_best("toy", runs[1], "val_accuracy", 0.70, True)[1]
    assert champion() == runs[0]  # a worse model is registered but not promoted
    assert tracking.promote_if_best("toy", runs[2], "val_accuracy", 0.90, True)[1]
    assert champion() == runs[2]
    versions = client.search_model_versions("name='toy'")
    assert len(versions) == 3
    tracking.promote_if_best("toy", runs[1], "val_accuracy", 0.70, True)  # again: no new version
    assert len(client.search_model_versions("name='toy'")) == 3


def test_predict_with_the_champion_on_raw_inputs(workspace, tmp_path, capsys):
    from pipeline.evaluate import evaluate
    from pipeline.predict import predict
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    for model in ("imdb_dense", "boston_housing_dense", "fashion_mnist_dense"):
        dataset = params.models[model].dataset
        train(model, params, data, root / "models" / model)
        evaluate(model, params, data, root / "models", root / "results" / dataset / model)

    reviews = tmp_path / "reviews.json"
    reviews.write_text(json.dumps([[1, 14, 22, 16], [1, 5, 9]]))
    lines = predict("imdb", reviews, params, None, data)
    assert len(lines) == 2 and all(("positive" in ln) or ("negative" in ln) for ln in lines)
    assert capsys.readouterr().out.strip().splitlines() == lines

    house = tmp_path / "house.csv"
    house.write_text("0.00632,18.0,2.31,0.0,0.538,6.575,65.2,4.09,1.0,296.0,15.3,396.9,4.98\n")
    [line] = predict("boston_housing", house, params, None, data)
    assert np.isfinite(float(line.split(": ")[1]))

    images = tmp_path / "images.npy"
    np.save(images, np.zeros((2, 28, 28), dtype=np.uint8))
    lines = predict("fashion_mnist", images, params, None, data)
    assert len(lines) == 2
    assert any(name in lines[0] for name in params.datasets.fashion_mnist.classes)


def test_predict_errors_name_the_problem(workspace, tmp_path):
    from pipeline.errors import DataError
    from pipeline.predict import predict

    params, data = workspace["params"], workspace["data"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(DataError, match=r"bad\.json: expected a \.json file holding"):
        predict("imdb", bad, params, None, data)
    wrong_shape = tmp_path / "img.npy"
    np.save(wrong_shape, np.zeros((2, 5, 5), dtype=np.uint8))
    with pytest.raises(DataError, match=r"expected a \.npy file of uint8"):
        predict("fashion_mnist", wrong_shape, params, None, data)
    good = tmp_path / "r.json"
    good.write_text("[[1, 2, 3]]")
    with pytest.raises(DataError, match=r"no model at runs:/0123abc/model.*Fix"):
        predict("imdb", good, params, "0123abc", data)
    with pytest.raises(ConfigError, match="unknown dataset"):
        predict("imbd", good, params, None, data)


def test_mlflow_models_serve_answers_a_rest_request(workspace, tmp_path):
    """`mlflow models serve` on a logged model, local environment, 127.0.0.1 only."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    out = root / "models" / "serve_boston"
    train("boston_housing_dense", params, data, out)
    run = run_of(out / "run.json")
    model_dir = run.info.artifact_uri.removeprefix("file://") + "/model"
    port = int(closed_port_url().rsplit(":", 1)[1])
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", model_dir, "-h", "127.0.0.1", "-p",
         str(port), "--env-manager", "local"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ['PATH']}"})
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                assert time.monotonic() < deadline, "mlflow models serve did not start"
                time.sleep(1)
        x, _ = load_split(data / "boston_housing" / "prepared" / "test.npz")
        body = json.dumps({"inputs": x[:3].tolist()}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            predictions = json.loads(response.read())["predictions"]
        assert np.asarray(predictions).reshape(-1).shape == (3,)
        assert np.all(np.isfinite(np.asarray(predictions, dtype=float)))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
