"""Errors of ``pacsguard guard`` meant for the operator: one clear line, never a value read
from a dataset."""

from __future__ import annotations

from pacsguard.core.errors import PacsguardError


class GuardError(PacsguardError):
    """The guard cannot start or run as configured."""


class ConfigError(GuardError):
    """guard.toml is missing, malformed or inconsistent; the message names the key."""
