"""Row 5, sweeps: trials/s of the same sweep on the joblib launcher (2 workers) against
the basic (sequential) launcher, alternating, each a fresh MLflow parent (no trial
reused): whole command wall time, and the trial phase on its own. Two sweeps: a
realistic one (--sweep-trials learning rates of --sweep-epochs epochs) and the README's
6-trial grid (hidden units x learning rate, the model's own epochs)."""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import time
from typing import TYPE_CHECKING

from benchmarks.findings import importing, summary
from benchmarks.render import Row
from benchmarks.workspace import BenchError, say
from pipeline.dvcfiles import target

if TYPE_CHECKING:
    from benchmarks.suite import Suite

SWEEP_MODELS = ("imdb_dense", "reuters_dense", "mnist_dense", "fashion_mnist_dense")
LAUNCHERS = ("basic", "joblib")
TARGET = 1.5  # the realistic sweep
README_TARGET = 1.2  # the README's 6-trial grid
README_GRID = ("layers.0.units=16,32,64", "optimizer.learning_rate=0.001,0.0001")


def sweep_model(suite: Suite) -> str:
    """--sweep-model, else the first small model whose dataset the suite has."""
    if suite.args.sweep_model:
        return suite.args.sweep_model
    for model in SWEEP_MODELS:
        if model in suite.models:
            return model
    return next(iter(suite.models))


def build(suite: Suite) -> list[Row]:
    """Two lines: joblib's trials/s over basic's on the realistic sweep and on the README's
    grid, per repeat, each on a fresh sweep dir."""
    model = sweep_model(suite)
    dataset = suite.models[model]
    if suite.ws.manifest(dataset) is None:
        suite.ws.repro(target("prepare", dataset))
    trials, epochs = suite.args.sweep_trials, suite.args.sweep_epochs
    rates = ",".join(f"{0.0005 * (i + 1):g}" for i in range(trials))
    realistic = [f"models.{model}.epochs={epochs}",
                 f"models.{model}.optimizer.learning_rate={rates}"]
    rows = [measure(suite, model, realistic, trials, f"{trials} trials of {epochs} epochs",
                    TARGET)]
    if model == "imdb_dense":  # the README's example
        rows.append(measure(suite, model, [f"models.{model}.{g}" for g in README_GRID], 6,
                            "the README's 6-trial grid", README_TARGET))
    return rows


def measure(suite: Suite, model: str, grid: list[str], trials: int, what: str,
            target: float) -> Row:
    """joblib's trials/s over basic's for one sweep, --repeats times, alternating."""
    walls: dict[str, list[float]] = {k: [] for k in LAUNCHERS}
    training: dict[str, list[float]] = {k: [] for k in LAUNCHERS}  # trials' train_seconds
    phases: dict[str, list[float]] = {k: [] for k in LAUNCHERS}  # first start to last end
    tf_procs: dict[str, list[int]] = {k: [] for k in LAUNCHERS}  # processes importing TF
    lead: dict[str, list[float]] = {k: [] for k in LAUNCHERS}  # command start to 1st trial
    for r in range(suite.args.repeats):
        for launcher in (LAUNCHERS if r % 2 == 0 else LAUNCHERS[::-1]):
            say(f"sweeps: {what} of {model}, {launcher} launcher ({r + 1}/"
                f"{suite.args.repeats}) ...")
            sweep_dir = suite.ws.path / "sweeps" / f"bench-{trials}-{r}-{launcher}"
            shutil.rmtree(sweep_dir, ignore_errors=True)
            began = time.time()
            timed = suite.ws.run([sys.executable, "-m", "pipeline.sweep", "-m",
                                  f"launcher={launcher}", "sweep.resume=false",
                                  f"hydra.sweep.dir={sweep_dir}", *grid])
            records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/trial.json")]
            trained = [t["summary"]["train_seconds"] for t in records if not t.get("reused")]
            if len(trained) != trials:
                raise BenchError(f"sweeps: {launcher} trained {len(trained)} of {trials} trials")
            phases[launcher].append(max(t["ended"] for t in records)
                                    - min(t["started"] for t in records))
            lead[launcher].append(min(t["started"] for t in records) - began)
            walls[launcher].append(timed.seconds)
            training[launcher].append(sum(trained))
            tf_procs[launcher].append(importing(timed.procs + timed.children, "tensorflow"))
            say(f"  {timed.seconds:.1f} s, {trials / timed.seconds:.3f} trials/s")
    rates_of = {k: [trials / s for s in v] for k, v in walls.items()}
    ratios = [j / b for j, b in zip(rates_of["joblib"], rates_of["basic"], strict=True)]
    ratio = statistics.median(ratios)
    med = {name: {k: statistics.median(v) for k, v in series.items()} for name, series in
           (("wall", walls), ("training", training), ("phase", phases), ("tf", tf_procs),
            ("lead", lead))}
    fixed = {k: med["wall"][k] - med["training"][k] / (2 if k == "joblib" else 1)
             for k in LAUNCHERS}
    steady = med["phase"]["basic"] / med["phase"]["joblib"]
    pipe, ref = summary(rates_of["joblib"]), summary(rates_of["basic"])
    return Row(
        "5 sweeps", f"{model}: trials/s, joblib (2 workers) vs basic launcher ({what}, "
        f"n={len(ratios)})",
        f"{pipe[0]:.3f} ({pipe[1]:.3f}-{pipe[2]:.3f})", f"{ref[0]:.3f} ({ref[1]:.3f}-{ref[2]:.3f})",
        ratio, min(ratios), max(ratios), f"≥ {target}x", ratio >= target,
        "" if ratio >= target else finding(med, trials, steady),
        {"walls": walls, "training": training, "trial_phases": phases, "fixed_seconds": fixed,
         "steady_ratio": steady, "tensorflow_processes": tf_procs,
         "seconds_to_first_trial": lead})


def finding(med: dict[str, dict[str, float]], trials: int, steady: float) -> str:
    """Medians per launcher: the trial phase against the time outside it, the trials'
    summed training seconds (one at a time vs two at a time), and how many processes
    imported TensorFlow per the hook (a worker imports it again)."""
    wall, phase, train, tf, lead = (med[k] for k in ("wall", "phase", "training", "tf", "lead"))
    slower = train["joblib"] / train["basic"] if train["basic"] else float("nan")
    return (f"trial phase (first trial's start to last one's end) basic {phase['basic']:.0f} s, "
            f"joblib {phase['joblib']:.0f} s ({steady:.2f}x); the first trial started "
            f"{lead['basic']:.0f} s (basic) and {lead['joblib']:.0f} s (joblib) after the "
            f"command; outside the trial phase, of the command's "
            f"wall time: basic {wall['basic'] - phase['basic']:.0f} of {wall['basic']:.0f} s, "
            f"joblib {wall['joblib'] - phase['joblib']:.0f} of {wall['joblib']:.0f} s; the "
            f"{trials} trials' train_seconds summed {train['basic']:.0f} s one at a time, "
            f"{train['joblib']:.0f} s two at a time (each trial "
            f"{slower:.2f}x as long); processes importing TensorFlow: basic {tf['basic']:.0f}, "
            f"joblib {tf['joblib']:.0f}")
