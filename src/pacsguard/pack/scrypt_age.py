"""The age format with a passphrase (scrypt recipient), streaming, per the age v1 spec.

pyrage only encrypts passphrase files in memory; this module streams them in 64 KiB
chunks instead, so memory stays bounded. Files written here open with
``age -d`` (which prompts for the passphrase), and files from ``age -p`` open here.

    age-encryption.org/v1
    -> scrypt <salt, 16 bytes, base64> <log2 N>
    <file key wrapped with ChaCha20-Poly1305 under scrypt(passphrase), base64>
    --- <HMAC-SHA256 of the header, base64>
    <16-byte nonce><STREAM: ChaCha20-Poly1305 chunks of 64 KiB, last one flagged>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pacsguard.pack.errors import DecryptionFailed, PackageInvalid

INTRO = b"age-encryption.org/v1"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
DEFAULT_WORK_FACTOR = 18  # what `age -p` uses
MAX_WORK_FACTOR = 22  # what `age -d` accepts
CHUNK = 64 * 1024
TAG = 16
ENC_CHUNK = CHUNK + TAG
MAX_HEADER_LINE = 4096
COLUMNS = 64


class Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> object: ...


def b64(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def unb64(text: bytes, what: str) -> bytes:
    """Canonical unpadded base64 only, as the spec requires."""
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise PackageInvalid(f"the package header is malformed ({what})") from None
    if b64(raw) != text:
        raise PackageInvalid(f"the package header is malformed ({what})")
    return raw


def _hkdf(key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _scrypt(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase.encode("utf-8"))


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _read_full(reader: Reader, size: int) -> bytes:
    parts: list[bytes] = []
    missing = size
    while missing > 0:
        part = reader.read(missing)
        if not part:
            break
        parts.append(part)
        missing -= len(part)
    return b"".join(parts)


def encrypt_io(
    reader: Reader, writer: Writer, passphrase: str, work_factor: int = DEFAULT_WORK_FACTOR
) -> None:
    """Encrypt everything ``reader`` yields to ``writer`` under ``passphrase``."""
    if not passphrase:
        raise DecryptionFailed("an empty passphrase is not allowed")
    if not 1 <= work_factor <= MAX_WORK_FACTOR:
        raise ValueError(f"scrypt work factor must be within 1..{MAX_WORK_FACTOR}")
    file_key = os.urandom(16)
    salt = os.urandom(16)
    wrapped = ChaCha20Poly1305(_scrypt(passphrase, salt, work_factor)).encrypt(
        bytes(12), file_key, None
    )
    header = (
        INTRO + b"\n-> scrypt " + b64(salt) + b" " + str(work_factor).encode() + b"\n"
        + b64(wrapped) + b"\n---"
    )  # fmt: skip
    mac = hmac.new(_hkdf(file_key, None, b"header"), header, hashlib.sha256).digest()
    nonce = os.urandom(16)
    writer.write(header + b" " + b64(mac) + b"\n" + nonce)
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    chunk = _read_full(reader, CHUNK)
    while True:
        following = _read_full(reader, CHUNK) if len(chunk) == CHUNK else b""
        last = not following
        writer.write(aead.encrypt(_nonce(counter, last), chunk, None))
        if last:
            return
        chunk, counter = following, counter + 1


def _read_line(reader: Reader) -> bytes:
    """One header line with its newline; the header is short, so byte reads are fine."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = reader.read(1)
        if not byte:
            raise PackageInvalid("the package is truncated (incomplete header)")
        line += byte
        if len(line) > MAX_HEADER_LINE:
            raise PackageInvalid("the package header is malformed (line too long)")
    return bytes(line)


def read_header(reader: Reader) -> tuple[list[tuple[list[bytes], bytes]], bytes, bytes]:
    """Parse an age header: (stanzas as (args, body)), MAC, and the bytes the MAC covers."""
    raw = _read_line(reader)
    if raw != INTRO + b"\n":
        raise PackageInvalid("not an age-encrypted package (unknown header)")
    stanzas: list[tuple[list[bytes], bytes]] = []
    while True:
        line = _read_line(reader)
        if line.startswith(b"--- "):
            return stanzas, unb64(line[4:-1], "MAC"), raw + b"---"
        if not line.startswith(b"-> "):
            raise PackageInvalid("the package header is malformed (stanza)")
        raw += line
        args = line[3:-1].split(b" ")
        body = b""
        while True:
            body_line = _read_line(reader)
            raw += body_line
            body += body_line[:-1]
            if len(body_line) - 1 < COLUMNS:
                break
        stanzas.append((args, unb64(body, "stanza body")))


def is_passphrase_header(reader: Reader) -> bool:
    """Whether the age file starting at ``reader`` is protected by a passphrase."""
    stanzas, _, _ = read_header(reader)
    return any(args[:1] == [b"scrypt"] for args, _ in stanzas)


def _file_key(stanzas: list[tuple[list[bytes], bytes]], passphrase: str) -> bytes:
    if len(stanzas) != 1 or stanzas[0][0][:1] != [b"scrypt"]:
        raise PackageInvalid("the package header is malformed (a scrypt stanza must be alone)")
    args, body = stanzas[0]
    if len(args) != 3 or len(body) != 32:
        raise PackageInvalid("the package header is malformed (scrypt stanza)")
    salt = unb64(args[1], "salt")
    factor = args[2].decode("ascii", "replace")
    if len(salt) != 16 or not factor.isdigit() or factor.startswith("0"):
        raise PackageInvalid("the package header is malformed (scrypt parameters)")
    if int(factor) > MAX_WORK_FACTOR:
        raise PackageInvalid(f"scrypt work factor {factor} is above {MAX_WORK_FACTOR}")
    try:
        key = _scrypt(passphrase, salt, int(factor))
        return ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
    except InvalidTag:
        raise DecryptionFailed("wrong passphrase: the package does not open with it") from None


def decrypt_io(reader: Reader, writer: Writer, passphrase: str) -> None:
    """Decrypt a passphrase age file from ``reader`` to ``writer``, chunk by chunk.

    Plaintext is released before the end is authenticated (as with any age
    reader): callers must treat the output as untrusted until this returns.
    """
    stanzas, mac, covered = read_header(reader)
    file_key = _file_key(stanzas, passphrase)
    expected = hmac.new(_hkdf(file_key, None, b"header"), covered, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise PackageInvalid("the package header was altered (MAC mismatch)")
    nonce = _read_full(reader, 16)
    if len(nonce) != 16:
        raise PackageInvalid("the package is truncated (no payload)")
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    chunk = _read_full(reader, ENC_CHUNK)
    while True:
        following = _read_full(reader, ENC_CHUNK) if len(chunk) == ENC_CHUNK else b""
        last = not following
        try:
            plain = aead.decrypt(_nonce(counter, last), chunk, None)
        except InvalidTag:
            raise PackageInvalid(
                "the package is damaged, truncated or was tampered with (payload check failed)"
            ) from None
        if last and not plain and counter > 0:
            raise PackageInvalid("the package is malformed (empty final chunk)")
        writer.write(plain)
        if last:
            return
        chunk, counter = following, counter + 1
