"""Put on PYTHONPATH by the benchmark suite: every Python process it starts (dvc, each
stage, each books' script) appends one JSON line to $BENCH_PROC_LOG when it exits.

Why: per-stage peak RSS and wall time of the real `dvc repro`, without running any stage
a second time under a wrapper. Costs one `getrusage` and one append at exit.
"""

import os

if os.environ.get("BENCH_PROC_LOG"):
    import atexit
    import json
    import resource
    import sys
    import time

    _STARTED = time.time()

    def _record() -> None:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # e.g. joblib workers
        record = {
            "argv": sys.argv,
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "start": _STARTED,
            "seconds": time.time() - _STARTED,
            "maxrss_kb": own,
            "children_maxrss_kb": children,
            "imported": [m for m in ("tensorflow", "mlflow", "sklearn", "matplotlib", "dvc")
                         if m in sys.modules],
        }
        line = (json.dumps(record) + "\n").encode()
        fd = os.open(os.environ["BENCH_PROC_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one O_APPEND write: lines of concurrent processes never mix
        finally:
            os.close(fd)

    atexit.register(_record)  # registered first, so it runs last (after joblib's shutdown)
