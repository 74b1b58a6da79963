"""Errors a user can cause: printed as one line (exit status 2), never as a traceback."""


class ConfigError(ValueError):
    """A configuration value that cannot be run."""
