"""Command `seed_study`: how much of a model's test figure is the seed's luck.

    python -m pipeline.seed_study boston_housing_dense --seeds 5

The report's figures come from one run with params.yaml's `seed`. This trains the model
N times on the same prepared splits, with seeds seed, seed+1, ... (weights, shuffling,
dropout, K-fold's and an ensemble's fits all follow the seed), scores each on the test
split as `evaluate` does, and records the spread:

- in MLflow: one parent run "<model>: seed study (N seeds)" in the dataset's experiment,
  with `<test metric>_mean`, `_sd`, `_min`, `_max`, and each seed as a child run with
  its epochs (watched live) and test figures; runs end FINISHED, FAILED or KILLED;
- in results/<dataset>/<model>/seeds.json: the seeds, each one's figure, mean and sd,
  and the training key of the model `dvc repro` trains with these settings, so the
  report can show the spread next to the figure and say when it was measured for other
  settings or code. Commit it with the results.

The study trains in a temporary folder and leaves models/ and the registry alone.
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import tempfile
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import cli, layout, metrics
from pipeline.config import dataset_config, load_params, model_config
from pipeline.files import write_json
from pipeline.rules import MAX_SEED

log = logging.getLogger("pipeline.seed_study")
DEFAULT_SEEDS = 5  # the benchmark's paired seeds too: enough for a useful sd, 5x the time


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (0 for one value), min and max."""
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def with_seed(params: DictConfig, seed: int) -> DictConfig:
    changed = copy.deepcopy(params)
    changed.seed = seed
    return changed


def study(name: str, params: DictConfig, data_dir: Path, results_dir: Path,
          seeds: list[int]) -> dict[str, Any]:
    import mlflow

    from pipeline import preflight, run_log, tracking
    from pipeline.arrays import load_split
    from pipeline.live import LiveTraining
    from pipeline.scoring import score
    from pipeline.training import fit_and_score, training_key

    cfg = model_config(params, name)
    ds = dataset_config(params, cfg.dataset)
    prepared = layout.prepared_dir(data_dir, cfg.dataset)
    manifest = layout.read_manifest(prepared)
    preflight.check_all(params, {cfg.dataset: manifest}, only=[name], baseline=False)
    tracking.connect(params)
    metric = f"test_{metrics.RANKED_BY[ds.task]}"
    train_split = load_split(prepared / "train.npz")
    x_test, y_test = load_split(prepared / "test.npz")
    values: list[float] = []
    step = f"seed_study@{name}"
    with tracking.live_run(cfg.dataset, step, f"{name}: seed study ({len(seeds)} seeds)",
                           run_log.run_tags(cfg.dataset, manifest, step, "keras")) as parent:
        client = mlflow.MlflowClient()
        run_log.log_params(client, parent.info.run_id, {
            **run_log.flatten(run_log.run_config(params, name)),
            "seeds": ",".join(map(str, seeds))})
        for i, seed in enumerate(seeds, 1):
            with tracking.child_run(client, parent, f"seed {seed}",
                                    {"seed_study.seed": str(seed)}) as run:
                client.log_param(run.info.run_id, "seed", seed)
                live = LiveTraining(client, run)
                with tempfile.TemporaryDirectory(prefix=".seed-study-") as scratch:
                    model, history, summary = fit_and_score(
                        name, with_seed(params, seed), prepared, manifest, train_split,
                        Path(scratch), live=live)
                figures, _ = score(model, x_test, y_test, ds)
                live.send()
                run_log.log_summary(client, run.info.run_id, history, summary, {
                    k: v for k, v in figures.items() if isinstance(v, float)})
            values.append(figures[metric])
            so_far = spread(values)
            log.info("seed_study %s: seed %d (%d/%d): %s=%.4f; so far %.4f ± %.4f", name,
                     seed, i, len(seeds), metric, values[-1], so_far["mean"], so_far["sd"])
        result = spread(values)
        run_log.log_metrics(client, parent.info.run_id,
                            {f"{metric}_{k}": v for k, v in result.items()}
                            | {"seeds": float(len(seeds))})
    record = {
        "model": name, "dataset": cfg.dataset, "metric": metric, "seeds": seeds,
        "values": values, **result, "run_id": parent.info.run_id,
        "tracking_uri": tracking.tracking_uri(params),
        # the key of what `dvc repro` trains with these settings at `seed`: the report
        # compares it with models/<model>/training_key.json
        "training_key": training_key(params, name, manifest, "pipeline.train"),
        "config": OmegaConf.to_container(params.models[name], resolve=True),
        "data": layout.data_label(manifest["source"]),
    }
    write_json(layout.seeds_file(results_dir, cfg.dataset, name), record)
    log.info("seed_study %s: %s = %.4f ± %.4f over %d seeds (%s; min %.4f, max %.4f), "
             "MLflow run %s; wrote %s", name, metric, result["mean"], result["sd"],
             len(seeds), ", ".join(map(str, seeds)), result["min"], result["max"],
             parent.info.run_id, layout.seeds_file(results_dir, cfg.dataset, name))
    return record


def seed_arg(text: str) -> int:
    """--first-seed: a seed numpy takes, refused at parse time (a command-line mistake, not
    a params.yaml one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"'{text}' is not a seed from 0 to {MAX_SEED}, e.g. 42")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.seed_study", "Train one model over N seeds on the prepared "
                         "data; log its test figure's mean ± sd to MLflow and "
                         "results/<dataset>/<model>/seeds.json (the report shows it).",
                         "model", folders=("data", "results"))
    parser.add_argument("--seeds", type=cli.count, default=DEFAULT_SEEDS,
                        help=f"how many seeds (default {DEFAULT_SEEDS})")
    parser.add_argument("--first-seed", type=seed_arg, default=None,
                        help="the first seed (default: params.yaml's seed, so the first "
                             "run is the one `dvc repro` made)")

    def run(args: argparse.Namespace) -> None:
        params = load_params(args.params)
        model_config(params, args.model)  # an unknown name fails before it becomes a path
        first = params.seed if args.first_seed is None else args.first_seed
        if first + args.seeds - 1 > MAX_SEED:  # a command-line mistake, not params.yaml's
            parser.error(f"--first-seed {first} with --seeds {args.seeds} passes the largest "
                         f"seed, {MAX_SEED}; use a smaller --first-seed")
        study(args.model, params, args.data_dir, args.results_dir,
              list(range(first, first + args.seeds)))

    cli.run(parser, argv, run)


if __name__ == "__main__":
    main()
