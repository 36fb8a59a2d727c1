"""Reading params.yaml the way DVC does, and finding the line of a key in it.

The pipeline reads params.yaml with OmegaConf (PyYAML, YAML 1.1); DVC reads the same file
with ruamel (YAML 1.2) to decide what to rerun. Where the two would read a value
differently (`no` is false to one and the word "no" to the other, `010` is 8 or 10,
`1:30` is 90 or text), or where only one of them would resolve it (`${...}`
interpolation: DVC would miss the dependency), the value is refused: both must see the
same settings. A syntax error is one line with file, line and column.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from pipeline.errors import ConfigError, error_line


def read_yaml(path: Path | str) -> DictConfig:
    """A params file's settings, read alike by the pipeline and by DVC."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: not found. Fix: run from the project root (where dvc.yaml "
                          "is), or pass --params <file>")
    text = path.read_text()
    try:
        content = OmegaConf.create(text) if text.strip() else None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where_ = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        what = " ".join(str(err.problem or err.context or "invalid YAML").split())
        raise ConfigError(f"{where_}: YAML syntax error: {what}. Fix: correct the YAML at that "
                          "line and column (`git diff params.yaml` shows what changed)") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({error_line(err)}). Fix: "
                          "correct the file (`git diff` shows what changed)") from None
    if not isinstance(content, DictConfig) or not content:
        raise ConfigError(f"{path}: empty, or not a mapping of settings; expected the project's "
                          "params.yaml. Fix: restore it (`git checkout params.yaml`)")
    ours = OmegaConf.to_container(content, resolve=False)
    _no_interpolation(ours, "")
    _same_as_dvc(ours, _dvc_reading(text), "")
    return content


def _dvc_reading(text: str) -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=False).load(text)


def _join(key: str, part: str | int) -> str:
    return f"{key}[{part}]" if isinstance(part, int) else f"{key}.{part}" if key else str(part)


def _no_interpolation(value: Any, key: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _no_interpolation(v, _join(key, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _no_interpolation(v, _join(key, i))
    elif isinstance(value, str) and "${" in value:
        raise ConfigError(key=key, problem=f"'{value}' is an interpolation, which DVC doesn't "
                          "resolve: it would not rerun what depends on the value behind it",
                          expected="a plain value", fix="write the value itself")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b


def _same_as_dvc(ours: Any, dvcs: Any, key: str) -> None:
    """Refuse the first value the two YAML readers disagree on."""
    if isinstance(ours, dict) and isinstance(dvcs, dict) and (
            set(map(str, ours)) == set(map(str, dvcs))):
        theirs = {str(k): v for k, v in dvcs.items()}
        for k, v in ours.items():
            _same_as_dvc(v, theirs[str(k)], _join(key, str(k)))
        return
    elif isinstance(ours, list) and isinstance(dvcs, list) and len(ours) == len(dvcs):
        for i, (v, v2) in enumerate(zip(ours, dvcs, strict=True)):
            _same_as_dvc(v, v2, _join(key, i))
        return
    elif _same(ours, dvcs):
        return
    raise ConfigError(key=key, problem=f"the pipeline (YAML 1.1) reads {ours!r} here but DVC "
                      f"(YAML 1.2) reads {dvcs!r}", expected="a value both read alike",
                      fix="quote it if it is text ('no', '1:30', '2026-01-01'), or write the "
                      "number or boolean plainly (10, false)")


def where(path: Path | str, key: str | None) -> str | None:
    """`params.yaml:57` for a key (the nearest enclosing line if the key isn't in the file)."""
    if key is None:
        return None
    try:
        line = locate(Path(path).read_text(), key)
    except (OSError, ValueError):
        line = None
    return f"{path}:{line}" if line else str(path)


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def key_parts(key: str) -> list[str | int]:
    """`models.m.layers[0].units` or `models.m.layers.0.units` -> ['models', 'm', 'layers', 0,
    'units']."""
    parts: list[str | int] = []
    for name, index in _PART.findall(key):
        parts.append(int(index) if index else int(name) if name.isdigit() else name)
    return parts


def locate(text: str, key: str) -> int | None:
    """The 1-based line of `key` in YAML text: its own line, or the deepest parent found.
    Entry names may hold dots (a refused name like `../evil`): the longest match wins."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line, rest = None, key
    while rest:
        if isinstance(node, yaml.MappingNode):
            names = [k for k, _ in node.value if rest == k.value or rest.startswith(
                (k.value + ".", k.value + "["))]
            if not names:
                break
            best = max(names, key=lambda k: len(k.value))
            node = next(v for k, v in node.value if k is best)
            rest = rest[len(best.value):]
            line, rest = best.start_mark.line + 1, rest[1:] if rest.startswith(".") else rest
        elif isinstance(node, yaml.SequenceNode):
            index = re.match(r"\[(\d+)\]|(\d+)(?=$|[.\[])", rest)
            if not index or int(index.group(1) or index.group(2)) >= len(node.value):
                break
            node = node.value[int(index.group(1) or index.group(2))]
            rest = rest[index.end():]
            line, rest = node.start_mark.line + 1, rest[1:] if rest.startswith(".") else rest
        else:
            break
    return line
