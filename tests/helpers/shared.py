"""Session fixtures built once per test run, also when pytest-xdist runs the tests in two
worker processes (pyproject.toml's addopts): the first worker to ask builds it under a file
lock in the run's shared temp folder, the others wait and reuse it (pytest-xdist's "Making
session-scoped fixtures execute only once")."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock


def once(tmp_path_factory: pytest.TempPathFactory, name: str,
         build: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """`build(root)` in a new folder, once per run; every worker gets the JSON-able record
    it returned. Without xdist (`-n 0`, or one worker) it simply builds."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's
    record, failed = shared / f"{name}.json", shared / f"{name}.failed"
    with FileLock(str(shared / f"{name}.lock")):
        if failed.is_file():  # don't pay for a failing build twice: its error is reported
            pytest.fail(f"building the shared {name} failed in another worker: "
                        f"{failed.read_text()}", pytrace=False)
        if not record.is_file():
            root = shared / name
            root.mkdir()
            try:
                built = build(root)
            except BaseException as error:
                failed.write_text(f"{type(error).__name__}: {error}"[:2000])
                raise
            record.write_text(json.dumps(built))
    return json.loads(record.read_text())
