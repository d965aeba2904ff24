"""One face over the ways a package is encrypted: to a passphrase or to X25519 (``age1…``)
recipients, streamed by :mod:`pacsguard.pack.agefile`; to SSH recipients by pyrage. A
package is decrypted by :mod:`agefile` with a passphrase or X25519 identities, by pyrage
with SSH keys or when ASCII-armored. Errors of either are turned into the pack errors a user
can act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyrage

from pacsguard.pack import agefile
from pacsguard.pack.agekeys import Identity, Recipient
from pacsguard.pack.errors import DecryptionFailed, PackageInvalid, PackError


def native_writer(
    sink: Any,
    *,
    recipients: Sequence[Recipient],
    passphrase: str | None,
    work_factor: int = agefile.DEFAULT_WORK_FACTOR,
) -> agefile.AgeWriter | None:
    """A writer that encrypts in place into ``sink`` (a passphrase, or X25519 recipients
    only); None when pyrage must do it (an SSH recipient): then :func:`encrypt`."""
    if passphrase is not None:
        return agefile.scrypt_writer(sink, passphrase, work_factor)
    if recipients and all(isinstance(r, pyrage.x25519.Recipient) for r in recipients):
        return agefile.x25519_writer(sink, [str(r) for r in recipients])
    return None


def encrypt(
    reader: Any,
    writer: Any,
    *,
    recipients: Sequence[Recipient],
    passphrase: str | None,
    work_factor: int = agefile.DEFAULT_WORK_FACTOR,
) -> None:
    native = native_writer(
        writer, recipients=recipients, passphrase=passphrase, work_factor=work_factor
    )
    if native is not None:
        agefile.stream_into(reader, native)
        return
    try:
        pyrage.encrypt_io(reader, writer, list(recipients))
    except pyrage.EncryptError as exc:
        raise PackError(f"encryption failed: {_first_line(exc)}") from None


def decrypt(
    reader: Any, writer: Any, *, identities: Sequence[Identity], passphrase: str | None
) -> None:
    if passphrase is not None:
        agefile.decrypt_io(reader, writer, passphrase)
        return
    reader = _Peeked(reader, len(agefile.INTRO) + 1)
    native = reader.head == agefile.INTRO + b"\n"  # binary, not ASCII armor: pyrage reads that
    if native and identities and all(isinstance(i, pyrage.x25519.Identity) for i in identities):
        agefile.decrypt_x25519_io(reader, writer, [str(i) for i in identities])
        return
    try:
        pyrage.decrypt_io(reader, writer, list(identities))
    except pyrage.DecryptError as exc:
        message = _first_line(exc)
        if "no matching keys" in message.lower():
            raise DecryptionFailed(agefile.NO_MATCHING_IDENTITY) from None
        raise agefile.bad_header(message) from None
    except OSError as exc:
        if exc.errno is not None:
            raise  # a real I/O error (or the consumer closing the pipe)
        raise PackageInvalid(
            "the package is damaged, truncated or was tampered with (payload check failed)"
        ) from None


class _Peeked:
    """A reader whose first ``size`` bytes were read ahead (``head``) and are read again."""

    def __init__(self, reader: Any, size: int) -> None:
        self._reader = reader
        self.head = agefile.read_full(reader, size)
        self._pending = self.head

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            return bytes(self._reader.read(size))
        if size < 0:
            data, self._pending = self._pending + bytes(self._reader.read()), b""
            return data
        data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def needs_passphrase(first_volume: Path) -> bool:
    """Whether the package starting in ``first_volume`` is encrypted to a passphrase."""
    with first_volume.open("rb") as handle:
        try:
            return agefile.is_passphrase_header(handle)
        except PackageInvalid:
            return False  # not a plain age header: let the decryptor say what is wrong


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else exc.__class__.__name__
