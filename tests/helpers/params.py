"""params.yaml for tests: the project's own, and copies shrunk to tiny data served from
127.0.0.1 or a local mirror folder."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from helpers.net import closed_port_url
from helpers.paths import ROOT
from helpers.upstream import make_upstream_files, sha256


def project_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def tiny_params(
    base_url: str, files: dict[str, dict[str, bytes]], cache_dir: Path, **download: Any
) -> dict[str, Any]:
    """The project's params.yaml with every source pointed at `base_url` and tiny splits."""
    params = copy.deepcopy(project_params())
    params["download"].update({"cache_dir": str(cache_dir), "retries": 1, "timeout": 5})
    params["download"].update(download)
    for name, ds in params["datasets"].items():
        for spec in ds["source"]["files"]:
            spec["url"] = f"{base_url}/{name}/{spec['name']}"
            spec["hash"] = sha256(files[name][spec["name"]])
        split = ds["split"]
        if isinstance(split["validation"], int) and split["validation"] >= 1:
            split["validation"] = 10
        ds["checks"]["max_overlap"] = 0.05
    # Small stand-ins, so fallback tests stay fast.
    fallbacks = params["datasets"]
    fallbacks["fashion_mnist"]["source"]["fallback"]["options"].update(
        {"train_size": 300, "test_size": 100})
    fallbacks["imdb"]["source"]["fallback"]["options"].update(
        {"train_size": 200, "test_size": 100})
    fallbacks["reuters"]["source"]["fallback"]["options"].update({"size": 300})
    return params


def mirrored_params(root: Path) -> dict[str, Any]:
    """tiny_params() served from a local mirror folder (no server, 'no network' otherwise)."""
    files = make_upstream_files()
    mirror = root / "mirror"
    for name, named in files.items():
        (mirror / name).mkdir(parents=True)
        for fname, data in named.items():
            (mirror / name / fname).write_bytes(data)
    return tiny_params(closed_port_url(), files, root / "cache", mirrors=[str(mirror)])


def pipeline_params(root: Path) -> dict[str, Any]:
    """The project's params for imdb and boston_housing, tiny data from a local mirror."""
    params = mirrored_params(root)
    keep = {"imdb": "imdb_dense", "boston_housing": "boston_housing_dense"}
    keep_only(params, keep, keep.values())
    params["models"]["imdb_dense"]["epochs"] = 3
    params["models"]["boston_housing_dense"].update(epochs=3, kfold={"folds": 2, "epochs": 2})
    params["models"]["boston_housing_dense"]["ensemble"]["fits"] = 2  # an ensemble still
    params["baseline"].update(cv_folds=2, n_jobs=1)
    return params


def keep_only(params: dict[str, Any], datasets, models) -> dict[str, Any]:
    """Narrow params to these datasets and models; the books' published figures then name
    only the models kept (check refuses a figure set against a model that isn't there)."""
    params["datasets"] = {k: v for k, v in params["datasets"].items() if k in datasets}
    params["models"] = {m: params["models"][m] for m in models}
    for ds in params["datasets"].values():
        published = [{**p, "models": [m for m in p["models"] if m in {"baseline", *models}]}
                     for p in ds["published"]]
        ds["published"] = [p for p in published if p["models"]]
    return params


def small_models(raw: dict) -> dict:
    """The project's models, trained for 2 epochs (K-fold: 2 folds of 2 epochs), their
    other choices kept: the epochs read off the curve (from epoch 1), an ensemble (of 2 fits
    at most)."""
    for model in raw["models"].values():
        model["epochs"] = 2
        if model["kfold"]:
            choice = model["kfold"].get("choose_epochs")
            model["kfold"].update(folds=2, epochs=2,
                                  choose_epochs=choice and {**choice, "skip": 0})
        if model.get("ensemble"):
            model["ensemble"]["fits"] = min(model["ensemble"]["fits"], 2)
    raw["baseline"]["cv_folds"] = 2
    raw["baseline"]["n_jobs"] = 1
    return raw


DELETE = object()  # put(path, DELETE) removes the key


def broken(edit) -> dict:
    """The project's params.yaml (as data) with `edit` applied."""
    raw = copy.deepcopy(project_params())
    edit(raw)
    return raw


def put(path: str, value):
    """An edit setting a dotted key (`models.x.layers.0.units`) to `value`, or deleting it
    (DELETE)."""
    def edit(raw):
        node = raw
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is DELETE:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return edit


def rename(group: str, old: str, new: str):
    """An edit renaming a dataset or model entry (and, for a dataset, its models' links)."""
    def edit(raw):
        raw[group][new] = raw[group].pop(old)
        if group == "datasets":
            for model in raw["models"].values():
                if model["dataset"] == old:
                    model["dataset"] = new
    return edit
