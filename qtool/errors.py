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


class UserErrors(UserError):
    """Several problems of the input found in one pass (every malformed report file, say), printed
    one per line so that one run names them all."""

    def __init__(self, errors: list[UserError]):
        super().__init__(errors[0].message, errors[0].file, errors[0].line, errors[0].column)
        self.errors = list(errors)

    def __str__(self) -> str:
        return "\n".join(UserError.__str__(e) for e in self.errors)
