"""Team mode: the pipeline logs to an `mlflow server` backed by PostgreSQL, switched on by
`tracking.uri: http://host:port` in params.yaml and nothing else.

A real PostgreSQL cluster (initdb in a temp dir, 127.0.0.1 only) and a real, light
`mlflow server` with a local artifact root; the real stages (baseline, train, evaluate)
on tiny data; then the runs are read back through MlflowClient and, directly, with SQL.
"""

from __future__ import annotations

import re
import time

import pytest
from helpers.servers import mlflow_server, postgres_cluster, prepared_project, run_stages, warm_up

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("psycopg2")

DATASET, MODEL = "imdb", "imdb_dense"


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """Postgres + `mlflow server` up, the stages run against it; everything stopped after."""
    root = tmp_path_factory.mktemp("team")
    previous_uri = mlflow.get_tracking_uri()
    started = time.monotonic()
    with pytest.MonkeyPatch.context() as patch, postgres_cluster() as pg:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)  # tracking.uri alone decides
        patch.chdir(root)
        pg.create_database("mlflow")
        artifacts = root / "artifacts"
        with mlflow_server("server", pg.url("mlflow"), root,
                           "--artifacts-destination", str(artifacts)) as server:
            url = server.url
            project = prepared_project(root, (DATASET,), tracking_uri=url)
            warm_up()  # while the server boots
            server.ready()
            results = run_stages(project, DATASET, MODEL)
            print(f"postgres + mlflow server + stages: {time.monotonic() - started:.1f}s")
            yield {"url": url, "pg": pg, "artifacts": artifacts, "project": project, **results}
        mlflow.set_tracking_uri(previous_uri)


def runs_by_kind(client, experiment_id: str) -> dict[str, object]:
    runs = client.search_runs([experiment_id])
    return {run.data.tags["model_kind"].split()[0]: run for run in runs}


def test_runs_params_metrics_and_model_reach_the_server(team):
    project = team["project"]
    assert project["params"].tracking.uri == team["url"]
    client = mlflow.MlflowClient(tracking_uri=team["url"])
    experiment = client.get_experiment_by_name(DATASET)
    assert experiment is not None, "the imdb experiment was not created on the server"
    runs = runs_by_kind(client, experiment.experiment_id)
    assert set(runs) == {"baseline", "keras"}
    base, keras_run = runs["baseline"], runs["keras"]

    # the run ids the stages wrote are the server's runs
    root = project["root"]
    import json

    assert json.loads((root / "models" / MODEL / "run.json").read_text()) == {
        "run_id": keras_run.info.run_id, "tracking_uri": team["url"]}
    assert base.info.run_name == f"{DATASET} baseline (SGDClassifier)"
    assert keras_run.info.run_name == f"{DATASET} {MODEL} (keras)"

    assert base.data.params["baseline.classifier.loss"] == "log_loss"
    assert keras_run.data.params["model.epochs"] == "2"
    assert keras_run.data.params["dataset.task"] == "binary"
    assert base.data.metrics["test_accuracy"] == pytest.approx(team["baseline"]["test_accuracy"])
    assert keras_run.data.metrics["test_accuracy"] == pytest.approx(
        team["metrics"]["test_accuracy"])

    summary = team["summary"]
    epochs = summary["epochs"]
    steps = {key: sorted(m.step for m in client.get_metric_history(keras_run.info.run_id, key))
             for key in ("loss", "val_loss", "val_accuracy")}
    assert steps["loss"] == list(range(epochs))
    for key in ("val_loss", "val_accuracy"):  # one point per epoch, and one past the last
        # when early stopping restored an earlier epoch: the run's figure is the saved model's
        assert steps[key] in (list(range(epochs)), list(range(epochs + 1))), key
        assert keras_run.data.metrics[key] == pytest.approx(summary[key]), key

    # the model: uploaded through the server into its local artifact root, and loadable
    model_files = {a.path for a in client.list_artifacts(keras_run.info.run_id, "model")}
    assert "model/MLmodel" in model_files
    assert keras_run.info.artifact_uri.startswith("mlflow-artifacts:")
    assert list(team["artifacts"].rglob("MLmodel")), "no model under --artifacts-destination"
    from pipeline.arrays import load_split

    mlflow.set_tracking_uri(team["url"])
    loaded = mlflow.keras.load_model(f"runs:/{keras_run.info.run_id}/model")
    x, _ = load_split(project["data"] / DATASET / "prepared" / "test.npz")
    assert loaded.predict(x[:2].toarray(), verbose=0).shape == (2, 1)

    champion = client.get_model_version_by_alias(DATASET, "champion")
    assert champion.run_id == keras_run.info.run_id


def test_runs_live_in_postgresql(team):
    client = mlflow.MlflowClient(tracking_uri=team["url"])
    experiment = client.get_experiment_by_name(DATASET)
    runs = runs_by_kind(client, experiment.experiment_id)
    keras_id = runs["keras"].info.run_id

    connection = team["pg"].connect("mlflow")
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT r.run_uuid, r.name, r.status FROM runs r "
                           "JOIN experiments e ON e.experiment_id = r.experiment_id "
                           "WHERE e.name = %s", (DATASET,))
            rows = {run_uuid: (name, status) for run_uuid, name, status in cursor.fetchall()}
            cursor.execute("SELECT count(*) FROM metrics WHERE run_uuid = %s AND key = 'loss'",
                           (keras_id,))
            [loss_rows] = cursor.fetchone()
            cursor.execute("SELECT value FROM params WHERE run_uuid = %s AND key = %s",
                           (keras_id, "model.epochs"))
            [epochs_param] = cursor.fetchone()
    finally:
        connection.close()
    assert rows == {run.info.run_id: (run.info.run_name, "FINISHED") for run in runs.values()}
    assert loss_rows == team["summary"]["epochs"]
    assert epochs_param == "2"


def test_a_url_that_is_no_tracking_server_fails_in_one_line(file_server):
    """tracking.uri pointing at some other web server: the answer's status, and the fix."""
    import copy

    from helpers.params import project_params

    from pipeline import tracking
    from pipeline.config import compose

    raw = copy.deepcopy(project_params())
    raw["tracking"]["uri"] = file_server.base_url  # no MLflow API there (501: no POST)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        with pytest.raises(tracking.TrackingUnavailable) as failure:
            tracking.connect(compose(raw))
    expected = re.escape(f"MLflow tracking store {file_server.base_url} (from tracking.uri in "
                         "params.yaml) answered HTTP ") + r"5\d\d, not as"
    assert re.match(expected, str(failure.value))
    assert "Fix: correct the URI" in str(failure.value)
    # and a server that refuses the host name it is called by (MLflow's DNS-rebinding guard)
    refused = Exception("API request to endpoint /api/2.0/mlflow/experiments/search failed "
                        "with error code 403 != 200. Response body: 'Invalid Host header - "
                        "possible DNS rebinding attack detected'")
    message = str(tracking.unavailable("http://mlflow.lan:5000", "MLFLOW_TRACKING_URI", refused))
    assert "refuses requests for this host name" in message
    assert "--allowed-hosts mlflow.lan:5000" in message
