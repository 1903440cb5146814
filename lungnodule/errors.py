"""Exceptions raised for bad input: each names the file and the problem."""

from __future__ import annotations

import os


class DataError(ValueError):
    """A file or value that the toolkit cannot use, with the offending path in the message.

    Raised for corrupt headers, missing or truncated data files, CSVs with missing columns,
    NaNs or unknown series UIDs, non-CT DICOM and coordinates outside a volume.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str, line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        self.line = line
        where = "" if self.path is None else self.path
        if line is not None:
            where = f"{where}, line {line}"
        super().__init__(f"{where}: {problem}" if where else problem)


class ModelMissingError(FileNotFoundError):
    """A trained model that a command needs is not on disk; the message says which command makes it."""
