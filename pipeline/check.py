"""Stage `check`: every setting is checked before `dvc repro` touches anything.

DVC removes a stage's outputs just before it runs the stage, so a check inside a
stage comes too late to protect them. This stage runs first, on every `dvc repro`
(`always_changed`; every other stage is downstream of its data/probe.json): a
mistake in params.yaml (or in an `dvc exp run -S` value) ends here, in one line
naming its params.yaml line, and DVC stops before any other output is removed,
written or trained. All of pipeline/preflight.py runs: the settings' own rules, and
what Keras and scikit-learn say about every model and baseline option, with the
data as last prepared (folds against rows, the model built on its input shape).

Asking Keras costs a TensorFlow import (~6-9 s here), so the checks run only when the
settings, the checking code, the libraries or the prepared data changed since the last
pass (data/check.json remembers its fingerprint); otherwise this stage takes ~0.3 s.
After a change, every rule of validate.py and every rows-and-folds check runs again, but
Keras is asked only about the models whose part of the settings Keras reads changed (their
layers, optimizer, loss and metrics, their dataset's task, classes and data; data/check.json
keeps a fingerprint per model), and scikit-learn only when the baseline's options did.
Editing a learning rate, epochs or a batch size (validate.py checks those in full) imports
neither TensorFlow nor scikit-learn; editing a model's layers builds that model alone.

It also asks an http(s) tracking server whether it answers (stages would log there),
and then probes: a dataset on stand-in data whose real source answers again gets a new
value in data/probe.json, so its download stage reruns and fetches it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib.metadata import version
from pathlib import Path

from omegaconf import DictConfig

from pipeline import cli, facts, layout, lineage, preflight, tracking, validate
from pipeline.config import load_params
from pipeline.files import write_json
from pipeline.keras_reads import keras_reads
from pipeline.sources import probe

log = logging.getLogger("pipeline.check")
SKLEARN = "baseline (scikit-learn)"  # its entry among the models' in data/check.json


@functools.cache
def _checker() -> dict:
    """The checking code and libraries: the same facts under other code may not pass."""
    return {"code": lineage.code_digest("pipeline.check"),
            "libraries": [version(p) for p in ("keras", "tensorflow-cpu", "scikit-learn")]}


def _digest(facts_of_it: dict) -> str:
    blob = json.dumps({**facts_of_it, **_checker()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def fingerprint(text: str, manifests: dict[str, dict | None]) -> str:
    """Same settings, checking code, libraries and data: every check would pass again."""
    return _digest({"params": text, "data": manifests})


SKLEARN_READS = ("classifier", "regressor")  # of `baseline:` (facts.check_baseline_options)


def part_fingerprints(params: DictConfig, manifests: dict[str, dict | None]) -> dict[str, str]:
    """{model: what its Keras check reads}, and {"baseline (scikit-learn)": what scikit-learn
    is asked}. The same fingerprint as at the last pass: the library would say the same."""
    prints = {name: _digest({**keras_reads(model, params.datasets[model.dataset]),
                             "data": manifests.get(model.dataset)})
              for name, model in params.models.items()}
    prints[SKLEARN] = _digest({key: facts.plain(params.baseline.get(key)) for key in SKLEARN_READS})
    return prints


def asked(before: dict[str, str], after: dict[str, str]) -> tuple[list[str], bool]:
    """Whom to ask again, from the part fingerprints at the last pass and now: (the models
    Keras is asked about, whether scikit-learn is asked about the baseline's options)."""
    changed = [name for name, digest in after.items() if before.get(name) != digest]
    return [name for name in changed if name != SKLEARN], SKLEARN in changed


def _memo(check_file: Path) -> dict:
    try:
        memo = json.loads(check_file.read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def _quick_read(text: str) -> dict | None:
    """params.yaml as plain data (C parser), or None if it doesn't read as a mapping."""
    import yaml

    try:
        raw = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    return raw if isinstance(raw, dict) and isinstance(raw.get("datasets"), dict) else None


def dry_builds(params, data_dir: Path, manifests: dict[str, dict | None]) -> dict[str, dict]:
    """For each dataset whose data settings changed since it was prepared (and whose raw
    files `download` will keep), build its splits in memory exactly as `prepare` will: a
    setting the data can't satisfy fails here, before DVC removes the prepared data.
    Returns the new facts {dataset: manifest} for the model checks."""
    from pipeline.dataset import build

    rebuilt = {}
    for name, ds in params.datasets.items():
        manifest = manifests.get(name)
        raw = layout.raw_dir(data_dir, name)
        source = layout.read_source(raw)
        if manifest is None or facts.usable(manifest, ds) is not None or not (
                layout.raw_is_current(ds, source)):
            continue  # not prepared yet, unchanged, or about to be downloaded anew
        rebuilt[name] = build(name, params, raw, source).manifest
    return rebuilt


def check(params_path: Path, data_dir: Path, check_file: Path, probe_file: Path) -> None:
    text = params_path.read_text() if params_path.is_file() else ""
    raw = _quick_read(text)
    names = [n for n in (raw or {}).get("datasets", {})
             if isinstance(n, str) and validate.NAME.fullmatch(n)]
    manifests = {name: layout.manifest_or_none(layout.prepared_dir(data_dir, name))
                 for name in names}
    key = fingerprint(text, manifests)
    memo = _memo(check_file)
    params = raw
    if raw is None or memo.get("passed") != key:  # something changed: check from the top
        params = load_params(params_path)
        rebuilt = dry_builds(params, data_dir, manifests)
        facts_now = {**manifests, **rebuilt}
        models = part_fingerprints(params, facts_now)
        before = memo.get("models") if isinstance(memo.get("models"), dict) else {}
        keras, sklearn = asked(before, models)
        # rows and folds of every model (cheap) always; the libraries only where it changed
        preflight.check_all(params, facts_now, ask_keras=keras, ask_sklearn=sklearn)
        write_json(check_file, {"passed": key, "models": models})
        log.info("check: params.yaml is valid (%d datasets%s; %s checked with Keras, the "
                 "baseline's options %s)", len(params.datasets),
                 f", {', '.join(rebuilt)} built without writing" if rebuilt else "",
                 f"{len(keras)} of {len(params.models)} models", "with scikit-learn"
                 if sklearn else "unchanged")

    tracking.ping((params.get("tracking") or {}).get("uri"))  # stages that log need it
    status = probe(params, data_dir)  # the validated params, or the same text read fast
    text = json.dumps(status, indent=2, sort_keys=True) + "\n"
    if not probe_file.exists() or probe_file.read_text() != text:  # untouched: no rerun
        write_json(probe_file, status)
    for name in (n for n, back in status.items() if back):
        log.info("check: the real %s data is reachable again; downloading it", name)


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.check", "Check every setting in params.yaml (before any "
                         "stage runs), and whether datasets on stand-in data can get the real "
                         "data now.")
    cli.run(parser, argv, lambda args: check(args.params, args.data_dir,
                                             args.data_dir / layout.CHECK_FILE.name,
                                             args.data_dir / layout.PROBE_FILE.name))


if __name__ == "__main__":
    main()
