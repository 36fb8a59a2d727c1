"""What a run shows in MLflow's own terms: a live training (its run from the start, epochs
as they end, K-fold folds as child runs), its logged model with signature and input
example (the registry's versions are of it), and the splits it used as datasets."""

from __future__ import annotations

import json

import pytest

from pipeline import layout

pytest.importorskip("keras")
mlflow = pytest.importorskip("mlflow")


@pytest.fixture(autouse=True)
def _tracking(workspace, monkeypatch):
    monkeypatch.chdir(workspace["root"])  # MLflow puts artifacts under ./mlruns
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(workspace["raw"]["tracking"]["uri"])


def watch_training(monkeypatch, look) -> None:
    """Call `look(epoch)` at each epoch's end, before the live logger sends that epoch (so
    the store holds the epochs before it), with batches sent at once."""
    import keras

    from pipeline import live, training

    class Look(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            look(epoch)

    monkeypatch.setattr(live, "EVERY", 0.0)
    real = training.build_callbacks
    monkeypatch.setattr(training, "build_callbacks", lambda *a, **k: [*real(*a, **k), Look()])


def running(experiment: str, step: str) -> list:
    """The step's RUNNING runs, not their K-fold folds (child runs of the same step)."""
    runs = mlflow.MlflowClient().search_runs(
        [mlflow.get_experiment_by_name(experiment).experiment_id],
        f"tags.`pipeline.step` = '{step}' and attributes.status = 'RUNNING'")
    return [run for run in runs if "mlflow.parentRunId" not in run.data.tags]


def test_a_training_is_watched_live(workspace, monkeypatch):
    """While it trains, its run is RUNNING with its params and the epochs done so far; at
    the end it is FINISHED, one point per epoch, and its duration is the training's."""
    from pipeline.train import train

    client = mlflow.MlflowClient()
    seen: list[tuple[int, list[int], str]] = []

    def look(epoch: int) -> None:
        (run,) = running("imdb", "train@imdb_live")
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        seen.append((epoch, steps, run.data.params.get("model.epochs", "")))

    watch_training(monkeypatch, look)
    raw = workspace["raw"]
    params = {**raw, "models": {**raw["models"], "imdb_live": {
        **raw["models"]["imdb_dense"], "epochs": 3, "early_stopping": None}}}
    from pipeline.config import compose

    out = workspace["root"] / "models" / "imdb_live"
    summary = train("imdb_live", compose(params), workspace["data"], out)
    assert seen == [(0, [], "3"), (1, [0], "3"), (2, [0, 1], "3")]
    run = client.get_run(layout.read_run(out, "train"))
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1, 2]
    assert (run.info.end_time - run.info.start_time) / 1000 >= summary["train_seconds"]


def test_kfold_folds_are_child_runs_watched_as_they_train(workspace, monkeypatch):
    from pipeline.train import train

    client = mlflow.MlflowClient()
    states: list[list[tuple[str, str]]] = []

    def look(epoch: int) -> None:
        (run,) = running("boston_housing", "train@boston_housing_dense")
        folds = client.search_runs([run.info.experiment_id],
                                   f"tags.`mlflow.parentRunId` = '{run.info.run_id}'",
                                   order_by=["attributes.start_time ASC"])
        states.append([(f.info.run_name, f.info.status) for f in folds])

    watch_training(monkeypatch, look)
    out = workspace["root"] / "models" / "boston_folds"
    train("boston_housing_dense", workspace["params"], workspace["data"], out)
    # 2 folds of 2 epochs, then the final fit of 2, then the ensemble's second final fit
    # (params.yaml's ensemble, 2 fits in tests): what the store showed at each epoch's end
    done = [("fold 1/2", "FINISHED"), ("fold 2/2", "FINISHED")]
    assert states == [[("fold 1/2", "RUNNING")]] * 2 + [
        [("fold 1/2", "FINISHED"), ("fold 2/2", "RUNNING")]] * 2 + [done] * 2 + [
        [*done, ("fit 2/2", "RUNNING")]] * 2
    run_id = layout.read_run(out, "train")
    children = client.search_runs([mlflow.get_experiment_by_name("boston_housing")
                                   .experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    folds = [child for child in children if "kfold.fold" in child.data.tags]
    (fit,) = [child for child in children if "ensemble.fit" in child.data.tags]
    assert fit.info.status == "FINISHED" and client.get_metric_history(fit.info.run_id, "loss")
    per_fold = []
    for fold in folds:
        assert fold.data.tags["pipeline.step"] == "train@boston_housing_dense"
        per_fold.append([m.value for m in client.get_metric_history(fold.info.run_id,
                                                                    "val_mae")])
    assert [len(curve) for curve in per_fold] == [2, 2]
    # the book's figure: the folds' mean validation MAE per epoch, on the training's run
    mean = client.get_metric_history(run_id, "kfold_curve_val_mae")
    assert [m.step for m in mean] == [0, 1]
    by_epoch = zip(*per_fold, strict=True)
    assert [m.value for m in mean] == pytest.approx([sum(c) / 2 for c in by_epoch])
    assert "kfold_best_epoch" in client.get_run(run_id).data.metrics


def test_the_model_is_a_logged_model_and_the_registry_holds_it(workspace):
    """The Models column: `search_logged_models` finds the run's model, with its signature
    and input example; the registry's version is of that logged model; the baseline's too."""
    from pipeline.baseline import baseline
    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    models = root / "models"
    train("imdb_dense", params, data, models / "imdb_dense")
    evaluate("imdb_dense", params, data, models, root / "results" / "imdb" / "imdb_dense")
    baseline("imdb", params, data, root / "results" / "imdb" / "baseline")
    client = mlflow.MlflowClient()
    experiment = mlflow.get_experiment_by_name("imdb").experiment_id
    for folder in (models / "imdb_dense", root / "results" / "imdb" / "baseline"):
        run_id = layout.read_run(folder, "rerun")
        (logged,) = mlflow.search_logged_models(
            experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'",
            output_format="list")
        assert logged.status.to_proto() == 2  # READY
        info = mlflow.models.get_model_info(f"models:/{logged.model_id}")
        assert info.signature is not None and info.saved_input_example_info is not None
        example = mlflow.models.Model.load(f"models:/{logged.model_id}").load_input_example(
            mlflow.artifacts.download_artifacts(f"models:/{logged.model_id}"))
        assert len(example) in (3, 5)
    keras_run = layout.read_run(models / "imdb_dense", "rerun")
    (version,) = client.search_model_versions(f"name='imdb' and run_id='{keras_run}'")
    (logged,) = mlflow.search_logged_models(
        experiment_ids=[experiment], filter_string=f"source_run_id = '{keras_run}'",
        output_format="list")
    assert version.source == f"models:/{logged.model_id}"
    assert mlflow.keras.load_model(f"models:/imdb/{version.version}") is not None


def test_each_run_names_the_splits_it_used_as_datasets(workspace):
    """Training runs: the train and val splits; evaluation adds the test split; named by
    dataset and split, the split's sha256 as digest, its source as MLflow knows sources."""
    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data, root = workspace["params"], workspace["data"], workspace["root"]
    models = root / "models"
    train("boston_housing_dense", params, data, models / "boston_housing_dense")
    run_id = layout.read_run(models / "boston_housing_dense", "rerun")
    manifest = layout.read_manifest(layout.prepared_dir(data, "boston_housing"))

    def inputs() -> dict[str, tuple[str, str, dict]]:
        run = mlflow.MlflowClient().get_run(run_id)
        return {i.dataset.name: (i.dataset.digest,
                                 {t.key: t.value for t in i.tags}["mlflow.data.context"],
                                 json.loads(i.dataset.source))
                for i in run.inputs.dataset_inputs}

    digest = {s: manifest["splits"][s]["sha256"].removeprefix("sha256:")[:16]
              for s in ("train", "val", "test")}
    assert {k: v[:2] for k, v in inputs().items()} == {
        "boston_housing/train": (digest["train"], "training"),
        "boston_housing/val": (digest["val"], "validation")}
    evaluate("boston_housing_dense", params, data, models,
             root / "results" / "boston_housing" / "boston_housing_dense")
    shown = inputs()
    assert shown["boston_housing/test"][:2] == (digest["test"], "testing")
    source = manifest["source"]
    assert source["kind"] == "mirror"
    assert shown["boston_housing/train"][2] == {
        "uri": f"{source['detail']}/{next(iter(source['files']))}"}
