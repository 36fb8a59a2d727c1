"""Records every file a stage process opens inside its DVC project (tests/test_dag.py).

Put on PYTHONPATH with PIPELINE_AUDIT_DIR set: each process appends the project-relative
paths it opened (files read, folders listed) to <dir>/<DVC_STAGE>.<pid>.txt at exit.
Python's own audit events ("open", "os.listdir", "os.scandir") see every open() and
np.load(), zipfile and json reads included.
"""

import atexit
import os
import sys

_DIR = os.environ.get("PIPELINE_AUDIT_DIR")
_ROOT = os.environ.get("DVC_ROOT")
_STAGE = os.environ.get("DVC_STAGE")

if _DIR and _ROOT and _STAGE:
    _root = os.path.realpath(_ROOT) + os.sep
    _seen: set[str] = set()

    def _record(path) -> None:
        if isinstance(path, int) or path is None:
            return
        try:
            full = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return
        if full.startswith(_root):
            _seen.add(full[len(_root):])

    def _hook(event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if mode is None:  # os.open: read-only unless the flags say otherwise
                reading = not (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            else:
                reading = not any(c in str(mode) for c in "wax+")
            if reading:
                _record(path)
        elif event in ("os.listdir", "os.scandir"):
            _record(args[0] if args[0] is not None else ".")

    def _write() -> None:
        name = _STAGE.replace("/", "_")
        with open(os.path.join(_DIR, f"{name}.{os.getpid()}.txt"), "a") as out:
            out.write("\n".join(sorted(_seen)) + "\n")

    sys.addaudithook(_hook)
    atexit.register(_write)
