"""Finding a sweep's runs in MLflow: its parent (by the sweep directory), its trials, a
finished trial by its key, the best one; and the key that says two sweeps are the same.
MLflow is the sweep's durable record (pipeline/sweep_record.py writes it)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline import metrics
from pipeline.sweep_plan import Plan


def step(model: str) -> str:
    return f"sweep@{model}"


def digest(payload: Any, size: int = 16) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:size]


def data_hashes(manifest: dict) -> list[str]:
    return [manifest["splits"][s]["sha256"] for s in ("train", "val") if s in manifest["splits"]]


def sweep_key(plan: Plan, params: DictConfig, config: DictConfig, arguments: list[str],
              space: dict[str, str], manifest: dict) -> str:
    """Same key, same sweep: what it searches and how, and the code that trains; not the
    launcher or the trial count, so a sweep can be resumed on another launcher or extended
    with more trials, but never mixes trials of old and new training code."""
    from pipeline.lineage import code_digest

    sampler = OmegaConf.select(config, "hydra.sweeper.sampler", default=None)
    tuned = sorted(a for a in arguments if a.startswith("models."))
    return digest({"plan": [plan.model, plan.objective, plan.direction], "arguments": tuned,
                   "space": space, "seed": params.seed, "data": data_hashes(manifest),
                   "sampler": OmegaConf.to_container(sampler, resolve=True) if sampler else None,
                   "base": OmegaConf.to_container(params.models[plan.model], resolve=True),
                   "code": code_digest("pipeline.trials")})


def find_parent(client, experiment: str, sweep_dir: str):
    """The running sweep that writes to this directory (found by tag: works on any worker
    that reaches the tracking store, a Ray node included)."""
    runs = client.search_runs([experiment], f"tags.`sweep.dir` = '{sweep_dir}' and "
                              "tags.`sweep.role` = 'parent' and attributes.status = 'RUNNING'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def children(client, experiment: str, parent_id: str) -> list:
    return client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              max_results=5000, order_by=["attributes.start_time ASC"])


def finished_trial(client, experiment: str, parent_id: str, key: str):
    runs = client.search_runs(
        [experiment], f"tags.`mlflow.parentRunId` = '{parent_id}' and "
        f"tags.`sweep.trial_key` = '{key}' and attributes.status = 'FINISHED'", max_results=1)
    return runs[0] if runs else None


def best_of(runs: list, objective: str):
    done = [r for r in runs if r.info.status == "FINISHED" and "objective" in r.data.metrics]
    if not done:
        return None
    pick = max if metrics.higher_is_better(objective) else min
    return pick(done, key=lambda r: r.data.metrics["objective"])
