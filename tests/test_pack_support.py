"""Shared fixtures of the pack tests: a small clean de-identified tree, keys, helpers.

The tree is written with pydicom directly (no dependency on the deid engine) together
with a ``pacsguard-deid.json`` as docs/contracts.md describes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyrage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from pacsguard.pack import new_identity, new_signing_key

PATIENT = "PGABCDEFGHIJKLMNOP"
WORK_FACTOR = 10  # scrypt: fast in tests; the CLI uses age's 18


def write_dicom(path: Path, index: int, rows: int = 16) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"2.25.{1000 + index}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "2.25.11"
    ds.SeriesInstanceUID = "2.25.12"
    ds.PatientID = PATIENT
    ds.PatientName = PATIENT
    ds.PatientIdentityRemoved = "YES"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = rows
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.PixelData = (np.arange(rows * rows, dtype=np.uint16) % 7).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)


def deid_manifest(root: Path, *, quarantine: int = 0, pending: int = 0) -> None:
    """(Re)write ``pacsguard-deid.json`` for the files now under ``root``."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "pacsguard-deid.json")
    payload = {
        "tool": "pacsguard",
        "version": "0.1.0",
        "profile": {"options": ["clean-descriptors"], "strict": True, "policy_sha256": None},
        "counts": {
            "inputs": len(files) + quarantine + pending,
            "output": len(files),
            "quarantine": quarantine,
            "pending": pending,
        },
        "files": [
            {
                "path": p.relative_to(root).as_posix(),
                "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                "size": p.stat().st_size,
            }
            for p in files
        ],
    }
    (root / "pacsguard-deid.json").write_text(json.dumps(payload, indent=2))


def make_tree(root: Path, count: int = 3, rows: int = 16) -> Path:
    for i in range(count):
        write_dicom(root / PATIENT / "2.25.11" / "2.25.12" / f"2.25.{1000 + i}.dcm", i, rows)
    deid_manifest(root)
    return root


def clean_tree(tmp_path: Path) -> Path:
    """A clean de-identified tree (checked by the real verifier when packed)."""
    return make_tree(tmp_path / "deid-out")


@dataclass(frozen=True)
class Keys:
    identity: Path
    recipient: str
    signing: Path
    signing_pub: Path


def make_keys(tmp_path: Path) -> Keys:
    folder = tmp_path / "keys"
    identity = folder / "me.key"
    recipient = new_identity(identity)
    signing = folder / "sender.key"
    return Keys(identity, recipient, signing, new_signing_key(signing))


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def no_leftovers(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


def decrypt_to_members(package: Path, identity: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """What an attacker holding the plaintext sees: the tar members (test packages are small)."""
    ident = pyrage.x25519.Identity.from_str(identity.read_text().splitlines()[-1])
    plain = pyrage.decrypt(package.read_bytes(), [ident])
    with tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]


def reencrypt(members: list[tuple[tarfile.TarInfo, bytes]], recipient: str, out: Path) -> Path:
    """Re-pack (possibly altered) members and encrypt them to ``recipient``, as anyone can."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    rcpt = pyrage.x25519.Recipient.from_str(recipient)
    out.write_bytes(pyrage.encrypt(buffer.getvalue(), [rcpt]))
    return out
