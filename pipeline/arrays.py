"""Arrays on disk: the upstream formats (npz, pickled npz, idx-gz) read safely and
written deterministically (same arrays, same bytes, so DVC sees no change), and the
prepared-split format the stages exchange.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import BadFile
from pipeline.files import atomic_file

if TYPE_CHECKING:  # numpy/scipy load lazily: the download stage's no-op path needs neither
    import numpy as np
    import scipy.sparse as sp


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
