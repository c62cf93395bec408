"""The project's own exception types. Every message is written for a person, not a stack trace."""

import warnings


class SteerRecError(Exception):
    """Any problem a user can fix: bad input, a broken file, a missing asset."""


class DataFormatError(SteerRecError):
    """A dataset file that does not have the expected format; names the file and the line."""

    def __init__(self, path, line, expected, found=None):
        """found: what the file holds there, as the message shows it (quoted by the caller where it is the file's
        own text, as a description where it is not: '2 fields', 'byte 0xe9')."""
        where = f"{path}, line {line}" if line else str(path)
        message = f"{where}: expected {expected}"
        if found is not None:
            message += f", found {found}"
        super().__init__(message)


class CheckpointError(SteerRecError):
    """A checkpoint that is missing, truncated, tampered with or made for other data."""


def one_line_warnings() -> None:
    """Print warnings (a dataset's left-out rows, say) as one 'warning: ...' line, like the errors, not Python's
    two-line form with a source line."""
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
