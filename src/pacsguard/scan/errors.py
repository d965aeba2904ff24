"""Scan errors: a bad target, port list, scope file or history database."""

from __future__ import annotations

from pacsguard.core.errors import PacsguardError


class ScanError(PacsguardError):
    """A scan cannot start or finish as asked."""


class TargetError(ScanError):
    """A target, exclusion, scope file or port list cannot be understood."""


class HistoryError(ScanError):
    """The scan history database cannot be read or written."""
