"""Stage `train`: fit one Keras model (an entry under `models:` in params.yaml), tracked in MLflow.

1. check the model with Keras on the prepared data's shape (pipeline/preflight.py) and
   that the tracking store answers: a mistake fails here, before any training;
2. open its MLflow run: params, and the train/val splits as datasets;
3. train (pipeline/training.py) into models/.pending/<model>/, keyed by what decides the
   result (config, seed, data, code); the run shows each epoch as it ends, and each
   K-fold fold as a child run (pipeline/live.py); a failed training ends it FAILED with why;
4. log the summary and the model (an MLflow logged model, signature and input example);
5. only then move the folder to models/<model>/ (model.keras, checkpoint.keras,
   history.json, summary.json, training_key.json, run.json).

If logging fails (the store went away, the process was killed), the trained model stays
in models/.pending/<model>/; the next run with the same key logs it without training
again, tagged `pipeline.trained_in_run` with the run it trained in. Nothing half-done
reaches models/<model>/.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from pipeline import cli, layout, run_log
from pipeline.arrays import dense, load_split
from pipeline.config import load_params, model_config
from pipeline.console import source_banner
from pipeline.errors import TrackingUnavailable, error_line
from pipeline.files import atomic_dir, replace_dir, write_json
from pipeline.live import LiveTraining

log = logging.getLogger("pipeline.train")


def train(name: str, params: DictConfig, data_dir: Path, out_dir: Path) -> dict[str, Any]:
    import mlflow

    from pipeline import preflight, tracking
    from pipeline.training import training_key

    cfg = model_config(params, name)
    prepared = layout.prepared_dir(data_dir, cfg.dataset)
    manifest = layout.read_manifest(prepared)
    preflight.check_all(params, {cfg.dataset: manifest}, only=[name], baseline=False)
    tracking.connect(params)
    banner = source_banner(cfg.dataset, manifest["source"])
    if banner:
        log.warning("%s", banner)

    key = training_key(params, name, manifest, "pipeline.train")  # not __name__: __main__
    pending = layout.pending_dir(out_dir.parent, out_dir.name)
    kept = _kept(pending, key)
    with tracking.live_run(cfg.dataset, f"train@{name}", f"{cfg.dataset} {name} (keras)",
                           run_log.run_tags(cfg.dataset, manifest, f"train@{name}", "keras")
                           ) as run:
        run_id = run.info.run_id
        client = mlflow.MlflowClient()
        run_log.log_params(client, run_id, run_log.flatten(run_log.run_config(params, name)))
        client.log_inputs(run_id, datasets=run_log.split_inputs(
            params.datasets[cfg.dataset], cfg.dataset, manifest, run_log.TRAINING_INPUTS))
        live = LiveTraining(client, run)
        if kept is None:
            model, history, summary = _fit(name, params, prepared, manifest, pending, key,
                                           run_id, live)
        else:
            model, history, summary, trained_in = kept
            client.set_tag(run_id, "pipeline.trained_in_run", trained_in)
        try:
            if kept is None:
                live.send()  # the last epochs
                run_log.log_summary(client, run_id, history, summary)
            else:  # trained by an earlier run: its epochs at once
                run_log.log_training(client, run_id, history, summary)
            _log_model(client, run_id, model, history, load_split(prepared / "train.npz")[0])
        except Exception as err:
            raise TrackingUnavailable(
                f"train {name}: logging to MLflow ({tracking.tracking_uri(params)}) failed: "
                f"{error_line(err)[:300]}. The trained model is kept in {pending}. Fix: make "
                "the tracking store reachable, then rerun `dvc repro`: it logs the kept model "
                "without training again") from None
    layout.write_run(pending, run_id, tracking.tracking_uri(params))
    replace_dir(pending, out_dir)
    scores = {k: round(v, 4) for k, v in summary.items()  # the saved model's, or K-fold's
              if k.startswith("val_") or (k.startswith("kfold_val_") and k.endswith("_mean"))}
    log.info("train %s: %d epochs in %.1fs, %s (data: %s)", name, summary["epochs"],
             summary["train_seconds"], ", ".join(f"{k}={v}" for k, v in sorted(scores.items()))
             or "no validation figure", layout.data_label(manifest["source"]))
    return summary


def _kept(pending: Path, key: str):
    """A model trained with the same key whose logging failed:
    (model, history, summary, the id of the run it trained in)."""
    try:
        kept = json.loads((pending / layout.KEY_FILE).read_text())
    except (OSError, ValueError):
        return None
    if kept.get("key") != key:
        return None
    import keras

    log.info("train: %s holds this exact training (key %s), not yet logged to MLflow: "
             "logging it, no training", pending, key)
    return (keras.models.load_model(pending / layout.MODEL_FILE), *layout.read_training(pending),
            str(kept.get("run_id", "unknown")))


def _fit(name: str, params: DictConfig, prepared: Path, manifest: dict, pending: Path, key: str,
         run_id: str, live: LiveTraining):
    from pipeline.training import fit_and_score

    train_split = load_split(prepared / "train.npz")
    with atomic_dir(pending) as tmp:  # complete (key file last) or not there at all
        model, history, summary = fit_and_score(name, params, prepared, manifest, train_split,
                                                tmp, live=live)
        model.save(tmp / layout.MODEL_FILE)
        layout.write_training(tmp, history, summary)
        write_json(tmp / layout.KEY_FILE, {"key": key, "run_id": run_id})
    return model, history, summary


def _log_model(client, run_id: str, model, history, x_train) -> None:
    from mlflow.models import infer_signature

    example = dense(x_train[:3])
    signature = infer_signature(example, model.predict(example, verbose=0))
    run_log.log_keras_model(model, signature, example)
    client.log_text(run_id, json.dumps(history, indent=1), "history.json")


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.train", "Train one Keras model from params.yaml "
                         "(models.<name>), tracked in MLflow.", "model", out="models/<model>")

    def run(args: argparse.Namespace) -> None:
        params = load_params(args.params)
        model_config(params, args.model)  # an unknown name fails before it becomes a path
        train(args.model, params, args.data_dir, args.out_dir or layout.MODELS / args.model)

    cli.run(parser, argv, run)


if __name__ == "__main__":
    main()
