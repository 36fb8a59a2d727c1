"""The command line of every stage and command, decided once:

    python -m pipeline.<command> [<dataset or model>] [--params FILE] [--data-dir DIR] ...

Same argument names, defaults and help everywhere, and every command runs through
`console.run_stage`, so any failure ends in one `ERROR ...` line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from pipeline.config import PARAMS_FILE
from pipeline.console import run_stage
from pipeline.layout import DATA, MODELS, RESULTS

TARGETS = {
    "dataset": "a dataset name under `datasets:` in params.yaml",
    "model": "a model name under `models:` in params.yaml",
}
FOLDERS = {
    "data": (DATA, "the root of data/<dataset>/{raw,prepared}"),
    "models": (MODELS, "the root of models/<model>"),
    "results": (RESULTS, "the root of results/<dataset>/<model>"),
}


def count(text: str) -> int:
    """An argparse type: a whole number >= 1 (refused at parse time, with the usage)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1, e.g. 5")
    return value


def command(module: str, description: str, target: str | None = None,
            folders: Sequence[str] = ("data",), out: str | None = None) -> argparse.ArgumentParser:
    """The parser of `python -m <module>`: its target (`dataset` or `model`), `--params`,
    a `--<folder>-dir` for each of `folders`, and `--out-dir` when `out` says its default."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=description)
    if target is not None:
        parser.add_argument(target, help=TARGETS[target])
    parser.add_argument("--params", type=Path, default=PARAMS_FILE,
                        help="the params file to read (default: params.yaml)")
    for folder in folders:
        default, meaning = FOLDERS[folder]
        parser.add_argument(f"--{folder}-dir", type=Path, default=default,
                            help=f"{meaning} (default: {default})")
    if out is not None:
        parser.add_argument("--out-dir", type=Path, default=None, help=f"default: {out}")
    return parser


def run(parser: argparse.ArgumentParser, argv: list[str] | None,
        action: Callable[[argparse.Namespace], None]) -> None:
    """Parse `argv` and run `action(args)`; a setting's error names its line in --params."""
    args = parser.parse_args(argv)
    run_stage(lambda: action(args), params=args.params)
