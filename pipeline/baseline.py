"""Stage `baseline`: the books' linear baseline, to beat with the Keras models.

Classification: `SGDClassifier(loss="log_loss")` (logistic regression), scored with
k-fold `cross_validate` on the training split as the Fashion-MNIST chapter does,
then fit on train and scored on validation and test. Regression: a linear
`SGDRegressor`. Sparse features stay sparse. Metric names match the Keras runs
(val_accuracy, test_accuracy, test_loss / val_mae, test_mae, ...) so MLflow
compares them side by side.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from pipeline import cli, facts, layout
from pipeline.arrays import dense, load_split
from pipeline.config import dataset_config, load_params
from pipeline.console import source_banner
from pipeline.files import write_json

log = logging.getLogger("pipeline.baseline")


def _flat(x):
    """sklearn wants 2-D: images (n, 28, 28) -> (n, 784); sparse stays sparse."""
    if hasattr(x, "tocsr"):
        return x
    x = np.asarray(x)
    return x.reshape(len(x), int(np.prod(x.shape[1:])))


def classification_scores(prefix: str, estimator, x, y) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, log_loss

    if x.shape[0] == 0:
        return {}
    proba = estimator.predict_proba(x)
    return {f"{prefix}_accuracy": float(accuracy_score(y, proba.argmax(axis=1))),
            f"{prefix}_loss": float(log_loss(y, proba, labels=estimator.classes_))}


def regression_scores(prefix: str, estimator, x, y) -> dict[str, float]:
    if x.shape[0] == 0:
        return {}
    err = estimator.predict(x) - y
    mse = float(np.mean(err**2))
    return {f"{prefix}_mae": float(np.mean(np.abs(err))), f"{prefix}_mse": mse,
            f"{prefix}_rmse": float(np.sqrt(mse))}


def fit_baseline(ds: DictConfig, cfg: DictConfig, seed: int, splits: dict) -> tuple[Any, dict]:
    """Cross-validate, fit on train, score every split; returns (estimator, metrics)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier, SGDRegressor
    from sklearn.model_selection import cross_validate

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # the books' max_iter=5 way
    regression = ds.task == "regression"
    options = OmegaConf.to_container(cfg.regressor if regression else cfg.classifier)
    estimator = (SGDRegressor if regression else SGDClassifier)(**options, random_state=seed)
    x_train, y_train = splits["train"]
    scoring = "neg_mean_absolute_error" if regression else "accuracy"
    cv = cross_validate(estimator, x_train, y_train, cv=cfg.cv_folds, scoring=scoring,
                        n_jobs=cfg.n_jobs)
    scores = -cv["test_score"] if regression else cv["test_score"]
    name = "cv_mae" if regression else "cv_accuracy"
    metrics = {name: float(scores.mean()), f"{name}_std": float(scores.std())}
    estimator.fit(x_train, y_train)
    score = regression_scores if regression else classification_scores
    for split, (x, y) in splits.items():
        metrics.update(score(split, estimator, x, y))
    return estimator, metrics


def baseline(name: str, params: DictConfig, data_dir: Path, out_dir: Path) -> dict[str, float]:
    from pipeline import tracking

    ds = dataset_config(params, name)
    prepared = layout.prepared_dir(data_dir, name)
    manifest = layout.read_manifest(prepared)
    facts.check_rows(params, {name: manifest}, models=[])  # CV folds against the rows there are
    facts.check_baseline_options(params)  # scikit-learn's own checks of the SGD options
    tracking.connect(params)  # fail fast, before the work
    banner = source_banner(name, manifest["source"])
    if banner:
        log.warning("%s", banner)

    import mlflow

    from pipeline import run_log

    kind = "SGDRegressor" if ds.task == "regression" else "SGDClassifier"
    tags = run_log.run_tags(name, manifest, f"baseline@{name}", f"baseline {kind}")
    with tracking.live_run(name, f"baseline@{name}", f"{name} baseline ({kind})", tags) as run:
        run_id = run.info.run_id
        client = mlflow.MlflowClient()
        config = {"seed": params.seed, "baseline": params.baseline,
                  "dataset": run_log.dataset_params(params, name)}
        run_log.log_params(client, run_id, run_log.flatten(config))
        client.log_inputs(run_id, datasets=run_log.split_inputs(
            ds, name, manifest, {**run_log.TRAINING_INPUTS, **run_log.TEST_INPUTS}))
        started = time.perf_counter()
        splits = {}
        for split in ("train", "val", "test"):
            x, y = load_split(prepared / f"{split}.npz")
            splits[split] = (_flat(x), y)
        estimator, metrics = fit_baseline(ds, params.baseline, params.seed, splits)
        seconds = round(time.perf_counter() - started, 3)
        write_json(out_dir / "metrics.json", metrics)  # deterministic: no timings in here
        _log_results(client, run_id, estimator, splits["train"][0],
                     {**metrics, "train_seconds": seconds})
    layout.write_run(out_dir, run_id, tracking.tracking_uri(params))
    headline = {k: round(v, 4) for k, v in metrics.items() if k.startswith(("test_", "cv_"))}
    log.info("baseline %s: %s (data: %s, %.1fs)", name, headline,
             layout.data_label(manifest["source"]), seconds)
    return metrics


def _log_results(client, run_id: str, estimator, x_train, metrics: dict) -> None:
    import mlflow
    from mlflow.models import infer_signature

    from pipeline import run_log

    run_log.log_metrics(client, run_id, metrics)
    # A run artifact of its own, as the Keras runs have: MLflow 3.17's compare view
    # breaks ("Something went wrong") on a run whose artifact list is empty.
    client.log_text(run_id, json.dumps(metrics, indent=1, sort_keys=True), "metrics.json")
    example = dense(x_train[:5])
    mlflow.sklearn.log_model(
        estimator, name="model", input_example=example,
        signature=infer_signature(example, estimator.predict(example)),
        pip_requirements=run_log.serving_requirements(run_log.SKLEARN_PACKAGES))


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.baseline", "Fit and score the linear SGD baseline of one "
                         "dataset, tracked in MLflow.", "dataset",
                         out="results/<dataset>/baseline")

    def run(args: argparse.Namespace) -> None:
        params = load_params(args.params)
        dataset_config(params, args.dataset)  # an unknown name fails before it becomes a path
        out = args.out_dir or layout.results_dir(layout.RESULTS, args.dataset, layout.BASELINE)
        baseline(args.dataset, params, args.data_dir, out)

    cli.run(parser, argv, run)


if __name__ == "__main__":
    main()
