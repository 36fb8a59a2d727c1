"""Stage `download`: a dataset's source files, verified, into data/<dataset>/raw.

Each file comes from the download cache, a mirror or its canonical URL, and
is checked against the hash in params.yaml before it lands. When nothing is
reachable (and `download.fallback` allows it) the stage writes bundled or
generated stand-ins in the same formats. `raw/source.json` records where the bytes
came from and what they are (`label`, layout.py's words, and for bundled data the
`proof`); every later stage carries it along and says it: nothing for the real
dataset (bundled arrays proven identical to it included), one line for a real
subset, a box for anything not proven real.

DVC runs it when its settings or code change, or when the `check` stage's probe
finds the real data reachable again for a dataset on a stand-in (data/probe.json).
It is cheap when nothing changed: with real data in place it returns at once; with
a stand-in in place it probes the sources once (no retries). Downstream stages
rerun only if the bytes actually changed.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline import cli, layout
from pipeline.config import dataset_config, load_params
from pipeline.console import source_banner
from pipeline.errors import DataError
from pipeline.files import atomic_dir, file_hash, write_json
from pipeline.layout import (
    REAL,
    SOURCE_FILE,
    UPSTREAM_KINDS,
    data_label,
    raw_is_current,
    read_source,
    stand_in_fingerprint,
)

log = logging.getLogger("pipeline.download")


def download(name: str, params: DictConfig, raw_dir: Path) -> dict:
    """Make raw_dir hold the dataset's verified files; return the provenance record."""
    from pipeline.sources import SourceUnavailable, check_mirrors, fetch_file

    ds = dataset_config(params, name)
    check_mirrors(params.download)
    pinned = {f.name: f.hash for f in ds.source.files}
    previous = read_source(raw_dir)
    files_present = all((raw_dir / f).is_file() for f in pinned)

    real_in_place = previous and files_present and previous["kind"] in UPSTREAM_KINDS
    if real_in_place and previous["files"] == pinned:
        log.info("download %s: %s data in place (%s), nothing to do",
                 name, previous["kind"], _describe(previous))
        return previous

    stand_in = (previous is not None and files_present
                and previous["kind"] not in UPSTREAM_KINDS and raw_is_current(ds, previous))
    try:
        # With a stand-in already in place, one quick probe per source is enough.
        fetched = [fetch_file(name, spec, params.download, 0 if stand_in else None)
                   for spec in ds.source.files]
    except SourceUnavailable as err:
        return _fall_back(name, ds, params, raw_dir, str(err), previous if stand_in else None)

    kinds = {f.kind for f in fetched}
    record = {
        "dataset": name,
        "kind": "mirror" if "mirror" in kinds else "canonical",
        "label": REAL,
        "detail": ", ".join(sorted({f.location.rsplit("/", 1)[0] for f in fetched})),
        "files": {f.name: f.hash for f in fetched},
    }
    with atomic_dir(raw_dir) as tmp:
        for f in fetched:
            shutil.copyfile(f.path, tmp / f.name)
        write_json(tmp / SOURCE_FILE, record)
    log.info("download %s: %d file(s) from %s, checksums verified",
             name, len(fetched), _describe(record))
    return record


def _fall_back(
    name: str, ds: DictConfig, params: DictConfig, raw_dir: Path, reason: str,
    in_place: dict | None,
) -> dict:
    if not params.download.fallback:
        raise DataError(
            f"{reason}. Fallback data is switched off (download.fallback: false). Fix: restore "
            "network access, list a mirror under download.mirrors, or set download.fallback: true"
        )
    if ds.source.fallback is None:
        raise DataError(f"{reason}. datasets.{name}.source.fallback is not set, so there is no "
                        "offline stand-in. Fix: restore network access or add a mirror")
    if in_place is not None:
        log.warning("download %s: sources still unreachable (%s); keeping the data in "
                    "place: %s", name, reason, data_label(in_place))
        return in_place

    from pipeline import fallback

    recipe = ds.source.fallback
    with atomic_dir(raw_dir) as tmp:
        what = fallback.build(ds, name, tmp, seed=int(recipe.options.get("seed", 0)))
        record = {
            "dataset": name,
            "kind": recipe.kind,
            "label": what["label"],
            "detail": f"recipe {recipe.recipe} "
            + json.dumps(OmegaConf.to_container(recipe.options)),
            "reason": reason,
            "fingerprint": stand_in_fingerprint(ds),
            "files": {f.name: file_hash(tmp / f.name) for f in ds.source.files},
            **({"proof": what["proof"]} if "proof" in what else {}),
        }
        write_json(tmp / SOURCE_FILE, record)
    banner = source_banner(name, record)
    if banner:
        log.warning("%s", banner)
    else:  # proven identical: said once, quietly, with the proof
        proof = record["proof"]
        log.info("download %s: no source reachable (%s); %s: %s, its arrays' sha256 %s is "
                 "that of %s (%s)", name, reason, record["label"], record["detail"],
                 proof["arrays_sha256"], proof["identical_to"]["file"],
                 proof["identical_to"]["hash"])
    return record


def _describe(record: dict) -> str:
    return f"{data_label(record)}, {record['kind']}: {record.get('detail', '?')}"


def main(argv: list[str] | None = None) -> None:
    parser = cli.command("pipeline.download", "Fetch one dataset's source files (verified) "
                         "into data/<dataset>/raw.", "dataset")
    cli.run(parser, argv, lambda args: download(args.dataset, load_params(args.params),
                                                layout.raw_dir(args.data_dir, args.dataset)))


if __name__ == "__main__":
    main()
