"""Where a dataset's files come from: the download cache, mirrors, the canonical URL.

Each file is looked up in that order. Network transfers go through pooch's
HTTP downloader (progress bar, timeouts); this module adds what pooch leaves
to its caller: which transient errors to retry (with backoff) and which to give
up on at once (404, no network), a hard failure on a checksum mismatch that
names the dataset, file, URL and both hashes, and never a partial file in the
cache (downloads land in a temp file and are renamed only once verified).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import DataError
from pipeline.files import clean_stale, file_hash, temp_prefix

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger("pipeline.download")

CACHE_ENV = "KERAS_PIPELINE_CACHE"


class ChecksumMismatch(DataError):
    """The bytes at a source are not the ones params.yaml pins: never used, never kept."""


class SourceUnavailable(Exception):
    """A source could not deliver a file (404, no network, dropped connection...)."""


@dataclass(frozen=True)
class Fetched:
    """A verified file in the cache, and where its bytes came from."""

    name: str
    path: Path
    hash: str
    kind: str  # canonical | mirror
    location: str  # the URL or folder the bytes came from


def cache_root(download_cfg: DictConfig | dict) -> Path:
    """The download cache: outside data/, so `dvc` never deletes it and re-runs cost nothing."""
    configured = os.environ.get(CACHE_ENV) or download_cfg.get("cache_dir")
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # what pooch.os_cache uses, without importing requests

    return Path(platformdirs.user_cache_dir("keras-pipeline"))


def mirror_location(mirror: str, dataset: str, file: str) -> str:
    """`<mirror>/<dataset>/<file>`, or the mirror's own {dataset}/{file} placeholders (only
    those two, replaced as text: validate.py refuses any other brace in a mirror)."""
    if "{" in mirror:
        return mirror.replace("{dataset}", dataset).replace("{file}", file)
    return f"{mirror.rstrip('/')}/{dataset}/{file}"


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def check_mirrors(download_cfg: DictConfig) -> None:
    """Before any work: a local mirror folder that doesn't exist is a typo, and the download
    cache must be a folder this user can write (checked here, not by `check`: a mirror
    drive that is unplugged must not stop a `dvc repro` that downloads nothing)."""
    from pipeline.errors import ConfigError

    for i, mirror in enumerate(download_cfg.mirrors):
        if is_url(mirror):
            continue
        folder = Path(mirror.split("{", 1)[0]).expanduser()
        if not folder.is_dir():
            raise ConfigError(key=f"download.mirrors[{i}]", problem=f"local mirror folder "
                              f"'{mirror}' does not exist", expected="an existing folder or an "
                              "http(s):// URL prefix", fix="correct the path, or mount the mirror")
    cache = cache_root(download_cfg)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe_file = cache / f".write-test.tmp-{os.getpid()}"
        probe_file.write_bytes(b"")
        probe_file.unlink()
    except OSError as err:
        where = (f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "download.cache_dir"
                 if download_cfg.get("cache_dir") else "the default cache folder")
        raise DataError(f"the download cache {cache} (from {where}) can't be written "
                        f"({err.strerror or err}). Fix: set download.cache_dir (or ${CACHE_ENV}) "
                        "to a folder you can write, or fix its permissions") from None


def fetch_file(
    dataset: str, spec: DictConfig, download_cfg: DictConfig, retries: int | None = None
) -> Fetched:
    """Return a verified copy of one source file, trying cache, mirrors, then canonical URL."""
    cache_dir = cache_root(download_cfg) / dataset
    cached = cache_dir / spec.name
    algorithm = spec.hash.partition(":")[0]
    origin_note = cached.with_name(cached.name + ".origin.json")
    if cached.is_file():
        if file_hash(cached, algorithm) == spec.hash:
            origin = _read_origin(origin_note) or {"kind": "canonical", "location": spec.url}
            return Fetched(spec.name, cached, spec.hash, origin["kind"], origin["location"])
        log.warning("%s: cached %s fails its checksum; fetching it again", dataset, cached)
        cached.unlink()
        origin_note.unlink(missing_ok=True)

    attempts = [("mirror", mirror_location(m, dataset, spec.name)) for m in download_cfg.mirrors]
    attempts.append(("canonical", spec.url))
    failures = []
    for kind, location in attempts:
        try:
            if is_url(location):
                _download(location, cached, spec.hash, download_cfg, dataset, retries)
            else:
                _copy_local(Path(location).expanduser(), cached, spec.hash, dataset)
        except SourceUnavailable as err:
            failures.append(f"{location} ({err})")
            if kind == "mirror":
                log.warning("%s: mirror unavailable for %s: %s (%s); trying the next source",
                            dataset, spec.name, location, err)
            continue
        _write_origin(origin_note, kind, location)
        return Fetched(spec.name, cached, spec.hash, kind, location)
    raise SourceUnavailable(f"{dataset}/{spec.name}: no source reachable: " + "; ".join(failures))


def _download(
    url: str, dest: Path, expected: str, download_cfg: DictConfig, dataset: str,
    retries: int | None,
) -> None:
    import pooch
    import requests

    retries = download_cfg.retries if retries is None else retries
    downloader = pooch.HTTPDownloader(progressbar=_show_progress(), timeout=download_cfg.timeout)
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)  # a killed download's partial file
    tmp = dest.with_name(temp_prefix(dest, "part") + "0")
    for attempt in range(retries + 1):
        try:
            downloader(url, str(tmp), None)
            _move_if_verified(tmp, dest, expected, dataset, url)
            return
        except requests.HTTPError as err:
            status = err.response.status_code if err.response is not None else 0
            if status < 500:  # 404, 403...: asking again won't help
                raise SourceUnavailable(f"HTTP {status}") from None
            reason = f"HTTP {status}"
        except requests.ConnectionError as err:
            if _is_name_resolution_error(err):
                raise SourceUnavailable("no network: host name does not resolve") from None
            reason = _short(err)
        except (requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            reason = _short(err)
        except requests.RequestException as err:  # a URL requests can't use: no retry
            raise SourceUnavailable(_short(err)) from None
        except ChecksumMismatch:
            if attempt == retries:
                raise
            reason = "checksum mismatch (possibly a truncated transfer)"
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        if attempt < retries:
            wait = min(2**attempt, 10)
            log.warning("%s: %s failed (%s); retrying in %ss (%d/%d)",
                        dataset, url, reason, wait, attempt + 1, retries)
            time.sleep(wait)
    raise SourceUnavailable(f"{reason}, after {retries + 1} attempts")


def _copy_local(source: Path, dest: Path, expected: str, dataset: str) -> None:
    if not source.is_file():
        raise SourceUnavailable("not in the mirror folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(dest)
    tmp = dest.with_name(temp_prefix(dest, "part") + "0")
    try:
        shutil.copyfile(source, tmp)
        _move_if_verified(tmp, dest, expected, dataset, str(source))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _move_if_verified(tmp: Path, dest: Path, expected: str, dataset: str, origin: str) -> None:
    actual = file_hash(tmp, expected.partition(":")[0])
    if actual != expected:
        raise ChecksumMismatch(
            f"{dataset}: checksum mismatch for {dest.name} from {origin}: expected {expected}, "
            f"got {actual}. The file was discarded. Fix: if upstream really changed, update "
            f"the hash in params.yaml (datasets.{dataset}.source.files); otherwise remove that "
            "source (mirror) or try again later"
        )
    os.replace(tmp, dest)


def _is_name_resolution_error(err: Exception) -> bool:
    text = repr(err)
    return "NameResolutionError" in text or "Name or service not known" in text or (
        "Temporary failure in name resolution" in text
    )


def _short(err: Exception) -> str:
    return type(err).__name__


def _show_progress() -> bool:
    """tqdm bars when a person watches; none in logs of CI runs."""
    import sys

    return sys.stderr.isatty()


def _read_origin(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_origin(path: Path, kind: str, location: str) -> None:
    from pipeline.files import write_json

    write_json(path, {"kind": kind, "location": location})


# --- the probe: is the real data reachable again? (the `check` stage asks, every run)


def _answers(url: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False


def real_data_reachable(name: str, ds: Mapping, download_cfg: Mapping) -> bool:
    """Can the first source file be had from the cache, a mirror, or its canonical URL?
    One HEAD request per URL (or a file lookup), at most 5 s each: this runs every time.
    A local copy (cache, mirror folder) counts only if it matches the pinned hash: another
    file of that name (another project's, a benchmark's) would rerun the download for
    nothing. Takes validated params or their plain dict (the `check` stage's fast path)."""
    first = ds["source"]["files"][0]

    def pinned(path: Path) -> bool:
        return path.is_file() and file_hash(path, first["hash"].partition(":")[0]) == \
            first["hash"]

    if pinned(cache_root(download_cfg) / name / first["name"]):
        return True
    timeout = min(float(download_cfg["timeout"]), 5.0)
    candidates = [mirror_location(m, name, first["name"]) for m in download_cfg["mirrors"]]
    for location in [*candidates, first["url"]]:
        if is_url(location) and _answers(location, timeout):
            return True
        if not is_url(location) and pinned(Path(location).expanduser()):
            return True
    return False


def probe(params: Mapping, data_dir: Path) -> dict[str, bool]:
    """{dataset: True} for each dataset on a stand-in whose real source now answers."""
    from pipeline.layout import UPSTREAM_KINDS, raw_dir, read_source

    status = {}
    for name, ds in params["datasets"].items():
        source = read_source(raw_dir(data_dir, name))  # None: not downloaded yet, runs anyway
        on_stand_in = source is not None and source.get("kind") not in UPSTREAM_KINDS
        status[name] = on_stand_in and real_data_reachable(name, ds, params["download"])
    return status
