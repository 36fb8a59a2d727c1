"""Safe writes shared by the stages: atomic outputs (a failed stage never leaves a file
that looks complete), the cleanup of what a killed run left behind, and checksums.
Array formats on disk: pipeline/arrays.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import DataError

if TYPE_CHECKING:  # numpy/scipy load lazily: the download stage's no-op path needs neither
    pass


# --- atomic outputs, and what a killed run left behind

# Temp files and folders are named `.<final name>.<kind>-<host>-<pid>-<random>` beside what
# they become: renamed into place only when complete, and removed by the next writer of the
# same output once the process that made them is gone (killed, crashed). .gitignore and
# .dvcignore hide the pattern.
TEMP_KINDS = ("tmp", "part", "old")
HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname()) or "host"
STALE_ELSEWHERE = 24 * 3600  # seconds before another machine's leftovers (a shared cache) go


def temp_prefix(final: Path, kind: str) -> str:
    return f".{Path(final).name}.{kind}-{HOST}-{os.getpid()}-"


def process_gone(host: str, pid: int) -> bool:
    """True if the process `pid` of this machine no longer exists. A process of another
    machine (a shared folder or tracking server) can't be seen: never called gone."""
    if host != HOST or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that exited but was never reaped (its parent died, and a container's init
    may never reap it) still answers `kill(pid, 0)`; Linux shows it as state Z or X."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc (macOS), or it just went
        return False
    return stat.rpartition(")")[2].split()[:1] in (["Z"], ["X"])


def clean_stale(final: Path) -> list[Path]:
    """Remove the temp files a killed or crashed writer of `final` left beside it."""
    final = Path(final)
    pattern = re.compile(rf"\.{re.escape(final.name)}\.({'|'.join(TEMP_KINDS)})-(.+)-(\d+)-.*")
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # nothing beside it
        for path in final.parent.iterdir():
            match = pattern.fullmatch(path.name)
            if not match:
                continue
            host, pid = match.group(2), int(match.group(3))
            with contextlib.suppress(FileNotFoundError):
                if process_gone(host, pid) or (
                        host != HOST and time.time() - path.lstat().st_mtime > STALE_ELSEWHERE):
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path, ignore_errors=True)
                    else:
                        path.unlink()
                    removed.append(path)
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a directory beside `final` and swap it in only when the block succeeds."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(final, "tmp"), dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
    try:
        yield tmp
        replace_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(source: Path, final: Path) -> None:
    """Move the folder `source` to `final`, replacing what is there; at every instant one of
    the two complete folders is in place or beside it (no half-deleted output)."""
    old = None
    if final.exists():
        old = final.with_name(temp_prefix(final, "old") + "0")
        os.replace(final, old)
    os.replace(source, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(final: Path, mode: str = "wb") -> Iterator[Any]:
    """Open a temp file beside `final`; rename it into place only after a clean close."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(final)
    fd, tmp = tempfile.mkstemp(prefix=temp_prefix(final, "tmp"), dir=final.parent)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would outlive the rename
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path, "w") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")


# --- checksums


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    """`algorithm:hexdigest` of a file, in the form params.yaml uses."""
    import pooch  # imported here: pooch pulls in requests, which most callers don't need

    return f"{algorithm}:{pooch.file_hash(str(path), alg=algorithm)}"


def verify_file(path: Path, expected: str, what: str) -> None:
    """Refuse a file whose checksum differs from `expected` ("sha256:<hex>")."""
    algorithm = expected.partition(":")[0]
    if not Path(path).is_file():
        raise DataError(f"{what}: {path} is missing. Fix: run `dvc repro` to download it again")
    actual = file_hash(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{what}: checksum mismatch for {path}: expected {expected}, got {actual}. "
            "Fix: delete the file and run `dvc repro` to fetch it again"
        )
