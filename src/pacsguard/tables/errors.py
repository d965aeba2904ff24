"""Errors of the tables capability: one clear line each, never a cell value."""

from pacsguard.core.errors import InputError, PacsguardError


class TableReadError(InputError):
    """A table cannot be read: unknown format, bad encoding, malformed rows."""


class PolicyError(PacsguardError):
    """A policy file is malformed or does not fit the table."""


class UnclassifiedColumnError(PacsguardError):
    """The table has columns that the policy does not classify (fail closed)."""
