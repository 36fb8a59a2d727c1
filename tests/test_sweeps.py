"""Hydra sweeps over params.yaml: configs compose, sweeps run end to end into MLflow, bad
overrides fail before any trial, an interrupted sweep resumes, promote writes the winner,
and `dvc exp run -S` gives the same result as the equivalent sweep override."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from helpers.net import free_port
from helpers.params import keep_only, mirrored_params
from helpers.paths import ROOT
from helpers.project import GIT_USER, make_project, repro, stage_target
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from pipeline.errors import ConfigError
from pipeline.files import HOST, process_gone
from pipeline.sweep import register_params
from pipeline.sweep_plan import CONF, check_sweep, make_plan, param_overrides, params_of, parse

mlflow = pytest.importorskip("mlflow")

SEARCH_SPACES = sorted(p.stem for p in (CONF / "search_space").glob("*.yaml"))
LAUNCHERS = sorted(p.stem for p in (CONF / "launcher").glob("*.yaml"))
MODEL = "fashion_mnist_dense"  # the cheapest model with a real validation split here
LR = f"models.{MODEL}.optimizer.learning_rate"


def hydra_config(*overrides: str, params: Path | None = ROOT / "params.yaml"):
    """conf/sweep.yaml composed over a params file, as `python -m pipeline.sweep` does
    (params=None: over the one registered last; registering checks it, ~0.6 s)."""
    if params is not None:
        register_params(params)
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("sweep", overrides=list(overrides), return_hydra_config=True)


# --- configs (lightning-hydra-template's test_configs / test_sweeps) ------------------


def test_every_search_space_has_a_config_and_composes():
    assert set(SEARCH_SPACES) == set(yaml.safe_load((ROOT / "params.yaml").read_text())
                                     ["models"]), "one search space per model in params.yaml"
    register_params(ROOT / "params.yaml")
    for space in SEARCH_SPACES:
        cfg = hydra_config(f"search_space={space}", params=None)
        assert "optuna" in cfg.hydra.sweeper._target_
        assert cfg.hydra.sweeper.direction == cfg.sweep.direction
        assert cfg.hydra.sweeper.sampler.seed == cfg.seed  # seeded from params.yaml
        params = params_of(cfg)
        keys = [o.key_or_group for o in param_overrides(
            parse([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]))]
        plan = make_plan(cfg.sweep, params, keys)
        assert plan.model == space and plan.objective.startswith(("val_", "kfold_val_"))
        # Every swept key exists in params.yaml (Hydra would refuse it otherwise).
        hydra_config(f"search_space={space}", *(f"{key}=1" for key in keys), params=None)


@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_every_launcher_composes(launcher):
    cfg = hydra_config(f"launcher={launcher}", f"{LR}=0.01")
    assert launcher in cfg.hydra.launcher._target_.lower()
    assert cfg.sweep.parallel_trials >= 1
    if launcher == "joblib":
        assert cfg.hydra.launcher.n_jobs == cfg.sweep.parallel_trials
    assert params_of(cfg).models[MODEL].optimizer.learning_rate == 0.01


def test_no_model_or_data_default_lives_under_conf():
    """One source of truth: conf/ never sets a params.yaml key (only sweep options)."""
    params_keys = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for path in CONF.rglob("*.yaml"):
        top = set(yaml.safe_load(path.read_text()) or {})
        assert not top & params_keys, f"{path} sets {top & params_keys}"


def test_params_yaml_edits_reach_the_sweep_config(tmp_path):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["models"][MODEL]["batch_size"] = 7
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    cfg = hydra_config(params=tmp_path / "params.yaml")
    assert cfg.models[MODEL].batch_size == 7


# --- a tiny project ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A DVC project on tiny data, prepared by `dvc repro` (data from a local mirror)."""
    root = tmp_path_factory.mktemp("sweeps")
    params = mirrored_params(root)
    keep_only(params, ["fashion_mnist"], [MODEL])
    params["models"][MODEL]["epochs"] = 3
    path, env = make_project(root, params)
    repro(path, env, "prepare@fashion_mnist")
    return path, env


def sweep(project, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    path, env = project
    result = subprocess.run([sys.executable, "-m", "pipeline.sweep", "-m", *args], cwd=path,
                            env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def store(project):
    return mlflow.MlflowClient(f"sqlite:///{project[0] / 'mlflow.db'}")


def sweep_runs(project, launcher: str):
    """(parent, children) of the latest sweep run with this launcher."""
    client = store(project)
    experiment = client.get_experiment_by_name("fashion_mnist").experiment_id
    parent = client.search_runs([experiment], "tags.`sweep.role` = 'parent' and "
                                f"tags.`sweep.launcher` = '{launcher}'",
                                order_by=["attributes.start_time DESC"])[0]
    children = client.search_runs([experiment],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return parent, children


def check_sweep_record(project, launcher: str, values: list[str]):
    """One parent with the sweep's settings and best trial; one child per trial."""
    parent, children = sweep_runs(project, launcher)
    assert parent.info.status == "FINISHED"
    assert f"{LR}={','.join(values)}" in json.loads(parent.data.params["overrides"])
    assert parent.data.params["objective"] == "val_accuracy"
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert sorted(json.loads(c.data.tags["sweep.overrides"])[0] for c in finished) == sorted(
        f"{LR}={v}" for v in values)
    client = store(project)
    for child in finished:
        assert child.data.params["model.optimizer.learning_rate"] in values
        assert child.data.params["model.batch_size"] == "32"  # the rest: params.yaml
        assert len(client.get_metric_history(child.info.run_id, "val_accuracy")) >= 1
        assert "test_accuracy" not in child.data.metrics  # a sweep never looks at test
    best = max(finished, key=lambda c: c.data.metrics["objective"])
    assert [c.data.tags["sweep.best"] for c in finished].count("true") == 1
    assert best.data.tags["sweep.best"] == "true"
    assert parent.data.tags["sweep.best_run_id"] == best.info.run_id
    assert parent.data.metrics["best_objective"] == best.data.metrics["objective"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"summary.md", "summary.csv"} <= artifacts
    return parent, finished, best


def test_grid_sweep_tracks_parent_and_children_and_matches_dvc_exp_run(project):
    path, env = project
    result = sweep(project, f"{LR}=0.001,0.01")
    output = result.stdout + result.stderr
    assert "trial 0/2" in output and "trial 1/2" in output
    assert "| trial | optimizer.learning_rate | val_accuracy |" in output  # the summary table
    _, finished, best = check_sweep_record(project, "BasicLauncher", ["0.001", "0.01"])
    summary = next(path.glob("sweeps/*/summary.md")).read_text()
    assert summary.count("\n") == 4 and best.info.run_id in summary

    # `dvc exp run -S` of one trial's override gives that trial's validation score exactly.
    trial = next(c for c in finished if c.data.params["model.optimizer.learning_rate"] == "0.01")
    exp = subprocess.run(["dvc", "exp", "run", "-S", f"{LR}=0.01", stage_target(f"train@{MODEL}")],
                         cwd=path, env={**env, **GIT_USER}, capture_output=True, text=True,
                         timeout=600)
    assert exp.returncode == 0, exp.stdout + exp.stderr
    summary = json.loads((path / "models" / MODEL / "summary.json").read_text())
    assert summary["val_accuracy"] == trial.data.metrics["objective"]  # the saved model's

    # Promote writes the best trial's values into params.yaml; `dvc repro` reproduces it.
    subprocess.run(["git", "checkout", "params.yaml"], cwd=path, check=True)
    promoted = subprocess.run([sys.executable, "-m", "pipeline.promote", MODEL], cwd=path,
                              env=env, capture_output=True, text=True, timeout=300)
    assert promoted.returncode == 0, promoted.stderr
    best_lr = best.data.params["model.optimizer.learning_rate"]
    assert re.search(rf"^\+ +learning_rate: {best_lr}$", promoted.stdout, re.M)  # the diff
    params = yaml.safe_load((path / "params.yaml").read_text())
    assert params["models"][MODEL]["optimizer"]["learning_rate"] == float(best_lr)
    git_diff = subprocess.run(["git", "diff", "--numstat", "params.yaml"], cwd=path,
                              capture_output=True, text=True).stdout
    assert git_diff.split()[:2] == (["1", "1"] if best_lr != "0.001" else [])
    output, _ = repro(path, env, f"train@{MODEL}")
    summary = json.loads((path / "models" / MODEL / "summary.json").read_text())
    assert summary["val_accuracy"] == best.data.metrics["objective"]


@pytest.mark.slow  # the joblib launcher also runs in the Optuna test below
def test_grid_sweep_with_the_joblib_launcher(project):
    result = sweep(project, "launcher=joblib", f"{LR}=0.002,0.02")
    assert "JoblibLauncher launcher" in result.stderr
    check_sweep_record(project, "JoblibLauncher", ["0.002", "0.02"])
    trial = json.loads(next(project[0].glob("sweeps/*/1/trial.json")).read_text())
    assert trial["value"] >= 0


def test_optuna_sweep_on_joblib_resumes_after_being_killed(project):
    """Optuna asks 2 trials at a time, run by 2 joblib workers; the sweep is killed after the
    first pair, then the same command reuses them and runs only the third."""
    path, env = project
    args = ["search_space=fashion_mnist_dense", "launcher=joblib", "hydra.sweeper.n_trials=3",
            "hydra.sweep.dir=sweeps/optuna"]
    first = subprocess.Popen([sys.executable, "-m", "pipeline.sweep", "-m", *args], cwd=path,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.time() + 300
    while not all((path / f"sweeps/optuna/{n}/trial.json").exists() for n in (0, 1)):
        assert first.poll() is None and time.time() < deadline, first.stdout.read().decode()
        time.sleep(0.2)
    client = store(project)
    experiment = client.get_experiment_by_name("fashion_mnist").experiment_id
    training: set[int] = set()
    while not training:  # kill it while the third trial trains in a worker
        assert first.poll() is None and time.time() < deadline, first.stdout.read().decode()
        training = {int(r.data.tags["pipeline.pid"]) for r in client.search_runs(
            [experiment], "tags.`sweep.role` = 'trial' and attributes.status = 'RUNNING'")}
        time.sleep(0.2)
    assert first.pid not in training  # a worker's
    os.kill(first.pid, signal.SIGKILL)  # the worst interruption: no cleanup at all
    first.wait()
    deadline = time.time() + 60  # a worker doesn't train on for a sweep that is gone
    while [p for p in training if not process_gone(HOST, p)] and time.time() < deadline:
        time.sleep(0.5)
    left = [p for p in training if not process_gone(HOST, p)]
    with contextlib.suppress(ProcessLookupError):
        os.killpg(first.pid, signal.SIGKILL)  # idle pool processes (they'd time out later)
    assert not left, f"workers of the killed sweep still training: {left}"
    done = {n: json.loads((path / f"sweeps/optuna/{n}/trial.json").read_text())
            for n in (0, 1)}

    result = sweep(project, *args)
    output = result.stdout + result.stderr
    assert "resuming sweep" in output
    assert "retracing" not in output  # TensorFlow's notes on each new model: not for users
    for n, trial in done.items():  # the same trials proposed again, and not retrained
        assert f"trial {n}/3: " in output
        assert "reused" in output.split(f"trial {n}/3: ")[1].splitlines()[0]
        again = json.loads((path / f"sweeps/optuna/{n}/trial.json").read_text())
        assert again["reused"] and again["overrides"] == trial["overrides"]
        assert again["value"] == trial["value"]
    assert "reused" not in output.split("trial 2/3: ")[1].splitlines()[0]
    # The workers imported TensorFlow while the sweep was checked, and ran the trial.
    ready = re.search(r"sweep: 2 workers ready \(pids (\d+), (\d+)\)", output)
    assert ready, output
    third = json.loads((path / "sweeps/optuna/2/trial.json").read_text())
    assert third["pid"] in {int(ready[1]), int(ready[2])}
    parent, children = sweep_runs(project, "JoblibLauncher")
    assert parent.data.tags["sweep.model"] == MODEL and parent.info.status == "FINISHED"
    states = sorted(c.info.status for c in children)
    assert states.count("FINISHED") == 3 and set(states) <= {"FINISHED", "KILLED"}
    assert "optuna" in parent.data.params["sweeper"].lower()
    assert json.loads(parent.data.params["search_space"])  # the space, on the parent


# --- bad overrides fail before any trial -----------------------------------------------


def preflight_of(project, swept: str, *options: str):
    """The sweep's check of its command line, as `python -m pipeline.sweep` runs it."""
    path, _ = project
    cwd = os.getcwd()
    os.chdir(path)
    try:
        register_params(path / "params.yaml")
        return check_sweep([swept, *options])
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize(("override", "named"), [
    (f"models.{MODEL}.layers.1.unitz=5,6", "unitz"),
    (f"models.{MODEL}.epochs=2,abc", "epochs"),
    (f"{LR}=0.001,-1", "learning_rate"),
    (f"models.{MODEL}.layers.2.rate=0.3,1.5", "rate"),  # Keras refuses a dropout rate of 1.5
    (f"models.{MODEL}.layers.1.units=0,8", "units"),
    ("datasets.fashion_mnist.split.validation=0.1,0.3", "datasets.fashion_mnist"),
    ("seed=1,2", "seed"),
])
def test_bad_overrides_fail_before_any_trial(project, override, named):
    with pytest.raises(ConfigError, match=named):
        preflight_of(project, override)


def test_a_bad_override_stops_the_sweep_command_with_one_line(project):
    result = sweep(project, f"models.{MODEL}.layers.1.unitz=5,6", check=False)
    assert result.returncode == 1
    assert "ERROR sweep: models.fashion_mnist_dense.layers.1.unitz=5" in result.stderr
    assert "Traceback" not in result.stderr and "trial 0" not in result.stderr


def test_objective_must_be_a_validation_metric(project):
    with pytest.raises(ConfigError, match=r"sweep\.objective"):
        preflight_of(project, f"{LR}=0.01,0.1", "sweep.objective=test_accuracy")
    plan = preflight_of(project, f"{LR}=0.01,0.1", "sweep.objective=val_loss")[0]
    assert plan.direction == "minimize"


@pytest.mark.slow
def test_ray_launcher_runs_a_sweep_on_a_local_ray_head(project):
    """A Ray head on 127.0.0.1 (what `ray start --head` gives a cluster), then a sweep sent to
    it by address, as on a real cluster."""
    path, env = project
    ray = str(Path(sys.executable).parent / "ray")
    port = free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths are long
    ray_env = {**env, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
               "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    head = subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1",
                           f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
                           "--disable-usage-stats", f"--temp-dir={temp}"],
                          cwd=path, env=ray_env, capture_output=True, text=True, timeout=180)
    assert head.returncode == 0, head.stdout + head.stderr
    try:
        result = sweep(project, "launcher=ray",
                       f"hydra.launcher.ray.init.address=127.0.0.1:{port}", f"{LR}=0.003,0.03")
        assert "RayLauncher launcher" in result.stderr
        assert "_run_job pid=" in result.stdout + result.stderr  # trials ran as Ray tasks
        check_sweep_record(project, "RayLauncher", ["0.003", "0.03"])
    finally:
        subprocess.run([ray, "stop", "--force"], env=ray_env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


# --- bad values fail before any run; failures and kills never leave a sweep RUNNING ------


def parents(project) -> list:
    client = store(project)
    experiment = client.get_experiment_by_name("fashion_mnist")
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], "tags.`sweep.role` = 'parent'")


@pytest.mark.parametrize(("args", "says"), [
    ([f"models.{MODEL}.loss=sparse_categorical_crossentropy,sparse_categorical_crossentropyy"],
     f"ERROR sweep: models.{MODEL}.loss=sparse_categorical_crossentropyy: models.{MODEL}.loss: "
     "'sparse_categorical_crossentropyy' is not a Keras loss"),
    ([f"models.{MODEL}.epochz=3", f"{LR}=0.01,0.1"],
     f"ERROR sweep: models.{MODEL}.epochz=3: models.{MODEL}.epochz: unknown key; expected one "
     "of: dataset, layers"),
    (["search_space=nosuch"], "ERROR sweep: search_space=nosuch: no such search_space; "
     "expected one of: " + ", ".join(sorted(p.stem for p in (ROOT / "conf" / "search_space")
                                           .glob("*.yaml")))),
    (["launcher=dask", f"{LR}=0.01,0.1"],
     "ERROR sweep: launcher=dask: no such launcher; expected one of: basic, joblib, ray"),
    ([f"{LR}=tag(log, interval(0.01, 0.001))", "hydra/sweeper=optuna"],
     f"ERROR sweep: {LR}=tag(log, interval(0.01, 0.001)): the interval runs from 0.01 down"),
    (["search_space=fashion_mnist_dense", "hydra.sweeper.n_trials=0"],
     "ERROR hydra.sweeper.n_trials: 0; expected 1 or more"),
    ([f"models.{MODEL}.epochs=glob(*)"], f"ERROR sweep: models.{MODEL}.epochs=glob(*): glob() "
     "picks config group options"),
    (["launcher=joblib", f"models.{MODEL}.loss=sparse_categorical_crossentropy,"
      "sparse_categorical_crossentropyy"], f"ERROR sweep: models.{MODEL}.loss="
     f"sparse_categorical_crossentropyy: models.{MODEL}.loss: 'sparse_categorical_"
     "crossentropyy' is not a Keras loss"),
    (["launcher=joblib", "hydra.launcher.n_jobs=0", f"{LR}=0.01,0.1"],
     "ERROR hydra.launcher.n_jobs: 0; expected a number of workers"),
    (["launcher=ray", "hydra.launcher.ray.init.address=127.0.0.1:1", f"{LR}=0.01,0.1"],
     "ERROR hydra.launcher.ray.init.address: no Ray cluster answers at 127.0.0.1:1"),
    ([f"{LR}=0.0,0.1"], f"ERROR sweep: {LR}=0.0: models.{MODEL}.optimizer.learning_rate: 0.0 "
     "is not a learning rate"),
], ids=["loss typo in a choice", "unknown key", "unknown search space", "unknown launcher",
        "reversed interval", "no trials", "glob", "refused on the joblib workers",
        "no workers", "no Ray cluster",
        "a bad first value names the override"])
def test_a_bad_value_stops_the_sweep_in_one_line_before_any_run(project, args, says):
    before = len(parents(project))
    result = sweep(project, *args, check=False)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(says), line
    assert "Fix:" in line and "Traceback" not in result.stdout + result.stderr
    assert len(parents(project)) == before  # no parent run, no trial


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(project):
    """A NaN loss (exponential units at lr 1.0) is a sweep's result, not its end; a parent left
    RUNNING by a killed sweep is ended when the next sweep of the model starts; after a
    change to the training code, no trial of the old code is reused."""
    from pipeline import tracking
    from pipeline.files import HOST

    path, _ = project
    client = store(project)
    experiment = tracking.experiment_id(client, "fashion_mnist")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = client.create_run(experiment, tags={
        tracking.STEP_TAG: f"sweep@{MODEL}", "sweep.role": "parent", "sweep.model": MODEL,
        "pipeline.host": HOST, "pipeline.pid": str(dead.pid)}).info.run_id

    # lr 1.0 is a valid setting, but exponential hidden units overflow at once: a NaN loss
    args = [f"models.{MODEL}.layers.1.activation=exponential", f"{LR}=0.001,1.0",
            "hydra.sweep.dir=sweeps/failing"]
    first = sweep(project, *args)
    output = first.stdout + first.stderr
    result_parent = max(parents(project), key=lambda r: r.info.start_time)
    assert result_parent.info.status == "FINISHED"
    children = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{result_parent.info.run_id}'")
    states = {c.data.tags["sweep.overrides"]: c.info.status for c in children}
    assert sorted(states.values()) == ["FAILED", "FINISHED"], states
    failed = next(c for c in children if c.info.status == "FAILED")
    assert "NaN" in failed.data.tags["pipeline.error"]
    assert client.get_run(orphan).info.status == "KILLED"
    assert "| failed |" in output

    training = path / "pipeline" / "training.py"
    training.write_text(training.read_text() + "\n# a change to the training code\n")
    try:
        again = sweep(project, *args)
    finally:
        subprocess.run(["git", "checkout", "pipeline/training.py"], cwd=path, check=True)
    text = again.stdout + again.stderr
    assert "reused" not in text and "resuming" not in text
    newest = max(parents(project), key=lambda r: r.info.start_time)
    assert newest.info.run_id != result_parent.info.run_id


def test_promote_writes_values_in_place_and_refuses_what_it_cannot():
    """A flow mapping replaced whole (`early_stopping=null`), values inside flow mappings,
    and one line instead of a broken params.yaml for a key the file doesn't have."""
    import difflib

    from pipeline.promote import apply_overrides

    text = (ROOT / "params.yaml").read_text()
    after = apply_overrides(text, [f"models.{MODEL}.early_stopping=null", f"{LR}=0.01"])
    changed = [line for line in difflib.ndiff(text.splitlines(), after.splitlines())
               if line.startswith("+ ")]
    assert changed == ["+     optimizer: {type: adam, learning_rate: 0.01}",
                       "+     early_stopping: null"], changed
    with pytest.raises(ConfigError, match=r"momentum is not in params\.yaml.*by hand"):
        apply_overrides(text, [f"++models.{MODEL}.optimizer.momentum=0.1"])


CHECK_ON_WORKERS = """
import json, os, sys
from pathlib import Path
from pipeline.errors import ConfigError
from pipeline.sweep import register_params
from pipeline.sweep_plan import check_sweep
from pipeline.sweep_workers import Workers

register_params(Path("params.yaml"))
out = {"parent": os.getpid()}
for name, arguments in json.loads(sys.argv[1]).items():
    workers = Workers()
    try:
        out[name] = {"trials": check_sweep(arguments, workers=workers)[1]}
    except ConfigError as err:
        out[name] = {"error": str(err)}
    workers.join()
    out[name].update(warmed=workers.pids, checked_in=workers.checked_in, imported=sorted(
        m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras")))
    if workers.pids:
        last = workers

def threads():
    import gc
    import tensorflow as tf
    return tf.config.threading.get_intra_op_parallelism_threads(), gc.get_threshold()[2]

from joblib import Parallel, delayed
out["threads"], out["full_gc"] = zip(*Parallel(**last.options)(delayed(threads)()
                                                              for _ in range(2)))
print(json.dumps(out))
"""


def test_a_joblib_sweep_builds_its_candidates_on_the_warmed_workers(project):
    """The parent composes every candidate's params; the warmed workers build the models
    with Keras, a chunk each, and the parent never imports TensorFlow or Keras. Both chunks
    refuse a value here: the error names the first in the command line's order, in the
    very words of the basic launcher's check in the parent."""
    path, env = project
    bad = f"models.{MODEL}.layers.2.rate=0.3,1.5,2.5"  # chunks [0.3, 1.5] and [2.5]
    runs = {"good": ["launcher=joblib", f"{LR}=0.001,0.01,0.1"], "bad": ["launcher=joblib", bad],
            "basic": [bad]}
    result = subprocess.run([sys.executable, "-c", CHECK_ON_WORKERS, json.dumps(runs)],
                            cwd=path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    warmed = set(out["good"]["warmed"])
    assert len(warmed) == 2 and out["parent"] not in warmed
    for name in ("good", "bad"):  # the second check found the same executor, its workers warm
        assert out[name]["imported"] == [], out  # not even Keras: the workers did it all
        assert set(out[name]["warmed"]) <= warmed, out
        assert set(out[name]["checked_in"]) <= warmed and out[name]["checked_in"], out
    assert out["good"]["trials"] == 3
    assert out["bad"]["error"].startswith(f"sweep: models.{MODEL}.layers.2.rate=1.5: "
                                          f"models.{MODEL}.layers[2]: Keras refuses it")
    assert out["bad"]["error"] == out["basic"]["error"]
    assert out["basic"]["checked_in"] == [out["parent"]] and out["basic"]["imported"]
    # The workers' TensorFlow got its share of the cores before the checks started it, and
    # they collect their garbage as a stage process does (console.lighter_gc, tested below).
    assert out["threads"] == [max(1, (os.cpu_count() or 1) // 2)] * 2, out
    assert out["full_gc"] == [1000] * 2, out


LIGHTER_GC = """
import atexit, gc
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))  # runs last
from pipeline.console import lighter_gc
lighter_gc()
print("full collections every", gc.get_threshold()[2])
"""


def test_a_worker_collects_its_garbage_as_a_stage_process_does():
    """Full collections rarely, and none at exit: the objects of its imports are frozen
    first, so a sweep doesn't wait for its workers to collect them before it ends."""
    result = subprocess.run([sys.executable, "-c", LIGHTER_GC], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["full collections every 1000", "frozen at exit: True"]


def test_keras_builds_each_distinct_candidate_once_and_the_rows_see_every_one(monkeypatch):
    """A sweep over learning rates builds its model once (Keras would answer the others
    alike, pipeline/keras_reads.py); one over hidden units builds each. The rows-and-folds
    check still sees every candidate, and the first refusal in order is the one named."""
    from helpers.params import broken, put

    import pipeline.preflight
    from pipeline.config import compose
    from pipeline.facts import dataset_settings
    from pipeline.sweep_workers import Workers

    model, dataset = "boston_housing_dense", "boston_housing"
    built: list[str] = []
    check_model = pipeline.preflight.check_model
    monkeypatch.setattr(pipeline.preflight, "check_model",
                        lambda name, *args: built.append(name) or check_model(name, *args))

    def candidate(*edits: tuple[str, object]) -> tuple[str, object]:
        raw = broken(lambda r: [put(f"models.{model}.{key}", value)(r) for key, value in edits])
        return ",".join(f"{k}={v}" for k, v in edits), compose(raw)

    params = compose(broken(lambda r: None))
    manifest = {"settings": dataset_settings(params.datasets[dataset]),
                "splits": {"train": {"rows": 404, "x_shape": [404, 13], "sparse": False},
                           "val": {"rows": 0}}}

    def refusal(*candidates):
        built.clear()
        return Workers().check(model, dataset, manifest, list(candidates))

    rates = [candidate(("optimizer.learning_rate", r)) for r in (0.002, 0.003, 0.004)]
    assert refusal(*rates) is None and built == [model]
    assert refusal(*[candidate(("layers.0.units", u)) for u in (8, 16)]) is None
    assert built == [model, model]
    too_many = candidate(("optimizer.learning_rate", 0.005), ("kfold.folds", 500))
    line, text = refusal(rates[0], too_many)
    assert line == too_many[0] and text.startswith(f"models.{model}.kfold.folds: 500 folds")
    assert built == [model]  # the folds aren't Keras': it was asked about the first alone
    typo = candidate(("layers.0.activation", "rleu"))
    assert refusal(typo, too_many)[0] == typo[0]  # Keras' refusal comes first in order
    assert refusal(too_many, typo)[0] == too_many[0]


def test_only_a_parallel_joblib_sweep_starts_workers_early():
    """The workers are started (and import TensorFlow) during the checks only for joblib
    with 2 or more of them; the basic and Ray launchers start nothing here."""
    from omegaconf import OmegaConf

    from pipeline.sweep_workers import JOBLIB, workers_wanted

    def launcher(target: str, jobs=None):
        return OmegaConf.create({"hydra": {"launcher": {"_target_": target, "n_jobs": jobs}}})

    assert workers_wanted(launcher("hydra._internal.core_plugins.basic_launcher.X")) == 0
    assert workers_wanted(launcher("hydra_plugins.hydra_ray_launcher.ray_launcher.X", 2)) == 0
    assert workers_wanted(launcher(f"{JOBLIB}.joblib_launcher.JoblibLauncher", 2)) == 2
    assert workers_wanted(launcher(f"{JOBLIB}.joblib_launcher.JoblibLauncher", 7)) == 7
    assert workers_wanted(launcher(f"{JOBLIB}.joblib_launcher.JoblibLauncher", -1)) == \
        (os.cpu_count() or 1)


def test_warmed_workers_turn_off_lokys_leak_guard():
    """A warmed worker keeps its imports for the whole sweep: keep_worker turns off the flag
    loky's worker loop reads after every task. A joblib upgrade that renames it fails here,
    not silently in the sweeps' speed."""
    import inspect

    from joblib.externals.loky import process_executor

    from pipeline.sweep_workers import LEAK_GUARD, keep_worker

    assert LEAK_GUARD in inspect.getsource(process_executor._process_worker)
    before = getattr(process_executor, LEAK_GUARD)
    try:
        keep_worker()
        assert getattr(process_executor, LEAK_GUARD) is False
    finally:
        setattr(process_executor, LEAK_GUARD, before)

