"""The small checks every settings rule is made of: each failure is a ConfigError naming
the key, what it is, what was expected and a fix (its params.yaml line is added when
shown)."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import ConfigError

FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*")  # an upstream file's base name
HASH = re.compile(r"(sha256:[0-9a-f]{64}|md5:[0-9a-f]{32})")
PLACEHOLDERS = re.compile(r"\{([^{}]*)\}")
MAX_SEED = 2**32 - 1  # numpy's limit


def fail(key: str, problem: str, expected: str | None = None, fix: str | None = None):
    raise ConfigError(key=key, problem=problem, expected=expected, fix=fix)


def check_seed(key: str, value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_SEED:
        fail(key, f"{value} is outside numpy's seed range", f"0 to {MAX_SEED}", "use e.g. 42")


def positive(key: str, value: Any, expected: str = "a whole number >= 1") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        fail(key, f"{value!r} is not a positive whole number", expected, "use e.g. 1")


def fraction(key: str, value: Any, low_open: bool = True, high_open: bool = True) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = number and not math.isnan(value) and (value > 0 if low_open else value >= 0) and (
        value < 1 if high_open else value <= 1)
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        fail(key, f"{value!r} is outside {interval}", f"a fraction in {interval}",
             "use e.g. 0.2")


def check_url(key: str, url: str, shown: str | None = None) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018  raises on a port that isn't a number
    except ValueError:
        parts = parts._replace(netloc="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(key, f"'{shown or url}' is not an http(s) URL", "http://host/path or https://...",
             "write the full URL, or a local folder path for a mirror")


def one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        close = difflib.get_close_matches(str(value), allowed, n=1)
        fail(key, f"'{value}' is unknown", f"one of: {', '.join(allowed)}",
             f"use {close[0]}" if close else "pick one of those")


def close_names(given: Any, names: list[str]) -> str:
    """" (did you mean X?)" for the first of `given` that is close to one of `names`."""
    for value in given:
        match = difflib.get_close_matches(str(value), names, n=1)
        if match and match[0] != value:
            return f" (did you mean {match[0]}?)"
    return ""
