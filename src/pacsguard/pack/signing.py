"""Ed25519 signing keys: the sender signs the package manifest, the recipient checks it.

Private key: PKCS#8 PEM, mode 0600 (an unencrypted OpenSSH ed25519 key is accepted too).
Public key: SubjectPublicKeyInfo PEM in ``<key>.pub`` (an ``ssh-ed25519`` line is accepted
too). The signature is the raw 64 bytes over the exact manifest bytes, so that
``openssl pkeyutl -verify -pubin -inkey signer.pub -rawin -in PACSGUARD-MANIFEST.json
-sigfile PACSGUARD-MANIFEST.sig`` checks it without pacsguard.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pacsguard.core.keys import check_private, write_private_file
from pacsguard.pack.errors import KeyFileError, SignatureInvalid

ENV_SIGNING_KEY_FILE = "PACSGUARD_SIGNING_KEY_FILE"


def new_signing_key(path: Path) -> Path:
    """Write a private key at ``path`` (mode 0600) and its public key at ``path.pub``."""
    public_path = path.with_name(path.name + ".pub")
    if public_path.exists():
        raise KeyFileError(f"{public_path} already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)
    public_path.write_bytes(public_pem(key.public_key()))
    return public_path


def public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    """``SHA256:<base64>`` of the raw public key (as OpenSSH prints fingerprints)."""
    digest = hashlib.sha256(raw_public(key)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def signing_key_path(path: Path | None) -> Path | None:
    """The signing key to use: ``path``, else ``PACSGUARD_SIGNING_KEY_FILE``, else none."""
    if path is None and os.environ.get(ENV_SIGNING_KEY_FILE):
        return Path(os.environ[ENV_SIGNING_KEY_FILE])
    return path


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        raise KeyFileError(f"signing key {path} does not exist")
    check_private(path)
    data = path.read_bytes()
    key: object
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not an unencrypted Ed25519 private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    if not path.is_file():
        raise KeyFileError(f"signer key {path} does not exist")
    data = path.read_bytes()
    key: object
    try:
        if data.lstrip().startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(data.strip())
        else:
            key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not an Ed25519 public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return key


def public_from_raw(raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureInvalid("the manifest names a malformed signer key") from None


def verify(key: Ed25519PublicKey, signature: bytes, message: bytes) -> None:
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise SignatureInvalid(
            "the manifest signature does not verify: the package was altered "
            "or signed by another key"
        ) from None
