"""The one user-facing error type.

A UserError is bad input (a missing file, a malformed plan, an unusable libclang): the CLI prints
it compiler-style and exits 2.  Anything else that escapes is a bug and is reported as one.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input, with the place it comes from when there is one."""

    def __init__(self, message: str, file: str | None = None, line: int = 0, column: int = 0):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.column = column

    def __str__(self) -> str:
        if self.file is None:
            return f"qtool: error: {self.message}"
        place = self.file
        if self.line:
            place += f":{self.line}"
            if self.column:
                place += f":{self.column}"
        return f"{place}: error: {self.message}"
