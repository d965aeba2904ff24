"""age recipients (public) and identities (secret): parsing, loading, creation.

Recipients are public: ``age1…`` X25519 keys and ``ssh-ed25519`` / ``ssh-rsa`` public
keys, given on the command line or listed in files. Identities are secret: read from a
file (mode 0600 enforced) or the environment, never from the command line.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyrage

from pacsguard.core.keys import read_secret, write_private_file
from pacsguard.pack.errors import KeyFileError

ENV_IDENTITY_FILE = "PACSGUARD_IDENTITY_FILE"
ENV_IDENTITY = "PACSGUARD_IDENTITY"
SSH_PREFIXES = ("ssh-ed25519 ", "ssh-rsa ")
SSH_PRIVATE_MARK = b"-----BEGIN OPENSSH PRIVATE KEY-----"
RSA_PRIVATE_MARK = b"-----BEGIN RSA PRIVATE KEY-----"

Recipient = Any  # pyrage.x25519.Recipient | pyrage.ssh.Recipient (untyped extension)
Identity = Any  # pyrage.x25519.Identity | pyrage.ssh.Identity


def parse_recipient(text: str) -> Recipient:
    """An ``age1…`` key or an SSH public key line (its comment is allowed)."""
    cleaned = text.strip()
    try:
        if cleaned.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(cleaned)
        if cleaned.startswith(SSH_PREFIXES):
            return pyrage.ssh.Recipient.from_str(cleaned)
    except pyrage.RecipientError:
        raise KeyFileError(f"not a valid recipient: {_abbrev(cleaned)}") from None
    raise KeyFileError(
        f"unsupported recipient {_abbrev(cleaned)}: expected age1…, ssh-ed25519 or ssh-rsa"
    )


def read_recipients_file(path: Path) -> list[Recipient]:
    """One recipient a line; blank lines and ``#`` comments are skipped (as ``age -R``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise KeyFileError(f"cannot read recipients file {path}: {exc.strerror}") from None
    found = [parse_recipient(line) for line in lines if line.strip() and not _comment(line)]
    if not found:
        raise KeyFileError(f"recipients file {path} lists no recipient")
    return found


def new_identity(path: Path) -> str:
    """Write a fresh X25519 identity in ``age-keygen`` format (mode 0600); return its recipient."""
    identity = pyrage.x25519.Identity.generate()
    public = str(identity.to_public())
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created}\n# public key: {public}\n{identity}\n"
    write_private_file(path, text.encode("ascii"))
    return public


def load_identities(path: Path | None = None) -> list[Identity]:
    """Identities from ``path``, else ``PACSGUARD_IDENTITY_FILE``, else ``PACSGUARD_IDENTITY``."""
    data, where = read_secret(
        path,
        file_env=ENV_IDENTITY_FILE,
        value_env=ENV_IDENTITY,
        what="identity",
        option="--identity",
    )
    return parse_identities(data, where)


def parse_identities(data: bytes, where: str) -> list[Identity]:
    """An age identity file (``AGE-SECRET-KEY-1…`` lines) or an unencrypted SSH private key."""
    if SSH_PRIVATE_MARK in data or RSA_PRIVATE_MARK in data:
        try:
            return [pyrage.ssh.Identity.from_buffer(data)]
        except pyrage.IdentityError:
            raise KeyFileError(
                f"{where}: unsupported SSH key (passphrase-protected keys are not supported)"
            ) from None
    identities = []
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), start=1):
        if not line.strip() or _comment(line):
            continue
        try:
            identities.append(pyrage.x25519.Identity.from_str(line.strip()))
        except pyrage.IdentityError:
            raise KeyFileError(f"{where}: line {number} is not an age identity") from None
    if not identities:
        raise KeyFileError(f"{where} holds no identity")
    return identities


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _abbrev(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "…"
