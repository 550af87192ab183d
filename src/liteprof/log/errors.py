"""Exceptions shared by the reader and the command line (no third-party imports)."""


class LogError(Exception):
    """A path that cannot be read as a log; the message is one line for the user."""
