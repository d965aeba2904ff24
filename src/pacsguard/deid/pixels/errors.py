"""The error raised when pixels that need cleaning cannot be cleaned (the file is quarantined)."""

from pacsguard.core.errors import PacsguardError


class PixelCleaningError(PacsguardError):
    """Pixel data needs cleaning and cannot be cleaned; the message holds no PHI."""
