"""User-facing failures: the CLI prints these as one line and exits non-zero."""


class AgosError(Exception):
    """A problem with the user's input or files, explained in one line."""

    exit_code = 2
