"""Errors a user can cause and fix. Their message is one sentence that names the thing."""

# Defined in the run-directory contract, below the engine, so that it refuses a workspace in the same words.
from ..rundir.errors import UserError as UserError


class ConfigError(UserError):
    """A config or spec field holds a value we cannot use."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(f"{field}: {message}")


class CheckpointError(UserError):
    """A checkpoint file cannot be read or does not fit the model."""


class DataError(UserError):
    """A dataset cannot be found or read."""


class Stopped(Exception):
    """A stop was requested in the middle of a job's work (an extraction, an epoch, a cache build).

    Here, below every room of the engine that may raise it (evaluation, the latent cache), so that none of them
    imports another for it; evaluation.features re-exports it."""
