"""Errors of the pack capability: one clear sentence each, never a value from inside a file."""

from pacsguard.core.errors import InputError, KeyFileError, PacsguardError


class PackError(PacsguardError):
    """A package cannot be written or read."""


class PackRefused(PackError):
    """The folder failed the pre-flight checks and ``--force --reason`` was not given."""


class PackageInvalid(PackError):
    """The package is damaged, truncated, tampered with, or does not match its manifest."""


class DecryptionFailed(PackError):
    """No given identity or passphrase opens the package."""


class SignatureInvalid(PackError):
    """The package is not signed as required, or its signature does not verify."""


__all__ = [
    "DecryptionFailed",
    "InputError",
    "KeyFileError",
    "PackError",
    "PackRefused",
    "PackageInvalid",
    "SignatureInvalid",
]
