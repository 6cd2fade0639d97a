"""User-facing errors.

A ``UserError`` is a mistake in what the user gave us (a file, a flag, a config). The CLI
prints its message on one line and exits with its ``exit_code``; it never shows a traceback.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback.

    Args:
        message: one line naming the file or value and the problem.
        exit_code: process exit status (2 for invalid input, as argparse does).
    """

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class InputFileError(UserError):
    """A file the user gave cannot be used: it names the file and the problem."""

    def __init__(self, path: object, problem: str, *, exit_code: int = 2) -> None:
        super().__init__(f"{path}: {problem}", exit_code=exit_code)
        self.path = path
        self.problem = problem
