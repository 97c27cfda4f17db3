"""The errors a user can cause and fix; their message is one sentence that names the thing.

They live in the run-directory contract, the one room below every other, so that it can refuse a bad
workspace or spec in the same words the engine, the job system and db use (engine.errors re-exports them).
"""


class UserError(Exception):
    """A problem with the user's input (a value, a file, a folder); str() is shown as-is."""


class RunDirError(UserError):
    """A run folder whose spec.yaml is missing or unreadable, or holds a value the index cannot."""
