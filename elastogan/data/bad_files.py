"""Every bad input of a run in one error, so that a folder of exports is cleaned in one pass.

``ingest`` and ``predict`` check every file before they write anything; without ``--skip-bad``
they then stop with all the problems at once. The CLI prints a ``UserError`` as
``elastogan: error: MESSAGE``; this message holds one such line per file (the first without
its prefix, which the CLI adds) and a last line saying what happened and what to do.
"""

from __future__ import annotations

from pathlib import Path

from elastogan.errors import InputFileError, UserError

PREFIX = "elastogan: error: "


class BadFiles(UserError):
    """Several (or one) bad input files; one line each.

    Args:
        problems: ``(file, problem)`` in the order met.
        what: the verb of the run, for the last line ("ingested", "written").
    """

    def __init__(self, problems: list[tuple[Path, str]], *, what: str) -> None:
        if not problems:
            raise ValueError("BadFiles needs at least one problem")
        lines = [f"{path}: {problem}" for path, problem in problems]
        if len(problems) > 1:
            lines.append(f"{len(problems)} bad files; nothing {what} (--skip-bad goes on with the good ones)")
        super().__init__(("\n" + PREFIX).join(lines))
        self.problems = list(problems)


def raise_if_bad(problems: list[tuple[Path, str]], *, what: str) -> None:
    """Raise the one ``InputFileError`` of a single problem (as before: one line), else ``BadFiles``."""
    if len(problems) == 1:
        raise InputFileError(*problems[0])
    if problems:
        raise BadFiles(problems, what=what)
