"""User-facing errors: the CLI prints these as one line (no traceback) and exits with status 2."""


class TermnormError(Exception):
    """Bad input or a state the user can fix. The message names the file, line or field."""
