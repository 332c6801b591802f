"""User-facing failures: the CLI prints these as one line and exits non-zero."""


class AgosError(Exception):
    """A problem with the user's input or files, explained in one line."""

    exit_code = 2


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none): what a one-line error
    quotes of a library's failure."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
