"""The project's own exceptions: each carries what happened and what to do next.

Errors from the engine, HTTP and the file system are caught where they happen and
re-raised as one of these, so the CLI can print a single line instead of a traceback.
"""

from __future__ import annotations


class SagecodeError(Exception):
    """Base error: ``what`` went wrong, ``fix`` says what the user can do about it."""

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.what} ({self.fix})" if self.fix else self.what


class UsageError(SagecodeError):
    """Bad input from the command line, the environment or a file: nothing was done."""


class VersionError(SagecodeError):
    """A version could not be validated or resolved."""


class EngineError(SagecodeError):
    """The Docker engine or buildx failed, or lacks a needed capability."""


class StoreError(SagecodeError):
    """The saved image (its blobs or tar, and manifest) on the persistent volume is missing or bad."""
