"""baseline -> train -> evaluate on tiny prepared data, tracked in a throw-away MLflow store."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from helpers.net import closed_port_url, free_port

from pipeline.arrays import dense, load_split
from pipeline.config import compose
from pipeline.errors import ConfigError, DataError, TrackingUnavailable

pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")


def use_workspace_store(workspace, patch: pytest.MonkeyPatch) -> None:
    patch.chdir(workspace["root"])  # MLflow puts artifacts under ./mlruns
    patch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(workspace["raw"]["tracking"]["uri"])


@pytest.fixture(autouse=True)
def _tracking(workspace, monkeypatch):
    use_workspace_store(workspace, monkeypatch)


TRACKED = ("imdb_dense", "fashion_mnist_cnn", "boston_housing_dense")  # one per kind of task


@pytest.fixture(scope="module")
def trained(workspace) -> dict[str, tuple[dict, dict]]:
    """TRACKED trained and evaluated once into the workspace, as `dvc repro` would, for the
    tests that read what that leaves (its runs, files, champions): model -> (train's
    summary, evaluate's metrics)."""
    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    done = {}
    with pytest.MonkeyPatch.context() as patch:  # module-scoped: _tracking isn't set up yet
        use_workspace_store(workspace, patch)
        for model in TRACKED:
            dataset = params.models[model].dataset
            summary = train(model, params, data, root / "models" / model)
            done[model] = summary, evaluate(model, params, data, root / "models",
                                            root / "results" / dataset / model)
    return done


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
    assert run.data.tags["data_label"] == "real"  # the words the stages and report use
    experiment = mlflow.MlflowClient().get_experiment(run.info.experiment_id)
    assert experiment.name == "imdb"


def test_regression_baseline(workspace):
    from pipeline.baseline import baseline

    out = workspace["root"] / "results" / "boston_housing" / "baseline"
    metrics = baseline("boston_housing", workspace["params"], workspace["data"], out)
    assert {"cv_mae", "test_mae", "test_rmse"} <= set(metrics)
    assert "val_mae" not in metrics  # Boston has no validation split: K-fold instead


@pytest.mark.parametrize("model", TRACKED)
def test_train_and_evaluate_are_tracked(workspace, trained, model):
    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    dataset = params.models[model].dataset
    models_dir, out = root / "models", root / "results" / dataset / model
    summary, metrics = trained[model]

    assert (models_dir / model / "model.keras").is_file()
    run = run_of(models_dir / model / "run.json")
    client = mlflow.MlflowClient()
    assert run.info.run_name == f"{dataset} {model} (keras)"
    assert run.data.params["model.epochs"] == "2" and "dataset.task" in run.data.params
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == list(range(summary["epochs"]))
    assert len(client.get_metric_history(run.info.run_id, "epochs")) == 1  # train's, once
    for key, value in metrics.items():
        if key.startswith("test_") and isinstance(value, float):
            assert run.data.metrics[key] == pytest.approx(value)
    assert (out / "metrics.json").is_file() and (out / "history.csv").is_file()
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert "plots/learning_curves.png" in artifacts
    has_conv = any(layer.type == "Conv2D" for layer in params.models[model].layers)
    assert {"plots/conv_filters.png", "plots/conv_feature_maps.png"} <= artifacts or not has_conv
    assert not {"plots/conv_filters.png", "plots/conv_feature_maps.png"} & artifacts or has_conv
    rows = {name: len((out / name).read_text().splitlines()) - 1  # without the header
            for name in ("kfold.csv", "confusion.csv")}
    if params.datasets[dataset].task == "regression":
        assert "kfold_val_mae" in summary and len(summary["kfold_val_mae"]) == 2
        assert "plots/predictions.png" in artifacts and "plots/kfold_validation.png" in artifacts
        assert rows == {"kfold.csv": 2, "confusion.csv": 0}  # 2 epochs
    else:
        assert "plots/confusion_matrix.png" in artifacts
        test_rows = len(load_split(data / dataset / "prepared" / "test.npz")[1])
        assert rows == {"kfold.csv": 0, "confusion.csv": test_rows}
        assert len(metrics["confusion_matrix"]) == len(params.datasets[dataset].classes)
        assert set(metrics["per_class"]) == set(params.datasets[dataset].classes)
    loaded = mlflow.keras.load_model(f"runs:/{run.info.run_id}/model")
    x, _ = load_split(data / dataset / "prepared" / "test.npz")
    assert loaded.predict(dense(x[:2]), verbose=0).shape[0] == 2


def test_evaluate_refuses_a_model_folder_without_its_history(workspace, tmp_path):
    import shutil

    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data = workspace["params"], workspace["data"]
    models = tmp_path / "models"
    train("imdb_dense", params, data, models / "imdb_dense")
    (models / "imdb_dense" / "history.json").unlink()
    with pytest.raises(DataError, match=r"history\.json is missing or empty\. Fix: run `dvc "
                       r"repro -f stages/train/dvc\.yaml:train@imdb_dense`"):
        evaluate("imdb_dense", params, data, models, tmp_path / "results")
    assert not (tmp_path / "results").exists()  # refused before writing anything
    shutil.rmtree(models)


def test_training_is_deterministic(workspace):
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    first = root / "det1"
    second = root / "det2"
    train("reuters_dense", params, data, first)
    train("reuters_dense", params, data, second)
    assert (json.loads((first / "history.json").read_text())
            == json.loads((second / "history.json").read_text()))


def test_kfold_choose_epochs_trains_the_best_epoch_of_the_folds_mean(workspace, tmp_path):
    """The final fit's epochs are read off the K-fold curve of the training split alone."""
    from pipeline.arrays import load_split
    from pipeline.training import fit_and_score

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["boston_housing_dense"].update(epochs=7, kfold={  # 7: never the curve's
        "folds": 2, "epochs": 5, "choose_epochs": {"smoothing": 0.0, "skip": 0}})
    params = compose(raw)
    prepared = workspace["data"] / "boston_housing" / "prepared"
    manifest = json.loads((prepared / "manifest.json").read_text())
    _, history, summary = fit_and_score("boston_housing_dense", params, prepared, manifest,
                                        load_split(prepared / "train.npz"), tmp_path,
                                        progress=False)
    curves = np.array(summary["kfold_history"]["val_mae"])
    assert curves.shape == (2, 5)  # folds x epochs
    assert set(summary["kfold_history"]) == {"val_loss", "val_mae"}
    best = int(np.argmin(curves.mean(axis=0))) + 1
    assert summary["kfold_best_epoch"] == best == summary["final_epochs"]
    assert len(history["loss"]) == best == summary["epochs"]
    assert summary["kfold_best_epoch_rule"] == "lowest val_mae averaged over 2 folds"
    assert summary["final_epochs_rule"] == (
        "models.boston_housing_dense.kfold.choose_epochs (kfold_best_epoch)")


def test_nan_loss_fails_and_saves_nothing(workspace):
    from pipeline.train import train
    from pipeline.training import TrainingFailed

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["boston_housing_dense"]["optimizer"] = {"type": "sgd", "learning_rate": 10.0}
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
    monkeypatch.setattr("pipeline.training.fit_once", lambda *a, **k: fitted.append(1))
    out = workspace["root"] / "no_store"
    started = time.monotonic()
    with pytest.raises(TrackingUnavailable) as failure:
        train("imdb_dense", params, workspace["data"], out)
    message = str(failure.value)
    assert f"{server} (from {via}) cannot be reached" in message
    assert re.search(r"Fix: start the server .* or unset MLFLOW_TRACKING_URI", message)
    assert "\n" not in message and time.monotonic() - started < 10  # one line, fast
    assert fitted == [] and not out.exists()


def test_tracking_failure_after_training_keeps_the_model(workspace, monkeypatch):
    """The store goes away after training: the model is kept, its run ends FAILED saying
    so, and the next run (store back) logs it without training again, naming the run it
    trained in; nothing half-done ever sits in the output folder."""
    import pipeline.train as stage
    from pipeline.train import train

    real_log = stage._log_model

    def broken(*args, **kwargs):
        raise ConnectionError("store went away")

    monkeypatch.setattr(stage, "_log_model", broken)
    out = workspace["root"] / "models" / "kept"
    with pytest.raises(TrackingUnavailable, match=r"kept in .*models/\.pending/kept\. Fix: .*"
                       r"without training again"):
        train("imdb_dense", workspace["params"], workspace["data"], out)
    pending = workspace["root"] / "models" / ".pending" / "kept"
    assert (pending / "model.keras").is_file() and (pending / "history.json").is_file()
    assert not out.exists()
    trained_in = json.loads((pending / "training_key.json").read_text())["run_id"]
    failed = mlflow.MlflowClient().get_run(trained_in)
    assert failed.info.status == "FAILED" and "store went away" in failed.data.tags[
        "pipeline.error"]
    epochs = list(range(len(json.loads((pending / "history.json").read_text())["loss"])))
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(trained_in, "loss")
            ] == epochs  # logged live, as they ended

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(stage, "_log_model", real_log)
    monkeypatch.setattr("pipeline.training.fit_and_score", no_training)
    train("imdb_dense", workspace["params"], workspace["data"], out)
    assert {p.name for p in out.iterdir()} >= {"model.keras", "history.json", "run.json"}
    assert not pending.exists()
    logged = run_of(out / "run.json")
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["pipeline.trained_in_run"] == trained_in
    assert [m.step for m in mlflow.MlflowClient().get_metric_history(
        logged.info.run_id, "loss")] == epochs


def test_bad_layer_config_fails_before_training(workspace):
    from pipeline.train import train

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["imdb_dense"]["layers"][0] = {"type": "Dense", "unitz": 16}
    with pytest.raises(ConfigError, match=r"models\.imdb_dense\.layers\[0\]"):
        train("imdb_dense", compose(raw), workspace["data"], workspace["root"] / "bad")


def test_champion_alias_moves_only_for_a_better_validation_score(workspace):
    import keras

    from pipeline import registry, run_log

    mlflow.set_experiment("registry-test")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    example = np.zeros((1, 3), dtype=np.float32)
    runs = []
    for _ in range(3):
        with mlflow.start_run() as run:
            run_log.log_keras_model(model, None, example)
            runs.append(run.info.run_id)
    client = mlflow.MlflowClient()

    def champion() -> str:
        return client.get_model_version_by_alias("toy", registry.CHAMPION).run_id

    assert registry.register("toy", runs[0], "val_accuracy", 0.80)[1]
    assert champion() == runs[0]
    assert not registry.register("toy", runs[1], "val_accuracy", 0.70)[1]
    assert champion() == runs[0]  # a worse model is registered but not promoted
    assert registry.register("toy", runs[2], "val_accuracy", 0.90)[1]
    assert champion() == runs[2]
    versions = client.search_model_versions("name='toy'")
    assert len(versions) == 3
    registry.register("toy", runs[1], "val_accuracy", 0.70)  # again: no new version
    assert len(client.search_model_versions("name='toy'")) == 3

    # A loss or an error: lower wins (the one definition in pipeline/metrics.py).
    assert registry.register("toy_mae", runs[0], "val_mae", 3.0)[1]
    assert not registry.register("toy_mae", runs[1], "kfold_val_mae_mean", 3.5)[1]
    assert registry.register("toy_mae", runs[2], "kfold_val_mae_mean", 2.5)[1]


def test_predict_with_the_champion_on_raw_inputs(workspace, trained, tmp_path, capsys):
    from pipeline.predict import predict

    params, data = workspace["params"], workspace["data"]
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
    from pipeline.predict import predict

    params, data = workspace["params"], workspace["data"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(DataError, match=r"bad\.json: .*; expected a \.json file holding"):
        predict("imdb", bad, params, None, data)
    wrong_shape = tmp_path / "img.npy"
    np.save(wrong_shape, np.zeros((2, 5, 5), dtype=np.uint8))
    with pytest.raises(DataError, match=r"expected a \.npy file of uint8"):
        predict("fashion_mnist", wrong_shape, params, None, data)
    good = tmp_path / "r.json"
    good.write_text("[[1, 2, 3]]")
    with pytest.raises(DataError, match=r"'0123abc' is not an MLflow run id.*Fix"):
        predict("imdb", good, params, "0123abc", data)
    with pytest.raises(DataError, match=r"no Keras model at runs:/0{32}/model.*Fix"):
        predict("imdb", good, params, "0" * 32, data)
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
    (model,) = mlflow.search_logged_models(  # the run's logged model, by MLflow's own search
        experiment_ids=[run.info.experiment_id], output_format="list",
        filter_string=f"source_run_id = '{run.info.run_id}'")
    port = free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [str(mlflow_bin), "models", "serve", "-m", f"models:/{model.model_id}", "-h",
         "127.0.0.1", "-p", str(port), "--env-manager", "local"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        env={**os.environ, "PATH": f"{mlflow_bin.parent}{os.pathsep}{os.environ['PATH']}",
             "MLFLOW_TRACKING_URI": workspace["raw"]["tracking"]["uri"]})
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


# --- a kill or a failure leaves nothing behind and loses nothing -----------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def abandoned_run(experiment: str, step: str) -> str:
    """A RUNNING run as a SIGKILLed stage leaves it: owned by a process that is gone."""
    from pipeline import tracking
    from pipeline.files import HOST

    client = mlflow.MlflowClient()
    run = client.create_run(tracking.experiment_id(client, experiment), tags={
        tracking.STEP_TAG: step, "pipeline.host": HOST, "pipeline.pid": str(dead_pid())})
    return run.info.run_id


@pytest.mark.parametrize(("stage", "target"), [("train", "reuters_dense"),
                                               ("baseline", "reuters")])
def test_a_run_left_running_by_a_killed_stage_is_ended_by_the_next(workspace, stage, target):
    from pipeline import tracking

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    orphan = abandoned_run("reuters", f"{stage}@{target}")
    other = abandoned_run("reuters", "train@someone_else")
    alive = mlflow.MlflowClient().create_run(
        tracking.experiment_id(mlflow.MlflowClient(), "reuters"),
        tags={tracking.STEP_TAG: f"{stage}@{target}", **tracking.owner_tags()}).info.run_id
    if stage == "train":
        from pipeline.train import train

        train(target, params, data, root / "models" / f"orphans_{target}")
    else:
        from pipeline.baseline import baseline

        baseline(target, params, data, root / "results" / target / "orphans")
    client = mlflow.MlflowClient()
    ended = client.get_run(orphan)
    assert ended.info.status == "KILLED"
    assert "ended without ending the run" in ended.data.tags["pipeline.error"]
    assert client.get_run(other).info.status == "RUNNING"  # another step's: not ours to end
    assert client.get_run(alive).info.status == "RUNNING"  # its process is alive
    client.set_terminated(other, "KILLED")
    client.set_terminated(alive, "KILLED")


def test_a_failed_training_ends_its_run_failed_with_the_reason(workspace, monkeypatch):
    """The run exists from the start: a training that breaks at its third epoch leaves a
    FAILED run that says why, with the two epochs it finished."""
    import keras

    from pipeline import training
    from pipeline.train import train

    class Breaks(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise OSError("disk full while saving a checkpoint")

    real = training.build_callbacks
    monkeypatch.setattr(training, "build_callbacks", lambda *a, **k: [*real(*a, **k), Breaks()])
    params = compose({**workspace["raw"], "models": {**workspace["raw"]["models"], "imdb_dense": {
        **workspace["raw"]["models"]["imdb_dense"], "epochs": 5, "early_stopping": None}}})
    with pytest.raises(OSError, match="disk full"):
        train("imdb_dense", params, workspace["data"], workspace["root"] / "models" / "broken")
    client = mlflow.MlflowClient()
    runs = client.search_runs([mlflow.get_experiment_by_name("imdb").experiment_id],
                              "tags.`pipeline.error` LIKE '%disk full%'")
    assert [r.info.status for r in runs] == ["FAILED"]
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")] == [0, 1]
    assert runs[0].data.params["model.epochs"] == "5"  # logged before the training


def test_no_retries_only_for_the_reachability_check(workspace, monkeypatch):
    """MLflow's retries are off while connect() checks the store (fast failure), and on again
    for every upload after it (a team server's hiccup must not fail a long training), a few
    times over seconds (not 7 times over minutes). Also at the next connect() in the same
    process (a sweep worker's next trial); a value the user set is theirs."""
    import os

    from pipeline import tracking

    for key in tracking.UPLOAD_ENV:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(tracking, "_EXPORTED", {})
    seen = []
    real = mlflow.search_experiments
    monkeypatch.setattr(mlflow, "search_experiments", lambda **kw: (
        seen.append(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")), real(**kw))[1])
    tracking.connect(workspace["params"])
    tracking.connect(workspace["params"])
    assert seen == ["0", "0"]
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "5")  # the user's, for both
    tracking.connect(workspace["params"])
    assert seen[-1] == "5" and os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "5"


def test_the_registry_fails_loudly_on_anything_but_not_found(workspace, monkeypatch):
    """Only "no such registered model yet" is expected; any other MLflow error fails the
    stage and the champion stays where it was."""
    import keras
    from mlflow.exceptions import MlflowException

    from pipeline import registry, run_log

    mlflow.set_experiment("registry-errors")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    runs = []
    for _ in range(2):
        with mlflow.start_run() as run:
            run_log.log_keras_model(model, None, np.zeros((1, 3), dtype=np.float32))
            runs.append(run.info.run_id)
    assert registry.register("loud", runs[0], "val_accuracy", 0.5)[1]

    def flaky(self, name):
        raise MlflowException("database is locked", error_code="INTERNAL_ERROR")

    monkeypatch.setattr(mlflow.MlflowClient, "get_registered_model", flaky)
    with pytest.raises(MlflowException, match="database is locked"):
        registry.register("loud", runs[1], "val_accuracy", 0.9)
    monkeypatch.undo()
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("loud", registry.CHAMPION).run_id == runs[0]


PREDICT_CASES = [
    ("fashion_mnist", "empty.npy", b"", "not a readable .npy file"),
    ("fashion_mnist", "none.npy", np.zeros((0, 28, 28), dtype=np.uint8), "holds no rows"),
    ("fashion_mnist", "floats.npy", np.zeros((1, 28, 28)), "float64 values, not uint8"),
    ("fashion_mnist", "pickle.npy", np.array([{"a": 1}], dtype=object),
     "not a readable .npy file"),
    ("imdb", "huge.json", "[[1, 14, 100000000000000000000000000000]]",
     "row 0 holds the word index 100000000000000000000000000000"),
    ("imdb", "negative.json", "[[1, -4]]", "row 0 holds the word index -4"),
    ("imdb", "bools.json", "[[true, false]]", "row 0 holds true, not a word index"),
    ("imdb", "floats.json", "[[1.5, 2]]", "row 0 holds 1.5, not a word index"),
    ("imdb", "nothing.json", "[]", "holds no rows"),
    ("imdb", "text.json", "[[1, 2], ", "not readable JSON"),
    ("boston_housing", "nan.csv", ",".join(["1"] * 13) + "\n" + ",".join(["nan"] * 13) + "\n",
     "row 1 holds NaN or infinity"),
    ("boston_housing", "short.csv", "1,2,3\n", "holds rows of 3 numbers"),
    ("boston_housing", "words.csv", "a,b,c\n", "not a table of numbers"),
    ("boston_housing", "empty.csv", "", "holds no rows"),
    ("boston_housing", "huge.csv", ",".join(["1e308"] * 13) + "\n",
     "row 0 is out of range once preprocessed"),
    ("fashion_mnist", "lies.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': "
     b"False, 'shape': (1000000000, 28, 28), }" + b" " * 48 + b"\n", "not a readable .npy"),
]


@pytest.mark.parametrize(("dataset", "name", "content", "message"), PREDICT_CASES,
                         ids=[c[1] for c in PREDICT_CASES])
def test_predict_refuses_bad_inputs_naming_file_and_value(workspace, tmp_path, dataset, name,
                                                          content, message):
    from pipeline.predict import predict

    path = tmp_path / name
    if isinstance(content, np.ndarray):
        np.save(path, content, allow_pickle=True)
        path = path.with_suffix(".npy")
    else:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError) as err:
        predict(dataset, path, workspace["params"], "0" * 32, workspace["data"])
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "Fix:" in text, text
    assert "\n" not in text


def test_predict_reads_word_indices_beyond_the_vocabulary_as_keras_does(workspace):
    """keras.datasets' num_words: an index past the vocabulary is the out-of-vocabulary word."""
    from pipeline.predict import read_inputs

    params = workspace["params"]
    manifest = json.loads((workspace["data"] / "imdb" / "prepared" / "manifest.json")
                          .read_text())
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        inside, outside = Path(tmp) / "a.json", Path(tmp) / "b.json"
        inside.write_text("[[1, 2, 14]]")
        outside.write_text("[[1, 99999, 14]]")
        a = read_inputs(inside, params.datasets.imdb, manifest)
        b = read_inputs(outside, params.datasets.imdb, manifest)
    assert (a != b).nnz == 0  # 99999 is read as the OOV index 2


def test_predict_refuses_a_run_of_another_dataset_or_kind(workspace, tmp_path):
    """--run must name a Keras model of this dataset: another dataset's model would answer
    with the wrong classes, a baseline's isn't a Keras model."""
    from pipeline.predict import predict
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    train("imdb_dense", params, data, root / "models" / "other_kind")
    imdb_run = json.loads((root / "models" / "other_kind" / "run.json").read_text())["run_id"]
    house = tmp_path / "house.csv"
    house.write_text(",".join(["1"] * 13) + "\n")
    with pytest.raises(DataError, match=f"run {imdb_run} holds a model of imdb, not of "
                       "boston_housing"):
        predict("boston_housing", house, params, imdb_run, data)
    baseline_run = json.loads((root / "results" / "imdb" / "baseline" / "run.json").read_text())
    reviews = tmp_path / "r.json"
    reviews.write_text("[[1, 2, 3]]")
    with pytest.raises(DataError, match=r"no Keras model at runs:/.*Fix: pass the run id"):
        predict("imdb", reviews, params, baseline_run["run_id"], data)


STOPPED_INSIDE_A_LIBRARY = """
import sys, time
from pipeline.console import run_stage

def main():
    from pipeline import tracking
    with tracking.live_run("imdb", "train@stopped", "stopped", {}) as run:
        print(run.info.run_id, flush=True)
        try:
            time.sleep(120)
        except KeyboardInterrupt:  # what TensorFlow's own cleanup can do with a stop
            raise AssertionError("a library's cleanup turned the stop into this") from None

run_stage(main)
"""


def test_a_stop_a_library_turned_into_another_error_still_ends_killed(workspace):
    """SIGTERM inside a library whose cleanup raises its own error: the run ends KILLED and
    the line says what stopped it, not 'a bug in the pipeline'."""
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_TRACKING_URI": workspace["raw"]["tracking"]["uri"],
           "PYTHONPATH": str(Path(__file__).parents[1])}
    process = subprocess.Popen([sys.executable, "-c", STOPPED_INSIDE_A_LIBRARY], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_id = process.stdout.readline().strip()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["ERROR stopped by SIGTERM; nothing half-done was kept. "
                                        "Fix: rerun the same command"]
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["pipeline.error"].startswith("interrupted: ")


@pytest.mark.parametrize(("saved", "steps"), [(0.40, [0, 1, 2, 3]), (0.45, [0, 1, 2])],
                         ids=["an earlier epoch restored", "the last epoch kept"])
def test_the_runs_latest_value_is_the_saved_models(workspace, saved, steps):
    """Early stopping restored epoch 1: its figures are logged one step past the last epoch
    (as MLflow's Keras autologging does), so the run's val_loss is the saved model's."""
    from pipeline import run_log, tracking

    client = mlflow.MlflowClient()
    run_id = client.create_run(tracking.experiment_id(client, "imdb")).info.run_id
    history = {"loss": [0.6, 0.5, 0.4], "val_loss": [0.5, 0.40, 0.45]}
    run_log.log_training(client, run_id, history, {"val_loss": saved, "epochs": 3},
                          {"objective": saved})
    client.set_terminated(run_id)
    run = client.get_run(run_id)
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == steps
    assert run.data.metrics["val_loss"] == saved
    assert run.data.metrics["epochs"] == 3 and run.data.metrics["objective"] == saved
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [0, 1, 2]


def test_git_dirty_means_the_code_or_configuration_changed(tmp_path):
    """A fresh clone after `dvc repro` (which rewrites dvc.lock and results/) is clean; an
    edit to params.yaml or the code is what makes a run's checkout dirty."""
    import os
    import subprocess

    from helpers.project import GIT_USER

    from pipeline.run_log import git_tags

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True,
                       env={**os.environ, **GIT_USER})

    for name in ("params.yaml", "dvc.lock", "results/imdb/imdb_dense/metrics.json",
                 "pipeline/train.py", "stages/train/dvc.yaml", "stages/train/dvc.lock"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("1\n")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "clone")
    (tmp_path / "dvc.lock").write_text("2\n")  # what dvc repro writes
    (tmp_path / "stages/train/dvc.lock").write_text("2\n")
    (tmp_path / "results/imdb/imdb_dense/metrics.json").write_text("2\n")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/report.md").write_text("new\n")
    assert git_tags(tmp_path)["git_dirty"] == "false"
    (tmp_path / "params.yaml").write_text("2\n")
    assert git_tags(tmp_path)["git_dirty"] == "true"
    git("checkout", "params.yaml")
    (tmp_path / "stages/train/dvc.yaml").write_text("2\n")  # a pipeline file: what runs
    assert git_tags(tmp_path)["git_dirty"] == "true"
    git("checkout", "stages/train/dvc.yaml")
    (tmp_path / "pipeline/new_module.py").write_text("x = 1\n")  # untracked code counts too
    assert git_tags(tmp_path)["git_dirty"] == "true"


def _fit_boston(workspace, tmp_path: Path, kfold: dict, ensemble: dict | None):
    """fit_and_score on the tiny Boston data: 2 final epochs, `kfold` and `ensemble`."""
    from pipeline.training import fit_and_score

    raw = copy.deepcopy(workspace["raw"])
    raw["models"]["boston_housing_dense"].update(epochs=2, kfold=kfold, ensemble=ensemble)
    tmp_path.mkdir(exist_ok=True)
    prepared = workspace["data"] / "boston_housing" / "prepared"
    manifest = json.loads((prepared / "manifest.json").read_text())
    return fit_and_score("boston_housing_dense", compose(raw), prepared, manifest,
                         load_split(prepared / "train.npz"), tmp_path, progress=False)


def _members(model) -> list:
    import keras

    return [layer for layer in model.layers if isinstance(layer, keras.Model)]


CHOSEN = {"folds": 2, "epochs": 3, "choose_epochs": {"smoothing": 0.0, "skip": 0}}


def test_the_ensemble_predicts_the_mean_of_its_final_fits_and_fold_models(workspace,
                                                                        tmp_path):
    import keras

    model, history, summary = _fit_boston(workspace, tmp_path, CHOSEN,
                                          {"fits": 2, "folds": True})
    members = _members(model)
    assert len(members) == 4  # 2 final fits, 2 fold models
    assert "2 final fits" in summary["ensemble"] and "2 fold models" in summary["ensemble"]
    x, _ = load_split(workspace["data"] / "boston_housing" / "prepared" / "test.npz")
    predicted = model.predict(x, verbose=0)
    each = [m.predict(x, verbose=0) for m in members]
    assert np.allclose(predicted, np.mean(each, axis=0), atol=1e-5)
    assert not np.allclose(each[0], each[1], atol=1e-3)  # the two fits differ: own seeds
    model.save(tmp_path / "model.keras")  # what train saves and evaluate/predict load
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert np.array_equal(loaded.predict(x, verbose=0), predicted)
    assert len(history["loss"]) == summary["final_epochs"] == summary["kfold_best_epoch"]


def test_the_first_fit_and_the_fold_models_are_kept_exactly(workspace, tmp_path):
    """The ensemble's first fit is the model trained without an ensemble, and a fold trained
    3 epochs and put back to the chosen epoch b holds exactly the weights of the same fold
    trained b epochs (same seed, deterministic ops)."""
    chosen, _, summary = _fit_boston(workspace, tmp_path / "a", CHOSEN,
                                     {"fits": 2, "folds": True})
    best = summary["kfold_best_epoch"]
    single, _, _ = _fit_boston(workspace, tmp_path / "b", CHOSEN, None)
    trained, _, _ = _fit_boston(workspace, tmp_path / "c", {**CHOSEN, "epochs": best,
                                                             "choose_epochs": None},
                                {"fits": 1, "folds": True})
    pairs = [(_members(chosen)[0], single), *zip(_members(chosen)[2:], _members(trained)[1:],
                                                  strict=True)]
    for kept, fresh in pairs:
        for a, b in zip(kept.get_weights(), fresh.get_weights(), strict=True):
            assert np.array_equal(a, b)
