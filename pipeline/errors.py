"""The errors a user can fix, each printed as one line by `console.run_stage`.

A message says what is wrong, where it came from (a params.yaml line, a command-line
override, a file), what was expected, and a fix that works. Anything else that goes
wrong is a bug: it gets one line too, and the traceback behind `PIPELINE_DEBUG=1`.
"""

from __future__ import annotations

import re

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def error_line(err: BaseException) -> str:
    """Any error as one line (libraries' messages can span several, and color themselves)."""
    return " ".join(ANSI.sub("", str(err)).split())


class PipelineError(Exception):
    """An error the user can fix: shown as `ERROR <message>`, never as a traceback."""


class ConfigError(PipelineError, ValueError):
    """A setting is wrong.

    Built from parts (`key`, `problem`, `expected`, `fix`), it learns where the key was
    set when it is shown: `params.yaml:57: models.imdb_dense.loss: ...`, or the override
    that set it. A plain message is shown as it is.
    """

    def __init__(self, message: str | None = None, *, key: str | None = None,
                 problem: str = "", expected: str | None = None, fix: str | None = None,
                 origin: str | None = None) -> None:
        self.key, self.problem, self.expected, self.fix = key, problem, expected, fix
        self.origin = origin
        self.message = message
        super().__init__(str(self))

    def located(self, origin: str | None) -> ConfigError:
        """This error with its origin filled in (kept if it already has one)."""
        if self.key is not None and self.origin is None and origin:
            self.origin = origin
            self.args = (str(self),)
        return self

    def unlocated(self) -> str:
        """The error without its origin, for where the origin is said otherwise (a sweep's
        override names it)."""
        if self.message is not None:
            return self.message
        text = f"{self.key}: {self.problem}" + (f"; expected {self.expected}" if self.expected
                                                else "")
        return text + (f". Fix: {self.fix}" if self.fix else "")

    def __str__(self) -> str:
        if self.message is not None:
            return self.message
        return f"{self.origin or 'params.yaml'}: {self.unlocated()}"


class DataError(PipelineError, ValueError):
    """A data file or input is missing, corrupt or unexpected."""


class TrackingUnavailable(PipelineError):
    """The MLflow tracking store did not answer (or stopped answering)."""


class BadFile(DataError):
    """A file that isn't what its format says. The reader can't know where the bytes came
    from, so the caller adds the fix (fetching a file again helps only if it changes)."""
