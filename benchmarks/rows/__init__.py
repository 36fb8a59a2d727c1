"""The table's rows: one module per row, and ROWS, the names `--only` selects.

A name maps to the builders that make its lines, run in this order; each takes the
Suite (workspace, params, shared paired full runs) and returns Rows. To add a row:
a module here with a `build(suite) -> list[Row]`, and its name in ROWS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from benchmarks.rows import (
    accuracy,
    edit_model,
    imdb_bytes,
    memory,
    noop,
    param_change,
    sweeps,
    throughput,
    timing,
)

if TYPE_CHECKING:
    from benchmarks.render import Row
    from benchmarks.suite import Suite

Builder = Callable[["Suite"], list["Row"]]

ROWS: dict[str, tuple[Builder, ...]] = {
    "accuracy": (accuracy.build,),
    "time": (timing.build, param_change.build),
    "noop": (noop.build,),
    "edit": (edit_model.build,),
    "memory": (memory.build, imdb_bytes.build),
    "throughput": (throughput.build,),
    "sweeps": (sweeps.build,),
}
