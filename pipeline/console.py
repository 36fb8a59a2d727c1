"""One clear line per step, loud banners for stand-in data, one-line errors.

Every stage's `main()` runs through `run_stage`, which sets up logging and
turns the project's expected errors (bad params, bad data) into a single
`ERROR ...` line and exit code 1 instead of a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import Callable

from pipeline.errors import ConfigError, DataError

QUIET_ENV = {
    # Libraries' noise off before they are imported (see ../shared/STACK.md).
    "TF_CPP_MIN_LOG_LEVEL": "3",  # 1 silences import chatter; 3 also tf.data's bogus E-lines
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # environment-export chatter on every log_model
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # "View run at" lines on a server
}

REAL_SOURCES = ("canonical", "mirror")


def setup_logging() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr, force=True)
    logging.getLogger("pooch").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # "setup plugin ..." (optuna)


def source_banner(dataset: str, source: dict) -> str | None:
    """A box nobody can miss when the data is not the real, canonical dataset."""
    kind = source.get("kind", "unknown")
    if kind in REAL_SOURCES:
        return None
    what = {
        "bundled": "BUNDLED data shipped by a package (real, but maybe a subset)",
        "generated": "GENERATED stand-in data (synthetic, NOT the real dataset)",
    }.get(kind, f"data of unknown origin ({kind})")
    lines = [
        f"{dataset}: using {what}",
        f"from: {source.get('detail', '?')}",
        f"why: {source.get('reason', '?')}",
        "Metrics on it are NOT comparable with published results.",
        "The next `dvc repro` with network (or a mirror) switches to the real data.",
    ]
    lines = [part for line in lines for part in textwrap.wrap(line, 84)]
    width = max(len(line) for line in lines) + 4
    bar = "!" * width
    body = "\n".join(f"! {line.ljust(width - 4)} !" for line in lines)
    return f"{bar}\n{body}\n{bar}"


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main(); expected failures become one ERROR line and exit code 1."""
    setup_logging()
    try:
        main()
    except (ConfigError, DataError) as err:
        logging.getLogger("pipeline").error("ERROR %s", err)
        sys.exit(1)
    except KeyboardInterrupt:
        logging.getLogger("pipeline").error("ERROR interrupted; no partial output was kept")
        sys.exit(130)
