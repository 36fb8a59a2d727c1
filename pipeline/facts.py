"""Rules that need more than the settings: the data as last prepared (folds and validation
rows against the rows there are) and scikit-learn (the SGD options). Run by
`preflight.check_all` before anything is touched, and by `baseline` for its own part.
"""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import error_line
from pipeline.rules import fail


def plain(node: Any) -> Any:
    """A setting as plain Python (an OmegaConf node resolved), for fingerprints and keyword
    arguments; anything else as it is."""
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node


def dataset_settings(ds: DictConfig) -> dict[str, Any]:
    """What decides a prepared dataset's rows and shapes (recorded in its manifest)."""
    return {k: plain(ds[k]) for k in ("load", "preprocess", "split")}


def usable(manifest: dict | None, ds: DictConfig,
           decided_by: tuple[str, ...] = ("load", "preprocess", "split")) -> dict | None:
    """The manifest, if the settings that decide the facts a rule needs are the ones it was
    prepared with (else the rule would check a new setting against stale facts). Rows read
    from the files depend on `load`; training rows on `split` too; shapes on `preprocess`."""
    if manifest is None:
        return None
    recorded, current = manifest.get("settings") or {}, dataset_settings(ds)
    return manifest if all(recorded.get(k) == current[k] for k in decided_by) else None


def check_rows(cfg: DictConfig, manifests: dict[str, dict | None],
               models: list[str] | None = None, baseline: bool = True) -> None:
    """Validation rows, K-fold folds (of `models`, default all) and baseline CV folds against
    the rows there are, for each dataset whose manifest is given."""
    for name, ds in cfg.datasets.items():
        loaded = usable(manifests.get(name), ds, ("load",))
        if loaded is None:
            continue
        upstream = loaded["splits"]["train"]["rows"] + loaded["splits"]["val"]["rows"]
        count = ds.split.validation
        if isinstance(count, int) and count >= upstream:
            fail(f"datasets.{name}.split.validation", f"{count} validation rows of {upstream}",
                 f"fewer than {upstream}, so some rows are left to train on",
                 "use a smaller count or a fraction such as 0.2")
        facts = usable(loaded, ds, ("load", "split"))
        if facts is None:
            continue
        rows = facts["splits"]["train"]["rows"]
        if baseline and cfg.baseline.cv_folds > rows:
            fail("baseline.cv_folds", f"{cfg.baseline.cv_folds} folds of {rows} training rows "
                 f"of {name}", f"at most {rows}", f"use {min(5, rows)}" if rows >= 2 else
                 f"give {name} more training rows")
        for model_name in cfg.models if models is None else models:
            model = cfg.models[model_name]
            if model.dataset == name and model.kfold is not None and model.kfold.folds > rows:
                fail(f"models.{model_name}.kfold.folds", f"{model.kfold.folds} folds of {rows} "
                     "training rows", f"at most {rows} (every fold needs a validation row)",
                     f"use {min(4, rows)}" if rows >= 2 else f"give {name} more training rows")


def check_baseline_options(cfg: DictConfig) -> None:
    """scikit-learn's own checks of the SGD options, on a sixty-row toy problem."""
    import warnings

    import numpy as np
    from sklearn.linear_model import SGDClassifier, SGDRegressor

    x = np.arange(60, dtype=np.float64).reshape(-1, 1) / 60  # room for validation_fraction
    for key, estimator, y in (("baseline.classifier", SGDClassifier, np.arange(60) % 2),
                              ("baseline.regressor", SGDRegressor, x[:, 0])):
        options = plain(cfg.baseline[key.split(".")[1]])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator(**options, random_state=0).fit(x, y)
        except (TypeError, ValueError) as err:
            text = error_line(err)
            named = re.search(r"'(\w+)' parameter|argument '(\w+)'", text)
            option = next((g for g in named.groups() if g), None) if named else None
            fail(f"{key}.{option}" if option else key, f"scikit-learn refuses it ({text[:200]})",
                 f"{estimator.__name__} arguments", "correct the value it names")
