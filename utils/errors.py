"""Errors that mean "the user must change something", and the CLI exit code for them."""

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A problem with the user's input (config, data, command line), not a bug.

    Command lines catch it, print its message on one line and exit with status 2.
    """


class ConfigError(UserError):
    """An invalid config value; the message names the dotted key and what is allowed."""


class DataError(UserError):
    """Invalid data on disk; the message names the file (and line) and what is wrong."""


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the message names the step."""
