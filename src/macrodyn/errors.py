"""Errors for user mistakes: the CLI prints these as one line, without a traceback."""


class InputError(ValueError):
    """Bad input (shape, value, file, config); the message names the problem and the fix."""
