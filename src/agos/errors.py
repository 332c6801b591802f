"""User-facing failures: the CLI prints these as one line and exits non-zero."""

import re


class AgosError(Exception):
    """A problem with the user's input or files, explained in one line."""

    exit_code = 2


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), terminal codes
    removed: what a one-line error quotes of a library's failure."""
    lines = _ANSI.sub("", str(exc)).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__
