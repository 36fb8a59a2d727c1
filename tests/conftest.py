"""Fixtures and hooks only; the helpers they use live in tests/helpers/ (tests import those
modules, never this file or each other).

Upstream-format files are made by helpers/upstream.py and served over HTTP on 127.0.0.1 by
helpers/net.py, a server that misbehaves on purpose, so the real download code runs against
every failure the issue lists.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import net
from helpers.real_datasets import RealDatasets
from helpers.upstream import make_upstream_files

if TYPE_CHECKING:
    from collections.abc import Iterator

    from helpers.project import BuiltProject


def pytest_configure(config: pytest.Config) -> None:
    """Libraries' noise and phoning home off, unless the caller set these: here, not at import
    time, and still before any test module imports TensorFlow, MLflow or DVC (collection
    comes after this hook)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


# Modules by their summed test time (`pytest --durations=0`), longest first: xdist's
# loadscope hands out whole modules in this order (pyproject.toml turns off its own reorder,
# by number of tests), each worker taking the next as it nears the end of its last, so one
# long module left to the end doesn't run alone while the other worker sits idle. The
# shared built project's first user comes first: the modules that read it start after it
# is built, not waiting for it (test_dag waited 30-36 s when it came early).
LONGEST_FIRST = ("test_trust", "test_sweeps", "test_training", "test_dvc_pipeline",
                 "test_preflight", "test_sharing", "test_mlflow_ui", "test_config",
                 "test_download", "test_seed_study", "test_mlflow_record", "test_dag",
                 "test_team_server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    renamed = [name for name in LONGEST_FIRST if not (here / f"{name}.py").is_file()]
    if renamed:  # else the order would quietly stop applying to them
        raise pytest.UsageError(f"tests/conftest.py: LONGEST_FIRST names {', '.join(renamed)}, "
                                "no such test module. Fix: rename or drop it there")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: else as is


@pytest.fixture
def file_server() -> Iterator[net.FileServer]:
    """An HTTP server on 127.0.0.1 serving `files`, misbehaving per `mode` (helpers/net.py)."""
    with net.file_server() as server:
        yield server


@pytest.fixture
def upstream_files() -> dict[str, dict[str, bytes]]:
    return make_upstream_files()


@pytest.fixture
def real_datasets() -> RealDatasets:
    """Real upstream files from the folder REAL_DATASETS_DIR names; `real_datasets.file(...)`
    skips the test, naming the variable, where it is unset or lacks the file."""
    return RealDatasets.from_env()


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> BuiltProject:
    """A tiny project after a full `dvc repro`, shared by the DVC tests (read-only; tests
    that change anything work on `built_project.copy(...)`); built once per run, whichever
    pytest-xdist worker asks first (helpers/shared.py)."""
    from helpers.project import BuiltProject, build_project
    from helpers.shared import once

    record = once(tmp_path_factory, "built", lambda root: build_project(root).record())
    return BuiltProject.from_record(record)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every dataset downloaded (from a local mirror folder) and prepared, tiny, and an
    empty MLflow store, for the tests that call the stages' functions in-process."""
    from helpers.params import mirrored_params, small_models

    from pipeline.config import compose
    from pipeline.download import download
    from pipeline.prepare import prepare

    root = tmp_path_factory.mktemp("training")
    raw = small_models(mirrored_params(root))
    raw["tracking"]["uri"] = f"sqlite:///{root / 'mlflow.db'}"
    params = compose(raw)
    data = root / "data"
    for name in params.datasets:
        download(name, params, data / name / "raw")
        prepare(name, params, data)
    return {"root": root, "raw": raw, "params": params, "data": data}
