"""One exception type for input a person can fix; the CLI prints it as a single line."""

from __future__ import annotations


class RewardkitError(Exception):
    """Bad input or configuration: the message says what, where (file:line, field, flag) and what is accepted."""


class DataError(RewardkitError):
    """A data file that cannot be read or normalised.

    Example:
        >>> str(DataError("row has no 'chosen'", path="d.jsonl", line=3, field="chosen"))
        "d.jsonl:3: field 'chosen': row has no 'chosen'"
    """

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None
    ):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        if field is not None:
            where += f"field '{field}': "
        super().__init__(where + message)
        self.path, self.line, self.field = path, line, field


def first_line(e: Exception) -> str:
    """The first line of an upstream exception's message (its type when it has none), for one-line errors."""
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
