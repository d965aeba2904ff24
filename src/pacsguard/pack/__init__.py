"""pacsguard.pack: encrypted, signed, verifiable transfer packages in the standard age format.

::

    from pacsguard.pack import pack, unpack
    result = pack(Path("deid-out"), Path("study.age"), recipients=["age1…"],
                  signing_key=Path("sender.key"))
    opened = unpack(Path("study.age"), Path("received"), identity=Path("me.key"),
                    verify_signer=Path("sender.key.pub"))

A package is ``age(tar(files…, PACSGUARD-MANIFEST.json[, PACSGUARD-MANIFEST.sig]))``:
``age -d -i KEY PACKAGE | tar x`` opens it without pacsguard.
"""

from pacsguard.pack.agekeys import load_identities, new_identity, parse_recipient
from pacsguard.pack.errors import (
    DecryptionFailed,
    PackageInvalid,
    PackError,
    PackRefused,
    SignatureInvalid,
)
from pacsguard.pack.manifest import MANIFEST_NAME, SIGNATURE_NAME
from pacsguard.pack.packer import PackResult, pack
from pacsguard.pack.preflight import preflight
from pacsguard.pack.signing import new_signing_key
from pacsguard.pack.unpacker import UnpackResult, needs_passphrase, unpack
from pacsguard.pack.volumes import parse_size

__all__ = [
    "MANIFEST_NAME",
    "SIGNATURE_NAME",
    "DecryptionFailed",
    "PackError",
    "PackRefused",
    "PackResult",
    "PackageInvalid",
    "SignatureInvalid",
    "UnpackResult",
    "load_identities",
    "needs_passphrase",
    "new_identity",
    "new_signing_key",
    "pack",
    "parse_recipient",
    "parse_size",
    "preflight",
    "unpack",
]
