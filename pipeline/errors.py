"""The project's expected errors: each message names what is wrong, where, and the fix."""


class ConfigError(ValueError):
    """A params.yaml value is wrong."""


class DataError(ValueError):
    """A data file is missing, corrupt or unexpected."""
