"""One clear line per step, loud banners for data not proven real, one-line errors.

Every stage's and command's `main()` runs through `run_stage`, which sets up logging
and ends every failure in a single `ERROR ...` line: the project's own errors with
where the setting came from and the fix; anything unexpected as a bug report line.
`PIPELINE_DEBUG=1` adds the traceback, for developers. SIGTERM (what DVC, CI runners
and `kill` send) is handled like Ctrl-C, so runs and temp files are closed properly.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import importlib.abc
import importlib.machinery
import logging
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pipeline.errors import ConfigError, PipelineError, error_line
from pipeline.files import HOST, process_gone
from pipeline.layout import data_label, data_tier

QUIET_ENV = {
    # Libraries' noise off before they are imported (each measured on this stack):
    "TF_CPP_MIN_LOG_LEVEL": "3",  # 1 silences import chatter; 3 also tf.data's bogus E-lines
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    # environment-export chatter on every log_model, and the SQL behind a store's error (the
    # stage's own one-line error says what happened)
    "MLFLOW_LOGGING_LEVEL": "CRITICAL",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run at" lines on a server
}
DEBUG_ENV = "PIPELINE_DEBUG"  # "1": show the traceback behind an error line



def setup_logging() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("pooch").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "setup plugin ..." (optuna)
    # A store going away mid-run: urllib3 prints each retry and MLflow the SQL behind an
    # error; the stage's own one-line error says what happened and what to do.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # "N out of the last N calls ... triggered tf.function retracing": every check's dry run
    # and every trial builds a new model, which is what retracing means here
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def source_banner(dataset: str, source: dict) -> str | None:
    """What a stage says about its data, in layout.py's words: nothing for the real dataset
    (bundled arrays proven identical included), one line for a real subset (its size), and
    a box nobody can miss for data not proven real; only synthetic data is called NOT real."""
    tier, label = data_tier(source), data_label(source)
    proof = source.get("proof", {})
    if tier == "real":
        return None
    if tier == "subset":
        return (f"{dataset}: data is a {label}: {proof.get('origin', source.get('detail', '?'))}"
                "; smaller than the full dataset, so its figures don't compare with published "
                "ones")
    if tier == "synthetic":
        lines = [f"{dataset}: using {label} data: NOT the real dataset",
                 f"from: {source.get('detail', '?')}", f"why: {source.get('reason', '?')}",
                 "Metrics on it are NOT comparable with published results."]
    else:
        lines = [f"{dataset}: using {label} data: NOT proven to be the real dataset",
                 f"from: {source.get('detail', '?')}", f"why: {source.get('reason', '?')}"]
        if "expected_arrays_sha256" in proof:
            lines.append(f"its arrays' sha256 {proof['arrays_sha256']} differs from that of "
                         f"{proof['identical_to']['file']}: {proof['expected_arrays_sha256']}")
        elif "why" in proof:
            lines.append(f"unproven: {proof['why']}")
        lines.append("Metrics on it may not compare with published results.")
    lines.append("The next `dvc repro` with network (or a mirror) switches to the real data.")
    lines = [part for line in lines for part in textwrap.wrap(line, 84)]
    width = max(len(line) for line in lines) + 4
    bar = "!" * width
    body = "\n".join(f"! {line.ljust(width - 4)} !" for line in lines)
    return f"{bar}\n{body}\n{bar}"


class Interrupted(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: cleanup code runs, MLflow runs end KILLED."""


_received: list[str] = []  # the signals that stopped this process
_stopping = False  # the stop has been raised: the cleanup it started is running
_held = 0  # depth of `held_stop()` blocks


def _raise_stop(name: str) -> None:
    global _stopping
    _stopping = True
    if name == "SIGINT":
        raise KeyboardInterrupt
    raise Interrupted(name)


def _on_stop_signal(signum: int, frame: object) -> None:
    """The first stop is raised in the main thread; later ones are only noted. A stop often
    comes twice (DVC killed: the parent-death signal, then this process's own watcher; or a
    group kill), and a second raise cut the cleanup short mid-transaction: the run stayed
    RUNNING, the store locked for 20-40 s at exit. SIGKILL stays the hard stop."""
    _received.append(signal.Signals(signum).name)
    if not _stopping and not _held:
        _raise_stop(_received[0])


def handle_sigterm() -> None:
    """SIGTERM raises Interrupted (a KeyboardInterrupt): cleanup runs, runs end KILLED.
    Both it and Ctrl-C are remembered, because a library may turn the exception it raised
    into another error on its way out (TensorFlow does) and a stop is never a failure."""
    signal.signal(signal.SIGTERM, _on_stop_signal)
    signal.signal(signal.SIGINT, _on_stop_signal)


@contextlib.contextmanager
def held_stop() -> Iterator[None]:
    """A block a stop must not cut in half (a tracking-store write: SQLite would keep its
    lock): a SIGTERM or Ctrl-C that arrives inside is raised when the block ends."""
    global _held
    if threading.current_thread() is not threading.main_thread():  # signals go to main
        yield
        return
    _held += 1
    try:
        yield
    finally:  # also past the block's own error: a stop outranks a store that failed
        _held -= 1
        if _received and not _stopping and not _held:
            _raise_stop(_received[0])


def interrupted(err: BaseException | None = None) -> str | None:
    """What stopped this process ("SIGTERM", "SIGINT"), if a signal or `err` did: the first
    signal (the one raised; later ones only arrived during its cleanup)."""
    if _received:
        return _received[0]
    return "SIGINT" if isinstance(err, KeyboardInterrupt) else None


def die_with_parent(beyond: str | None = None) -> None:
    """Be stopped (SIGTERM, then handled like Ctrl-C) when the process that started this one
    dies (DVC killed by `kill`, a sweep's main process killed under its workers), so an
    orphan never goes on training and writing outputs nobody will record.

    `beyond`: an environment variable set for this process by its starter, so the shells
    in between are passed over: DVC runs a stage through `$SHELL -c`, and dash (`/bin/sh`
    where SHELL is unset) forks instead of exec'ing, so the stage's parent is a shell that
    outlives a killed DVC. The starter is watched by a daemon thread (any POSIX system);
    on Linux the parent's death also signals at once (PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    starter = _starter(beyond)
    if process_gone(HOST, starter) or os.getppid() == 1:  # it died before we looked
        raise Interrupted("SIGTERM (the process that started it is gone)")
    threading.Thread(target=_watch, args=(starter,), name="die-with-parent",
                     daemon=True).start()


def _starter(beyond: str | None) -> int:
    """The nearest ancestor whose environment lacks `beyond` (its parent if None, or where
    /proc can't tell: macOS)."""
    pid = os.getppid()
    mark = f"{beyond}=".encode() if beyond else None
    for _ in range(8):  # `uv run`, shells: never more than a few levels
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            return pid
        if mark is None or not any(v.startswith(mark) for v in environ.split(b"\0")):
            return pid
        if parent <= 1:
            return pid
        pid = parent
    return pid


def _watch(pid: int, every: float = 0.5) -> None:
    while not process_gone(HOST, pid):
        time.sleep(every)
    os.kill(os.getpid(), signal.SIGTERM)  # the main thread's handler stops the work


# Keras imports scikit-learn and matplotlib.pyplot as it loads, for its scikit-learn
# wrappers and image-gallery plots, which the pipeline never uses: `import keras` took
# 4.8-5.8 s with them, 3.8 s without, under load here. The pipeline's own scoring and
# plots import them where they run (evaluate), after Keras.
KERAS_EXTRAS = ("sklearn", "matplotlib")


class _KerasLoader(importlib.abc.Loader):
    """Keras' own loader, run while its optional extras can't be imported (Keras guards
    each, and leaves that feature out); afterwards they import as usual."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        blocked = [name for name in KERAS_EXTRAS if name not in sys.modules]
        sys.modules.update(dict.fromkeys(blocked))  # None: `import name` raises ImportError
        try:
            self.loader.exec_module(module)
        finally:
            for name in blocked:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]

    def __getattr__(self, name: str):  # resources, file names: the real loader's
        return getattr(self.loader, name)


class _KerasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path, target=None) -> importlib.machinery.ModuleSpec | None:
        if name != "keras":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _KerasLoader(spec.loader)
        return spec


def keras_without_extras() -> None:
    """This process's first `import keras` (TensorFlow's too: it imports Keras) loads Keras
    without KERAS_EXTRAS. Called by run_stage, and by the sweep's workers."""
    if "keras" not in sys.modules and not any(isinstance(f, _KerasFinder)
                                              for f in sys.meta_path):
        sys.meta_path.insert(0, _KerasFinder())


def lighter_gc() -> None:
    """Collect garbage as a process that imports TensorFlow, MLflow and scikit-learn should:
    full collections rarely, none at exit. Called by run_stage, and by the sweep's workers
    (a loky worker never runs through run_stage; a 12-trial sweep waited ~2 s at its end
    for its workers' teardown collecting those imports' objects)."""
    # Exit handlers run last-registered first, so this one runs after all the others (MLflow
    # ending its runs, logging's flush): with TensorFlow, MLflow and scikit-learn imported,
    # the interpreter's teardown then spent 2.5-2.7 s collecting their objects before the
    # process could end (measured after a small fit), 0.2 s with them frozen.
    atexit.register(gc.freeze)
    # Full collections (a pass over every object) rarely: importing TensorFlow, MLflow and
    # scikit-learn builds millions of long-lived objects, and the default thresholds walked
    # them again and again: those imports took 7.4 s instead of 10.0 s here (medians of 4).
    # Young garbage is still collected as usual.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1000)


def run_stage(main: Callable[[], None], params: Path | str | None = None) -> None:
    """Run a stage's or command's main(); every failure becomes one ERROR line.

    `params`: the params file it read, so a setting's error names its line there."""
    from pipeline.params_file import where

    setup_logging()
    handle_sigterm()
    keras_without_extras()
    lighter_gc()
    log = logging.getLogger("pipeline")
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        if os.environ.get("DVC_STAGE"):  # run by `dvc repro`: die with it
            die_with_parent(beyond="DVC_STAGE")
        main()
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        if isinstance(err, KeyboardInterrupt) or interrupted():  # whatever it became
            why = err if isinstance(err, Interrupted) else interrupted(err)
            log.error("ERROR stopped by %s; nothing half-done was kept. Fix: rerun the same "
                      "command", why, exc_info=debug)
            sys.exit(130)
        if isinstance(err, PipelineError):
            if isinstance(err, ConfigError) and err.key:
                err.located(where(params, err.key) if params else None)
            log.error("ERROR %s", error_line(err), exc_info=debug)
            sys.exit(1)
        stage = os.environ.get("DVC_STAGE") or Path(sys.argv[0]).stem
        log.error("ERROR %s: unexpected %s: %s. This is a bug in the pipeline. Fix: rerun with "
                  "%s=1 to see the traceback, and report it", stage, type(err).__name__,
                  error_line(err)[:300], DEBUG_ENV, exc_info=debug)
        sys.exit(1)
