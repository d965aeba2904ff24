"""Errors of ``pacsguard guard`` meant for the operator: one clear line, never a value read
from a dataset."""

from __future__ import annotations

from pacsguard.core.errors import PacsguardError
from pacsguard.net.config import ConfigError


class GuardError(PacsguardError):
    """The guard cannot start or run as configured."""


__all__ = ["ConfigError", "GuardError"]
