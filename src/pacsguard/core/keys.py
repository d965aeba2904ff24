"""The project key: 32 random bytes that drive every pseudonym.

Stored as one line of hex in a file created with mode 0600, or given in the
environment variable ``PACSGUARD_KEY`` (hex) or ``PACSGUARD_KEY_FILE`` (a path).
Never taken from the command line.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from pacsguard.core.errors import KeyFileError

KEY_BYTES = 32
ENV_KEY = "PACSGUARD_KEY"
ENV_KEY_FILE = "PACSGUARD_KEY_FILE"


@dataclass(frozen=True, repr=False)
class ProjectKey:
    """Secret key material; its repr never shows the bytes."""

    material: bytes

    def __post_init__(self) -> None:
        if len(self.material) != KEY_BYTES:
            raise KeyFileError(f"a project key is {KEY_BYTES} bytes; got {len(self.material)}")

    def __repr__(self) -> str:
        return "ProjectKey(<secret>)"


def write_private_file(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 (refusing to overwrite) and write ``data``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; refusing to overwrite a key") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def check_private(path: Path) -> None:
    """Refuse a secret file that group or others can read or write."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path} is accessible by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )


def new_key(path: Path) -> ProjectKey:
    """Generate a fresh project key and store it at ``path`` (mode 0600)."""
    key = ProjectKey(secrets.token_bytes(KEY_BYTES))
    write_private_file(path, key.material.hex().encode() + b"\n")
    return key


def _parse(text: str, where: str) -> ProjectKey:
    cleaned = text.strip()
    try:
        material = bytes.fromhex(cleaned)
    except ValueError:
        raise KeyFileError(f"{where} does not hold a hex-encoded project key") from None
    if len(material) != KEY_BYTES:
        raise KeyFileError(f"{where} holds {len(material)} bytes; a project key is {KEY_BYTES}")
    return ProjectKey(material)


def load_key(path: Path | None = None) -> ProjectKey:
    """Load the key from ``path``, else from ``PACSGUARD_KEY_FILE`` or ``PACSGUARD_KEY``."""
    if path is None and os.environ.get(ENV_KEY_FILE):
        path = Path(os.environ[ENV_KEY_FILE])
    if path is not None:
        if not path.is_file():
            raise KeyFileError(f"key file {path} does not exist (create one: pacsguard key new)")
        check_private(path)
        return _parse(path.read_text(encoding="ascii", errors="replace"), f"key file {path}")
    if os.environ.get(ENV_KEY):
        return _parse(os.environ[ENV_KEY], f"environment variable {ENV_KEY}")
    raise KeyFileError(f"no project key: give --key FILE, or set {ENV_KEY_FILE} or {ENV_KEY}")
