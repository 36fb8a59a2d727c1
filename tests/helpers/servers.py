"""Real servers for the tracking tests: a tiny prepared project, `mlflow server`/`ui`, and a
throw-away PostgreSQL cluster, each started on 127.0.0.1 and always stopped by PID.

Its own module, so only the tests that start servers import it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from helpers.net import free_port
from helpers.params import mirrored_params, small_models

BIN = Path(sys.executable).parent
IN_CI = bool(os.environ.get("CI"))
# The light server: one worker, no job runner; ~8 s to answer, ~0.5 GB (measured on 2 cores).
LIGHT = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def require(found: bool, what: str, install: str) -> None:
    """Skip locally, but FAIL in CI: there `.ci/run` installs it, so missing means broken."""
    if found:
        return
    message = f"{what} is not installed. Fix: {install}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/run should have installed it)", pytrace=False)
    pytest.skip(message)


def prepared_project(root: Path, datasets: tuple[str, ...], tracking_uri: str) -> dict[str, Any]:
    """The project's params shrunk to tiny data (a local mirror folder), `datasets` downloaded
    and prepared under root/data, models trained for 2 epochs (K-fold: 2 folds of 2),
    MLflow at `tracking_uri`."""
    from pipeline.config import compose
    from pipeline.download import download
    from pipeline.prepare import prepare

    raw = small_models(mirrored_params(root))
    raw["tracking"]["uri"] = tracking_uri
    params = compose(raw)
    data = root / "data"
    for name in datasets:
        download(name, params, data / name / "raw")
        prepare(name, params, data)
    return {"root": root, "raw": raw, "params": params, "data": data}


def run_stages(project: dict[str, Any], dataset: str, model: str) -> dict[str, Any]:
    """baseline@dataset, train@model, evaluate@model: the real stage functions, in-process."""
    from pipeline.baseline import baseline
    from pipeline.evaluate import evaluate
    from pipeline.train import train

    params, data, root = project["params"], project["data"], project["root"]
    baseline_metrics = baseline(dataset, params, data, root / "results" / dataset / "baseline")
    summary = train(model, params, data, root / "models" / model)
    metrics = evaluate(model, params, data, root / "models", root / "results" / dataset / model)
    return {"baseline": baseline_metrics, "summary": summary, "metrics": metrics}


def wait_http(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> float:
    """Poll `url` until it answers 200; fail with the server's log if it dies or hangs."""
    started = time.monotonic()
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        if process.poll() is not None:
            pytest.fail(f"{url}: the server exited ({process.returncode}):\n{tail}")
        if time.monotonic() - started > timeout:
            pytest.fail(f"{url}: no answer after {timeout:.0f}s:\n{tail}")
        time.sleep(0.5)


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the server's process group (it was started in its own session), then wait;
    SIGKILL only if it ignores that."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    else:  # the leader is gone; its workers may not be
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


@dataclass
class MlflowServer:
    url: str
    process: subprocess.Popen
    log: Path
    command: str

    def ready(self) -> str:
        """Wait until it answers (it starts in the background meanwhile); returns its URL."""
        seconds = wait_http(f"{self.url}/health", self.process, self.log)
        print(f"mlflow {self.command} answered at {self.url} (pid {self.process.pid}), "
              f"{seconds:.1f}s after we started waiting")
        return self.url


@contextlib.contextmanager
def mlflow_server(command: str, backend: str, workdir: Path,
                  *extra: str) -> Iterator[MlflowServer]:
    """`mlflow <command>` (server or ui), light, on 127.0.0.1 at a free port, in a session
    of its own; stopped by its PID (the whole process group) on the way out."""
    port = free_port()
    log = workdir / f"mlflow-{command}-{port}.log"
    args = [str(BIN / "mlflow"), command, "--backend-store-uri", backend, "--host",
            "127.0.0.1", "--port", str(port), "--workers", "1", *extra]
    env = {**os.environ, **LIGHT, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with log.open("wb") as out:
        process = subprocess.Popen(args, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield MlflowServer(f"http://127.0.0.1:{port}", process, log, command)
    finally:
        started = time.monotonic()
        stop(process)
        print(f"mlflow {command} stopped in {time.monotonic() - started:.1f}s")


def warm_up() -> None:
    """Import what the stages need while a server starts: the two overlap."""
    import keras  # noqa: F401
    import mlflow.keras
    import mlflow.sklearn  # noqa: F401


# --- PostgreSQL ----------------------------------------------------------------------


def postgres_bin() -> Path | None:
    """Debian installs the server outside PATH: /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                        else 0)
    return candidates[-1].parent if candidates else None


@dataclass
class Postgres:
    port: int
    dir: Path
    user: str = "postgres"

    def url(self, database: str) -> str:
        # psycopg2 named explicitly: SQLAlchemy 2.1's plain postgresql:// means psycopg 3.
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.user,
                                dbname=database, connect_timeout=10)

    def create_database(self, name: str) -> None:
        connection = self.connect()
        try:
            connection.autocommit = True  # CREATE DATABASE can't run in a transaction
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """initdb a cluster in a temp dir, serve it on 127.0.0.1 (socket in that dir), and
    `pg_ctl stop` it afterwards, whatever happened. PostgreSQL refuses to run as root, so
    as root everything runs as the `postgres` user, in a directory it owns."""
    bindir = postgres_bin()
    require(bindir is not None, "PostgreSQL (initdb, pg_ctl)",
            "apt-get install -y --no-install-recommends postgresql")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pg-test-"))  # /tmp: reachable by another user
    if os.geteuid() == 0:
        require(shutil.which("runuser") is not None, "runuser", "apt-get install util-linux")
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, but there is no `postgres` user to run PostgreSQL "
                        "as. Fix: apt-get install postgresql (it creates the user)",
                        pytrace=False)
        os.chown(base, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, log, port = base / "data", base / "postgres.log", free_port()

    def run(*args: str) -> None:
        result = subprocess.run([*as_user, *args], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=120)
        if result.returncode != 0:
            server_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}"
                        f"{server_log}", pytrace=False)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
            "-w", "-t", "60", "start")
        yield Postgres(port=port, dir=base)
    finally:
        if (data / "postmaster.pid").exists():  # running, or half-started: stop it either way
            subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                            "-w", "stop"], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        shutil.rmtree(base, ignore_errors=True)
