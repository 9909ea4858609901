"""Errors of the local stack."""


class StackError(Exception):
    """A problem the user can fix: one line, exit 2."""
