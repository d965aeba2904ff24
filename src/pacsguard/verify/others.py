"""What a tree holds besides DICOM headers: every file's name, and the files that are not
DICOM. A gate that reads only DICOM passed a tree whose ``notes.txt`` named the patient,
or whose folder was "DUPONT Jean né le 14-04-1974".

- Each part of a file's path (folders, then the name without its extension) is checked as
  text: known values and identifier shapes. Parts that are UIDs or pseudonyms, as deid
  names its outputs, are not text.
- A file that is not DICOM is read as text when it is (UTF-8, UTF-16 with its byte order
  mark, else Latin-1 when it holds no control bytes), line by line with the same detectors.
  Anything else (an archive, an image, a PDF) cannot be proven clean: it is reviewed.
"""

from __future__ import annotations

import codecs
import re

from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.verify.elements import shapes_of
from pacsguard.verify.findings import REVIEW, Finding
from pacsguard.verify.known import KnownValues
from pacsguard.verify.matching import known_in_text
from pacsguard.verify.policy import Policy, is_pseudonym

MAX_TEXT = 16 << 20  # a larger file that is not DICOM is reviewed, not read
_UID = re.compile(r"[0-9.]+")
_NAME_SEPARATORS = re.compile(r"[_.\-+]+")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip


def _text_findings(
    text: str, location: str, known: KnownValues | None, policy: Policy, ner: bool
) -> list[Finding]:
    found: list[Finding] = []
    if known is not None:
        found += [
            Finding("", location, "known-value", k, text)
            for k in known_in_text(text, known, policy)
        ]
    found += [Finding("", location, h.kind, h.detail, h.text) for h in shapes_of(text, True, ner)]
    return found


def name_findings(name: str, known: KnownValues | None, policy: Policy) -> list[Finding]:
    """The identifiers in the parts of ``name`` (a path relative to the tree, '/'-separated;
    a zip member after '!')."""
    parts = [p for p in re.split(r"[/!]", name) if p]
    if parts:
        stem, dot, _ = parts[-1].rpartition(".")
        parts[-1] = stem if dot and stem else parts[-1]
    found: list[Finding] = []
    for part in parts:
        if _UID.fullmatch(part) or is_pseudonym(part) or part == DEID_MANIFEST_NAME:
            continue
        text = _NAME_SEPARATORS.sub(" ", part).strip()
        if text:
            found += _text_findings(text, "file name", known, policy, ner=False)
    return found


def as_text(data: bytes) -> str | None:
    """``data`` as text, or None when it is not text in an encoding a person exports."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                return None
    if _CONTROL.search(data):
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def is_deid_account(name: str) -> bool:
    """deid's own ``pacsguard-deid.json`` (hashes, pseudonymous paths): not text a person
    wrote, neither read nor counted among the other files."""
    return re.split(r"[/!]", name)[-1] == DEID_MANIFEST_NAME


def other_file_findings(
    name: str, data: bytes | None, known: KnownValues | None, policy: Policy, ner: bool = False
) -> list[Finding]:
    """The findings of a file that is not DICOM (its name apart); ``data`` None: a file
    over ``MAX_TEXT``, not read."""
    if is_deid_account(name):
        return []
    text = as_text(data) if data is not None and len(data) <= MAX_TEXT else None
    if text is None:
        reason = "neither DICOM nor text (an archive, an image, a document): not read"
        return [Finding("", "file", "not-checked", "", "", REVIEW, reason)]
    found: list[Finding] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            found += _text_findings(line, f"line {number}", known, policy, ner)
    return found
