"""Stage `probe`: is the real data reachable again for a dataset on a stand-in?

The one stage DVC always runs, so it must cost next to nothing: standard
library only, no work at all unless a dataset currently holds bundled or
generated data, and then one HEAD request (or a file lookup) per dataset.
It rewrites data/probe.json only when a dataset's answer flips; the download
stages depend on that file, so the first `dvc repro` after the network comes
back replaces the stand-ins with the real data, and every other `dvc repro`
runs nothing else.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from pipeline.console import REAL_SOURCES
from pipeline.sources import cache_root, is_url, mirror_location


def _answers(url: str, timeout: float) -> bool:
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def real_data_reachable(name: str, ds: dict, download: dict) -> bool:
    """Can the first source file be had from the cache, a mirror, or its canonical URL?"""
    files = (ds.get("source") or {}).get("files") or []
    if not files:
        return False
    first = files[0]
    if (cache_root(download) / name / first["name"]).is_file():
        return True
    timeout = min(float(download.get("timeout", 5)), 5.0)
    candidates = [mirror_location(m, name, first["name"]) for m in download.get("mirrors") or []]
    for location in [*candidates, first["url"]]:
        if is_url(location) and _answers(location, timeout):
            return True
        if not is_url(location) and Path(location).expanduser().is_file():
            return True
    return False


def probe(params: dict, data_dir: Path) -> dict[str, bool]:
    """{dataset: True} for each dataset on a stand-in whose real source now answers."""
    status = {}
    for name, ds in (params.get("datasets") or {}).items():
        try:
            kind = json.loads((data_dir / name / "raw" / "source.json").read_text())["kind"]
        except (OSError, ValueError, KeyError):
            kind = None  # not downloaded yet: its download stage runs anyway
        on_stand_in = kind is not None and kind not in REAL_SOURCES
        download = params.get("download") or {}
        status[name] = on_stand_in and real_data_reachable(name, ds, download)
    return status


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.probe",
        description="Check whether datasets on stand-in data can get the real data now.",
    )
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--out", default="data/probe.json")
    args = parser.parse_args(argv)

    params = yaml.safe_load(Path(args.params).read_text())
    status = probe(params, Path(args.data_dir))
    text = json.dumps(status, indent=2, sort_keys=True) + "\n"
    out = Path(args.out)
    if not out.exists() or out.read_text() != text:  # untouched file = DVC sees no change
        from pipeline.files import write_json

        write_json(out, status)
    for name in (n for n, back in status.items() if back):
        print(f"probe: the real {name} data is reachable again; downloading it", file=sys.stderr)


if __name__ == "__main__":
    main()
