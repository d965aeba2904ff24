"""The project key: 32 random bytes that drive every pseudonym.

Stored as one line of hex in a file created with mode 0600, or given in the
environment variable ``PACSGUARD_KEY`` (hex) or ``PACSGUARD_KEY_FILE`` (a path).
Never taken from the command line.
"""

from __future__ import annotations

import os
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
    import secrets  # only a new key needs it (start-up)

    key = ProjectKey(secrets.token_bytes(KEY_BYTES))
    write_private_file(path, key.material.hex().encode() + b"\n")
    return key


def _parse(text: str, where: str) -> ProjectKey:
    cleaned = text.strip()
    try:
        material = bytes.fromhex(cleaned)
    except ValueError:
        raise KeyFileError(f"{where} does not hold a hex-encoded project key") from None
    shape = f"a project key is {KEY_BYTES} random bytes written as {2 * KEY_BYTES} hex characters"
    if not material:
        raise KeyFileError(f"{where} is empty; {shape} (create one: pacsguard key new)")
    if len(material) != KEY_BYTES:
        raise KeyFileError(f"{where} holds {len(material)} bytes; {shape}")
    return ProjectKey(material)


def read_secret(
    path: Path | None, *, file_env: str, value_env: str, what: str, option: str, hint: str = ""
) -> tuple[bytes, str]:
    """A secret's bytes and where they came from: ``path``, else the file named by
    ``file_env``, else the value of ``value_env``. Never argv; files must be private."""
    if path is None and os.environ.get(file_env):
        path = Path(os.environ[file_env])
    if path is not None:
        if path.is_dir():
            raise KeyFileError(f"{what} file {path} is a folder, not a file; give the file in it")
        if not path.is_file():
            raise KeyFileError(f"{what} file {path} does not exist{hint}")
        check_private(path)
        return path.read_bytes(), f"{what} file {path}"
    if os.environ.get(value_env):
        return os.environ[value_env].encode(), f"environment variable {value_env}"
    raise KeyFileError(f"no {what}: give {option} FILE, or set {file_env} or {value_env}")


def load_key(path: Path | None = None) -> ProjectKey:
    """Load the key from ``path``, else from ``PACSGUARD_KEY_FILE`` or ``PACSGUARD_KEY``."""
    data, where = read_secret(
        path,
        file_env=ENV_KEY_FILE,
        value_env=ENV_KEY,
        what="project key",
        option="--key",
        hint=" (create one: pacsguard key new)",
    )
    return _parse(data.decode("ascii", errors="replace"), where)
