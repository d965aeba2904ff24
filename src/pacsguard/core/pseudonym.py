"""The one keyed pseudonym family shared by images and tables.

``h(domain, value) = HMAC-SHA256(key, domain || 0x00 || normalise(value))``.
Every pseudonym (patient IDs and names, accession numbers, UIDs, date offsets)
derives from it, so a table row and a DICOM study of the same patient get the
same pseudonym under the same key, on any machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache

from pacsguard.core.keys import ProjectKey

PATIENT_PREFIX = "PG"
DEFAULT_SHIFT_RANGE = (-1460, -365)


def normalise(value: str) -> str:
    """The canonical form of an identifier: DICOM padding and outer spaces gone, upper case."""
    return value.strip(" \x00\t\r\n").upper()


def normalise_uid(value: str) -> str:
    """UIDs are case- and content-exact; only DICOM padding and spaces go."""
    return value.strip(" \x00")


@dataclass(frozen=True)
class Pseudonymizer:
    """Keyed, deterministic pseudonyms. Immutable; safe to share across processes."""

    key: ProjectKey
    shift_range: tuple[int, int] = DEFAULT_SHIFT_RANGE

    def __post_init__(self) -> None:
        low, high = self.shift_range
        if low > high:
            raise ValueError("date shift range: minimum is above maximum")
        if low == high == 0:
            raise ValueError("date shift range must allow a non-zero offset")

    def digest(self, domain: str, value: str) -> bytes:
        return _digest(self.key.material, domain, value)

    def token(self, domain: str, value: str, length: int = 16) -> str:
        """Upper-case base32 text of the digest, ``length`` characters (no padding)."""
        return _token(self.key.material, domain, normalise(value))[:length]

    def patient_id(self, patient_id: str) -> str:
        """``PG`` + 16 base32 characters (80 bits): valid for LO, readable, stable."""
        return PATIENT_PREFIX + self.token("patient-id", patient_id)

    def patient_name(self, patient_id: str) -> str:
        """A PN whose family name is the patient's pseudonymous ID: one pseudonym per patient."""
        return self.patient_id(patient_id)

    def accession(self, accession: str) -> str:
        """A pseudonymous accession number (SH, at most 16 characters)."""
        return "A" + self.token("accession", accession, 15)

    def identifier(self, domain: str, value: str, length: int = 16) -> str:
        """Any other identifier (IPP, NDA, stay numbers, …) in its own domain."""
        return self.token(domain, value, length)

    def uid(self, uid: str) -> str:
        """``2.25.<int>`` from 128 bits of the keyed digest: a valid UID of at most 44 chars."""
        return _uid(self.key.material, normalise_uid(uid))

    def date_offset_days(self, patient_id: str) -> int:
        """The patient's keyed date shift in days, within ``shift_range``, never zero."""
        low, high = self.shift_range
        span = high - low + 1
        raw = int.from_bytes(self.digest("date-offset", normalise(patient_id))[:8], "big")
        offset = low + raw % span
        if offset == 0:
            offset = high if high != 0 else low
        return offset


def _hmac(material: bytes, domain: str, value: str) -> bytes:
    message = domain.encode("ascii") + b"\x00" + value.encode("utf-8")
    return hmac.new(material, message, hashlib.sha256).digest()


# Pure: every file of a patient asks for the same few (UIDs, each new, bypass it).
_digest = lru_cache(maxsize=1 << 14)(_hmac)


@lru_cache(maxsize=1 << 14)
def _token(material: bytes, domain: str, value: str) -> str:
    return base64.b32encode(_digest(material, domain, value)).decode("ascii")


@lru_cache(maxsize=1 << 16)
def _uid(material: bytes, uid: str) -> str:
    return "2.25." + str(int.from_bytes(_hmac(material, "uid", uid)[:16], "big"))
