"""Pre-flight checks before a folder may travel: what ``pack`` refuses without ``--force``.

1. The de-identification manifest (``pacsguard-deid.json``) must exist, show no
   quarantined or unprocessed input, and list exactly the files in the folder.
2. ``pacsguard verify`` must find nothing (imported lazily: see :func:`run_verify`), unless
   ``deid --verify`` already checked every output and the packer can match each file's
   SHA-256 against the manifest as it streams (:func:`verified_by_deid`).

Problems are short sentences with counts and kinds only (no file name, no value): when
the sender forces, they are recorded in the package manifest, which travels.
"""

from __future__ import annotations

import importlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from pacsguard import __version__
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.pack.tree import SourceFile, list_files


def read_deid_manifest(directory: Path) -> dict[str, Any] | None:
    """The parsed ``pacsguard-deid.json``, or None when absent or unreadable."""
    try:
        data = json.loads((directory / DEID_MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def deid_settings(deid: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the package manifest records of the de-identification: version, profile, counts."""
    if deid is None:
        return None
    return {key: deid.get(key) for key in ("tool", "version", "profile", "counts")}


def expected_hashes(deid: dict[str, Any] | None) -> dict[str, str]:
    """path -> sha256 as the de-identification manifest lists them."""
    listed = deid.get("files") if deid else None
    if not isinstance(listed, list):
        return {}
    return {
        str(item["path"]): str(item["sha256"]).lower()
        for item in listed
        if isinstance(item, dict) and "path" in item and "sha256" in item
    }


def check_deid_manifest(directory: Path, files: list[SourceFile]) -> list[str]:
    if not (directory / DEID_MANIFEST_NAME).is_file():
        return [f"no de-identification manifest ({DEID_MANIFEST_NAME}): not a deid output"]
    deid = read_deid_manifest(directory)
    if deid is None:
        return [f"the de-identification manifest ({DEID_MANIFEST_NAME}) is not valid JSON"]
    problems: list[str] = []
    counts = deid.get("counts")
    if not isinstance(counts, dict):
        problems.append("the de-identification manifest holds no counts")
        counts = {}
    for key, words in (("quarantine", "quarantined"), ("pending", "unprocessed (pending)")):
        value = counts.get(key, 0)
        if not isinstance(value, int) or value > 0:
            problems.append(f"the de-identification manifest shows {value} {words} input(s)")
    problems.extend(_compare_listing(deid, files))
    return problems


def _compare_listing(deid: dict[str, Any], files: list[SourceFile]) -> list[str]:
    listed = deid.get("files")
    if not isinstance(listed, list):
        return ["the de-identification manifest lists no files"]
    sizes = {str(i.get("path")): i.get("size") for i in listed if isinstance(i, dict)}
    present = {f.name: f.size for f in files if f.name != DEID_MANIFEST_NAME}
    problems: list[str] = []
    extra = len(present.keys() - sizes.keys())
    missing = len(sizes.keys() - present.keys())
    resized = sum(1 for name, size in present.items() if name in sizes and sizes[name] != size)
    if extra:
        problems.append(f"{extra} file(s) in the folder are not in the de-identification manifest")
    if missing:
        problems.append(f"{missing} file(s) of the de-identification manifest are missing")
    if resized:
        problems.append(f"{resized} file(s) differ in size from the de-identification manifest")
    return problems


def run_verify(directory: Path, *, ocr: bool = True, strict: bool = False) -> list[str]:
    """Run ``pacsguard.verify.verify`` (docs/contracts.md); an identifier finding is a
    problem, and under ``strict`` a review finding too.

    Imported lazily, through the contract only, so this module does not depend on
    the verifier's internals; a missing verifier is itself a problem (fail closed).
    """
    try:
        verify = importlib.import_module("pacsguard.verify").verify
    except (ImportError, AttributeError):
        return ["the verifier (pacsguard.verify) is not available: the folder was not verified"]
    report = verify(directory, ocr=ocr, strict=strict)
    if report.files_checked == 0 and not report.findings:
        return ["pacsguard verify found no DICOM file to check"]
    if report.clean:
        return []
    failing = report.failing
    kinds = Counter(_kind(finding) for finding in failing)
    detail = ", ".join(f"{kind}: {n}" for kind, n in sorted(kinds.items()))
    return [f"pacsguard verify flags {len(failing)} finding(s) ({detail})"]


def _kind(finding: object) -> str:
    kind = getattr(finding, "kind", "finding")
    return str(getattr(kind, "value", kind))


def verified_by_deid(deid: dict[str, Any] | None, files: list[SourceFile]) -> bool:
    """True when ``deid --verify`` of this same version checked every output before it was
    committed, and the manifest gives each file's SHA-256: the packer then compares every
    file's hash as it streams it (a changed file refuses the package), and verifying the
    tree a second time would find what was already found."""
    if deid is None or deid.get("version") != __version__:
        return False
    profile = deid.get("profile")
    if not isinstance(profile, dict) or profile.get("verify") is not True:
        return False
    hashes = expected_hashes(deid)
    present = {f.name for f in files if f.name != DEID_MANIFEST_NAME}
    return bool(present) and present <= hashes.keys()


def deid_reviews(deid: dict[str, Any] | None) -> int | None:
    """How many outputs ``deid --verify`` wrote with review findings; None when unknown."""
    counts = deid.get("counts") if deid else None
    value = counts.get("review") if isinstance(counts, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def preflight(
    directory: Path,
    *,
    ocr: bool = True,
    strict: bool = False,
    files: list[SourceFile] | None = None,
) -> list[str]:
    """Every reason not to send ``directory``; empty when it may travel. A tree that
    ``deid --verify`` made is checked by its hashes instead of a second verify; under
    ``strict`` its review count must be 0 (a tree that does not say runs verify --strict)."""
    listing = list_files(directory) if files is None else files
    problems = check_deid_manifest(directory, listing)
    deid = read_deid_manifest(directory)
    if not problems and verified_by_deid(deid, listing):
        if not strict:
            return problems
        reviews = deid_reviews(deid)
        if reviews == 0:
            return problems
        if reviews is not None:
            return [f"deid --verify wrote {reviews} output(s) with review findings (--strict)"]
    return problems + run_verify(directory, ocr=ocr, strict=strict)
