"""One face over the two ways a package is encrypted: to age recipients (pyrage) or to a
passphrase (scrypt, streamed by :mod:`pacsguard.pack.scrypt_age`). Errors of either are
turned into the pack errors a user can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyrage

from pacsguard.pack import scrypt_age
from pacsguard.pack.agekeys import Identity, Recipient
from pacsguard.pack.errors import DecryptionFailed, PackageInvalid, PackError


def encrypt(
    reader: Any,
    writer: Any,
    *,
    recipients: Sequence[Recipient],
    passphrase: str | None,
    work_factor: int = scrypt_age.DEFAULT_WORK_FACTOR,
) -> None:
    if passphrase is not None:
        scrypt_age.encrypt_io(reader, writer, passphrase, work_factor)
        return
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
    except pyrage.EncryptError as exc:
        raise PackError(f"encryption failed: {_first_line(exc)}") from None


def decrypt(
    reader: Any, writer: Any, *, identities: Sequence[Identity], passphrase: str | None
) -> None:
    if passphrase is not None:
        scrypt_age.decrypt_io(reader, writer, passphrase)
        return
    try:
        pyrage.decrypt_io(reader, writer, list(identities))
    except pyrage.DecryptError as exc:
        message = _first_line(exc)
        if "no matching keys" in message.lower():
            raise DecryptionFailed(
                "none of the given identities opens this package "
                "(wrong identity, or a damaged header)"
            ) from None
        raise PackageInvalid(
            f"not a readable age package: damaged, truncated or altered header ({message})"
        ) from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real I/O error (or the consumer closing the pipe)
        raise PackageInvalid(
            "the package is damaged, truncated or was tampered with (payload check failed)"
        ) from None


def needs_passphrase(first_volume: Path) -> bool:
    """Whether the package starting in ``first_volume`` is encrypted to a passphrase."""
    with first_volume.open("rb") as handle:
        try:
            return scrypt_age.is_passphrase_header(handle)
        except PackageInvalid:
            return False  # not a plain age header: let the decryptor say what is wrong


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
