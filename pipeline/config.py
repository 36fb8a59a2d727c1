"""Reading params.yaml into a checked config.

`params.yaml` is the only place defaults live; pipeline/schema.py declares the shape and
type of every setting. `load_params` reads the file
(pipeline/params_file.py: as DVC reads it), checks every value against these types
strictly (a number written as text, a list where a mapping belongs, an unknown key),
merges it onto the schema and hands it to `pipeline.validate`, where every other rule
lives. Errors name the key; params_file.where adds its line. Hydra (sweeps) composes
on top of the same schema.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pipeline.errors import ConfigError
from pipeline.params_file import read_yaml, where
from pipeline.schema import Params

PARAMS_FILE = Path("params.yaml")

def compose(raw: Any) -> DictConfig:
    """Check raw params against the schema's types, merge them onto it, then check every
    rule (pipeline/validate.py)."""
    from pipeline import validate

    plain = OmegaConf.to_container(raw, resolve=False) if OmegaConf.is_config(raw) else raw
    check_types(plain, Params, "")
    try:
        cfg = OmegaConf.merge(OmegaConf.structured(Params), raw)
        OmegaConf.to_container(cfg, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise schema_error(err) from None
    validate.check_params(cfg)
    return cfg


def load_params(path: Path | str = PARAMS_FILE) -> DictConfig:
    """Read and validate params.yaml; errors name the line the key is on."""
    path = Path(path)
    try:
        return compose(read_yaml(path))
    except ConfigError as err:
        raise err.located(where(path, err.key)) from None


TYPE_NAMES = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}


def _type_error(key: str, value: Any, expected: str) -> ConfigError:
    kind = ("a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list)
            else "text" if isinstance(value, str) else "true/false" if isinstance(value, bool)
            else "empty" if value is None else type(value).__name__)
    written = f"{value!r} ({kind})" if not isinstance(value, (dict, list)) else kind
    fix = ("write true or false" if expected == TYPE_NAMES[bool]
           else "write it without quotes" if isinstance(value, str) and expected != "text"
           else f"quote it ('{value}')" if expected == "text" and value is not None
           else "use a value of the expected type")
    return ConfigError(key=key, problem=f"{written} is the wrong type", expected=expected,
                       fix=fix)


def check_types(value: Any, hint: Any, key: str) -> None:
    """`value` against a schema type, strictly: 3 for an int (not "3", not 3.0, not true),
    a mapping for a dataclass or dict, a list for a list. Unknown keys are named, with the
    closest known one. (OmegaConf's merge would turn "3" into 3; DVC would not.)"""
    if hint is Any or value is MISSING:
        return
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            check_types(value, options[0], key)
        elif set(options) == {int, float} and not (
                isinstance(value, (int, float)) and not isinstance(value, bool)):
            raise _type_error(key, value, "a number")
        return
    if value is None:
        raise _type_error(key, value, TYPE_NAMES.get(hint, "a value"))
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping of settings (key: value lines)")
        hints = typing.get_type_hints(hint)
        for name, item in value.items():
            child = f"{key}.{name}" if key else str(name)
            if name not in hints:
                close = difflib.get_close_matches(str(name), list(hints), n=1)
                raise ConfigError(key=child, problem="unknown key",
                                  expected=f"one of: {', '.join(hints)}",
                                  fix=f"rename it to {close[0]}" if close else "remove it, or "
                                  "check the spelling against that section of params.yaml")
            check_types(item, hints[name], child)
    elif origin is dict:
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping of settings (key: value lines)")
        for name, item in value.items():
            check_types(item, args[1], f"{key}.{name}")
    elif origin is list:
        if not isinstance(value, list):
            raise _type_error(key, value, "a list, e.g. [a, b]")
        for i, item in enumerate(value):
            check_types(item, args[0], f"{key}[{i}]")
    elif hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _type_error(key, value, TYPE_NAMES[float])
    elif hint in TYPE_NAMES and type(value) is not hint:
        raise _type_error(key, value, TYPE_NAMES[hint])


def schema_error(err: OmegaConfBaseException) -> ConfigError:
    """An OmegaConf merge error as one line: the key, what is wrong, what the schema expects."""
    key = getattr(err, "full_key", None) or "?"
    message = str(getattr(err, "msg", err)).splitlines()[0]
    schema = getattr(err, "object_type", None)
    fields = ([f.name for f in dataclasses.fields(schema)]
              if dataclasses.is_dataclass(schema) else [])
    name = str(getattr(err, "key", "") or key.rsplit(".", 1)[-1])
    if "not in" in message:
        close = difflib.get_close_matches(name, fields, n=1)
        return ConfigError(key=key, problem="unknown key",
                           expected=f"one of: {', '.join(fields)}" if fields else None,
                           fix=f"rename it to {close[0]}" if close else "remove it, or check "
                           "the spelling against that section of params.yaml")
    if "Missing mandatory value" in message:
        return ConfigError(key=key, problem="missing", expected="a value",
                           fix="add it (the other entries in params.yaml show an example)")
    value = getattr(err, "value", None)
    if "ListConfig, list or tuple" in message:
        expected = "a list, e.g. [a, b]"
    elif "not a subclass of" in message or "DictConfig" in message:
        expected = "a mapping of settings (key: value lines)"
    else:
        hint = re.search(r"converted to (\w+)|type hint '([^']+)'", message)
        expected = f"a value of type {next(g for g in hint.groups() if g)}" if hint else None
    return ConfigError(key=key, problem=f"{value!r} has the wrong type" if value is not None
                       else message, expected=expected, fix="use a value of the expected type")


def dataset_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one dataset; an unknown name lists the known ones."""
    if name not in params.datasets:
        known = ", ".join(params.datasets)
        raise ConfigError(
            f"unknown dataset '{name}'; expected one of: {known}. Fix: use one of those (or add "
            "an entry under `datasets:` in params.yaml)"
        )
    return params.datasets[name]


def model_config(params: DictConfig, name: str) -> DictConfig:
    """The entry of one Keras model; an unknown name lists the known ones."""
    if name not in params.models:
        raise ConfigError(
            f"unknown model '{name}'; expected one of: {', '.join(params.models)}. Fix: use one "
            "of those (or add an entry under `models:` in params.yaml)"
        )
    return params.models[name]
