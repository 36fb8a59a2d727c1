"""File formats and safe writes shared by the stages.

Everything here is about bytes on disk: atomic outputs (a failed stage never
leaves a file that looks complete), checksums, the upstream formats (npz,
pickled npz, idx-gz) read safely and written deterministically (same arrays,
same bytes, so DVC sees no change), and the prepared-split format.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import pickle
import re
import shutil
import socket
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import DataError

if TYPE_CHECKING:  # numpy/scipy load lazily: the download stage's no-op path needs neither
    import numpy as np
    import scipy.sparse as sp


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


class BadFile(DataError):
    """A file that isn't what its format says. The reader can't know where the bytes came
    from, so the caller adds the fix (fetching a file again helps only if it changes)."""


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


# --- npz (safe read, deterministic write)

# An object array (ragged int sequences, as in imdb.npz and reuters.npz) can only be
# stored as a pickle. Rebuilding one needs exactly these globals; anything else in the
# stream (os.system, eval, ...) is refused, so a tampered file cannot run code.
_NUMPY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_npy(raw: bytes) -> np.ndarray:
    import numpy as np

    buffer = io.BytesIO(raw)
    version = np.lib.format.read_magic(buffer)
    read_header = (
        np.lib.format.read_array_header_1_0 if version == (1, 0)
        else np.lib.format.read_array_header_2_0  # 3.0 differs only in the header's encoding
    )
    shape, _, dtype = read_header(buffer)
    if not dtype.hasobject:
        buffer.seek(0)
        return np.lib.format.read_array(buffer, allow_pickle=False)
    array = _NumpyOnlyUnpickler(buffer).load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise pickle.UnpicklingError("the pickled member is not the array its header declares")
    return array


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an npz; object arrays through the numpy-only unpickler."""
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if member.endswith(".npy"):
                    arrays[member[: -len(".npy")]] = _read_npy(archive.read(member))
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, pickle.UnpicklingError) as err:
        raise BadFile(
            f"{path}: not a valid npz file ({err})") from None
    return arrays


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """np.savez, but byte-for-byte reproducible (fixed zip timestamps) and atomic."""
    import numpy as np

    with atomic_file(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            value = np.asanyarray(value)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=value.dtype.hasobject)


# --- idx-gz (LeCun's MNIST format)

_IDX_UINT8 = 0x08


def read_idx_gz(path: Path) -> np.ndarray:
    """Parse a gzipped idx file, checking its header against its length."""
    import numpy as np

    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise BadFile(
            f"{path}: corrupt or truncated gzip ({err})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _IDX_UINT8:
        raise BadFile(f"{path}: not an idx file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise BadFile(
            f"{path}: idx header declares shape {shape} ({expected} bytes) but the file holds "
            f"{len(raw)} bytes")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write uint8 data as idx inside a reproducible gzip (mtime 0, no file name)."""
    import numpy as np

    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _IDX_UINT8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    with atomic_file(path) as fh, gzip.GzipFile(fileobj=fh, mode="wb", filename="", mtime=0) as gz:
        gz.write(header)
        gz.write(array.tobytes())


# --- prepared splits


def save_split(path: Path, x: np.ndarray | sp.csr_matrix, y: np.ndarray) -> None:
    """One split = one npz: `y` plus either a dense `x` or the CSR parts of a sparse one."""
    import numpy as np
    import scipy.sparse as sp

    if sp.issparse(x):
        x = sp.csr_matrix(x)
        arrays = {
            "x_data": x.data,
            "x_indices": x.indices,
            "x_indptr": x.indptr,
            "x_shape": np.array(x.shape, dtype=np.int64),
        }
    else:
        arrays = {"x": x}
    write_npz(path, {**arrays, "y": y})


def load_split(path: Path) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray]:
    """Inverse of save_split; never unpickles."""
    import numpy as np
    import scipy.sparse as sp

    with np.load(path, allow_pickle=False) as f:
        if "x" in f:
            return f["x"], f["y"]
        x = sp.csr_matrix((f["x_data"], f["x_indices"], f["x_indptr"]), shape=tuple(f["x_shape"]))
        return x, f["y"]


def dense(x):
    """A split's features as a dense array (sparse CSR is expanded)."""
    import numpy as np

    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)
