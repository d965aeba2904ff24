"""The age v1 format, streaming: to a passphrase (scrypt) and to X25519 recipients.

Files written here open with ``age -d``, and files from ``age -p`` open here (the tests
hold both ways against the age CLI). Why not pyrage for everything: it encrypts passphrase
files in memory only, and its payload cipher runs at ~0.3-0.4 GB/s where OpenSSL's
ChaCha20-Poly1305 (through ``cryptography``) runs at ~2 GB/s — pack and unpack would be
bound by it. pyrage still encrypts to and decrypts with SSH keys, and parses key files.

    age-encryption.org/v1
    -> scrypt <salt, 16 bytes, base64> <log2 N>        (or, one per recipient:)
    -> X25519 <ephemeral share, base64>
    <file key wrapped with ChaCha20-Poly1305, base64>
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
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from pacsguard.pack.errors import DecryptionFailed, PackageInvalid

INTRO = b"age-encryption.org/v1"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
X25519_LABEL = b"age-encryption.org/v1/X25519"
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
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


NO_MATCHING_IDENTITY = (
    "none of the given identities opens this package (wrong identity, or a damaged header)"
)


def bad_header(what: str) -> PackageInvalid:
    """The one refusal of a header that does not parse or authenticate, whichever reader
    (this module or pyrage) found it."""
    return PackageInvalid(
        f"not a readable age package: damaged, truncated or altered header ({what})"
    )


def unb64(text: bytes, what: str) -> bytes:
    """Canonical unpadded base64 only, as the spec requires."""
    try:
        raw = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        raise bad_header(what) from None
    if b64(raw) != text:
        raise bad_header(what)
    return raw


def _hkdf(key: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def _scrypt(passphrase: str, salt: bytes, work_factor: int) -> bytes:
    kdf = Scrypt(salt=SCRYPT_LABEL + salt, length=32, n=1 << work_factor, r=8, p=1)
    return kdf.derive(passphrase.encode("utf-8"))


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def read_full(reader: Reader, size: int) -> bytes:
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
    stream_into(reader, scrypt_writer(writer, passphrase, work_factor))


def encrypt_to_x25519(reader: Reader, writer: Writer, recipients: list[str]) -> None:
    """Encrypt everything ``reader`` yields to ``writer`` for these ``age1…`` recipients."""
    stream_into(reader, x25519_writer(writer, recipients))


def x25519_writer(out: Writer, recipients: list[str]) -> AgeWriter:
    """An :class:`AgeWriter` for these ``age1…`` recipients (its header already written)."""
    if not recipients:
        raise ValueError("no recipient")
    keys = [x25519_public_key(r) for r in recipients]
    file_key = os.urandom(16)
    return AgeWriter(out, file_key, [_x25519_stanza(k, file_key) for k in keys])


def scrypt_writer(out: Writer, passphrase: str, work_factor: int) -> AgeWriter:
    """An :class:`AgeWriter` to a passphrase (its header already written)."""
    if not passphrase:
        raise DecryptionFailed("an empty passphrase is not allowed")
    if not 1 <= work_factor <= MAX_WORK_FACTOR:
        raise ValueError(f"scrypt work factor must be within 1..{MAX_WORK_FACTOR}")
    file_key, salt = os.urandom(16), os.urandom(16)
    key = _scrypt(passphrase, salt, work_factor)
    wrapped = ChaCha20Poly1305(key).encrypt(bytes(12), file_key, None)
    stanza = b"-> scrypt " + b64(salt) + b" " + str(work_factor).encode() + b"\n" + _body(wrapped)
    return AgeWriter(out, file_key, [stanza])


class AgeWriter:
    """The payload of an age file, written as it comes: ``write`` encrypts every complete
    64 KiB chunk but the last (the final chunk is flagged, so one is held back until
    ``close`` says the stream ended). Used in place, no thread and no pipe: the tar stream
    of pack is written straight into it."""

    def __init__(self, out: Writer, file_key: bytes, stanzas: list[bytes]) -> None:
        header = INTRO + b"\n" + b"".join(stanzas) + b"---"
        mac = hmac.new(_hkdf(file_key, None, b"header"), header, hashlib.sha256).digest()
        nonce = os.urandom(16)
        out.write(header + b" " + b64(mac) + b"\n" + nonce)
        self._out = out
        self._aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
        self._pending = bytearray()
        self._counter = 0
        self._closed = False

    def write(self, data: bytes) -> int:
        size = len(data)
        view = memoryview(data)
        if self._pending:  # fill the held-back chunk first
            take = min(CHUNK - len(self._pending), size)
            self._pending += view[:take]
            view = view[take:]
            if not view:
                return size
            self._emit(memoryview(bytes(self._pending)), 1)
            self._pending.clear()
        complete = (len(view) - 1) // CHUNK  # at least one byte stays for the last chunk
        self._emit(view, complete)
        self._pending += view[complete * CHUNK :]
        return size

    def _emit(self, view: memoryview, chunks: int) -> None:
        encrypt, out, counter = self._aead.encrypt, self._out, self._counter
        for start in range(0, chunks * CHUNK, CHUNK):
            out.write(encrypt(_nonce(counter, False), view[start : start + CHUNK], None))
            counter += 1
        self._counter = counter

    def close(self) -> None:
        """Write the final chunk (flagged last; empty only when nothing was written)."""
        if not self._closed:
            self._closed = True
            self._out.write(
                self._aead.encrypt(_nonce(self._counter, True), bytes(self._pending), None)
            )


def x25519_public_key(recipient: str) -> bytes:
    """The 32 bytes of an ``age1…`` recipient (Bech32, BIP 173, checksum checked)."""
    return _bech32_key(recipient, "age", "recipient")


def x25519_secret_key(identity: str) -> bytes:
    """The 32 bytes of an ``AGE-SECRET-KEY-1…`` identity (Bech32, checksum checked)."""
    return _bech32_key(identity, "age-secret-key-", "identity")


def _bech32_key(text: str, prefix: str, what: str) -> bytes:
    hrp, data = _bech32_decode(text.strip().lower())
    if hrp != prefix or len(data) != 32:
        raise ValueError(f"not an age X25519 {what}")
    return data


def _x25519_stanza(recipient: bytes, file_key: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    if shared == bytes(32):  # a low-order recipient key (age refuses it too)
        raise ValueError("an invalid X25519 recipient")
    wrap = _hkdf(shared, share + recipient, X25519_LABEL)
    body = ChaCha20Poly1305(wrap).encrypt(bytes(12), file_key, None)
    return b"-> X25519 " + b64(share) + b"\n" + _body(body)


def _body(data: bytes) -> bytes:
    """A stanza body: base64 in lines of 64 columns, the last one shorter (maybe empty)."""
    text = b64(data)
    lines = [text[i : i + COLUMNS] for i in range(0, len(text), COLUMNS)]
    if not lines or len(lines[-1]) == COLUMNS:
        lines.append(b"")
    return b"\n".join(lines) + b"\n"


def stream_into(reader: Reader, writer: AgeWriter) -> None:
    """Everything ``reader`` yields, through ``writer``, which is then closed."""
    while chunk := reader.read(CHUNK * 16):
        writer.write(chunk)
    writer.close()


def _bech32_decode(text: str) -> tuple[str, bytes]:
    hrp, sep, rest = text.rpartition("1")
    if not sep or not hrp or len(rest) < 6 or any(c not in BECH32 for c in rest):
        raise ValueError("not Bech32")
    values = [BECH32.index(c) for c in rest]
    if _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + values) != 1:
        raise ValueError("a Bech32 checksum that does not match")
    bits, acc, out = 0, 0, bytearray()
    for value in values[:-6]:
        acc, bits = (acc << 5) | value, bits + 5
        if bits >= 8:
            bits -= 8
            out.append((acc >> bits) & 0xFF)
    if bits >= 5 or acc & ((1 << bits) - 1):
        raise ValueError("Bech32 padding that is not zero")
    return hrp, bytes(out)


def _polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for i, g in enumerate(generator):
            checksum ^= g if (top >> i) & 1 else 0
    return checksum


def _read_line(reader: Reader) -> bytes:
    """One header line with its newline; the header is short, so byte reads are fine."""
    line = bytearray()
    while not line.endswith(b"\n"):
        byte = reader.read(1)
        if not byte:
            raise PackageInvalid("the package is truncated (incomplete header)")
        line += byte
        if len(line) > MAX_HEADER_LINE:
            raise bad_header("line too long")
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
            raise bad_header("stanza")
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
        raise bad_header("a scrypt stanza must be alone")
    args, body = stanzas[0]
    if len(args) != 3 or len(body) != 32:
        raise bad_header("scrypt stanza")
    salt = unb64(args[1], "salt")
    factor = args[2].decode("ascii", "replace")
    if len(salt) != 16 or not factor.isdigit() or factor.startswith("0"):
        raise bad_header("scrypt parameters")
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
    _payload(reader, writer, _file_key(stanzas, passphrase), mac, covered)


def decrypt_x25519_io(reader: Reader, writer: Writer, identities: list[str]) -> None:
    """Decrypt an age file to X25519 recipients with one of ``identities``
    (``AGE-SECRET-KEY-1…``), as :func:`decrypt_io` does for a passphrase."""
    stanzas, mac, covered = read_header(reader)
    _payload(reader, writer, _x25519_file_key(stanzas, identities), mac, covered)


def _x25519_file_key(stanzas: list[tuple[list[bytes], bytes]], identities: list[str]) -> bytes:
    if any(args[:1] == [b"scrypt"] for args, _ in stanzas):
        raise DecryptionFailed("this package is protected by a passphrase, not to recipients")
    secrets = [X25519PrivateKey.from_private_bytes(x25519_secret_key(i)) for i in identities]
    keys = [(key, key.public_key().public_bytes_raw()) for key in secrets]
    for args, body in stanzas:
        if args[:1] != [b"X25519"]:
            continue  # another recipient type: not ours to open (age skips it too)
        if len(args) != 2 or len(body) != 32:
            raise bad_header("X25519 stanza")
        share = unb64(args[1], "X25519 share")
        if len(share) != 32:
            raise bad_header("X25519 share")
        for key, ours in keys:
            shared = key.exchange(X25519PublicKey.from_public_bytes(share))
            if shared == bytes(32):
                raise bad_header("low-order X25519 share")
            wrap = _hkdf(shared, share + ours, X25519_LABEL)
            try:
                return ChaCha20Poly1305(wrap).decrypt(bytes(12), body, None)
            except InvalidTag:
                continue
    raise DecryptionFailed(NO_MATCHING_IDENTITY)


def _payload(reader: Reader, writer: Writer, file_key: bytes, mac: bytes, covered: bytes) -> None:
    """Check the header's MAC, then decrypt the STREAM payload chunk by chunk."""
    expected = hmac.new(_hkdf(file_key, None, b"header"), covered, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise bad_header("MAC mismatch")
    nonce = read_full(reader, 16)
    if len(nonce) != 16:
        raise PackageInvalid("the package is truncated (no payload)")
    aead = ChaCha20Poly1305(_hkdf(file_key, nonce, b"payload"))
    counter = 0
    chunk = read_full(reader, ENC_CHUNK)
    while True:
        following = read_full(reader, ENC_CHUNK) if len(chunk) == ENC_CHUNK else b""
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
