"""Errors meant for the user: a clear sentence, never a traceback, never PHI."""


class PacsguardError(Exception):
    """An error the CLI reports as one clear line (exit code 2)."""


class KeyFileError(PacsguardError):
    """A key is missing, malformed or too widely readable."""


class InputError(PacsguardError):
    """An input cannot be read at all (not one bad file among many: that is quarantine)."""


class OutputError(PacsguardError):
    """The output, the quarantine or the journal cannot be written (a full disk, a read-only
    folder): the run stops, and the same command run again once it is fixed finishes it."""
