"""Real upstream dataset files, for the tests that compare against them (test_real_files.py).

Nothing in the repository ships them. Point the environment variable REAL_DATASETS_DIR at a
folder laid out as `<dataset>/<upstream file name>` (e.g. `mnist/t10k-labels-idx1-ubyte.gz`,
`boston_housing/boston_housing.npz`), optionally with a `SHA256SUMS` file (`sha256sum`
output, paths relative to the folder). A test that needs a file the folder lacks, or runs
without the variable, skips with a message naming the variable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

ENV = "REAL_DATASETS_DIR"


@dataclass(frozen=True)
class RealDatasets:
    """The folder REAL_DATASETS_DIR names (None where unset); `file()` finds a file in it."""

    root: Path | None

    @classmethod
    def from_env(cls) -> RealDatasets:
        value = os.environ.get(ENV, "").strip()
        return cls(Path(value).expanduser() if value else None)

    def file(self, *parts: str) -> Path:
        """root/<parts...>, or skip the test: the variable is unset or the file isn't there."""
        if self.root is None:
            pytest.skip(f"{ENV} is not set: point it at a folder of real upstream files "
                        f"(<dataset>/<file name>, SHA256SUMS) to run this test")
        path = self.root.joinpath(*parts)
        if not path.is_file():
            pytest.skip(f"{ENV}={self.root} has no {'/'.join(parts)}")
        return path
