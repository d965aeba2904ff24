"""Verify a folder (or a file, or a zip archive) of DICOM outputs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pacsguard.core.io import InputItem, iter_inputs
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.verify.check import inspect_dataset
from pacsguard.verify.evidence import TreeEvidence
from pacsguard.verify.findings import Finding, VerifyReport
from pacsguard.verify.known import KnownValues

HEADER_GROUPS = (0x0002, 0x0008, 0x0010, 0x0020, 0x0028)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """pydicom's warnings and log lines quote element values: keep them out of every log."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


class UnreadableError(Exception):
    """A DICOM file (DICM prefix) that does not parse into an instance."""


def deid_options(root: Path) -> list[str]:
    """The options an output tree was made with, from its manifest (none when absent)."""
    manifest = root / DEID_MANIFEST_NAME if root.is_dir() else None
    if manifest is None or not manifest.is_file():
        return []
    try:
        doc = json.loads(manifest.read_text(encoding="utf-8"))
        options = doc.get("profile", {}).get("options", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [str(o) for o in options] if isinstance(options, list) else []


def read_dicom(item: InputItem) -> Dataset | None:
    """The dataset, or None when the file is not DICOM; raises when DICOM but unreadable."""
    data = item.read_bytes()
    if data[128:132] == b"DICM":
        ds = pydicom.dcmread(io.BytesIO(data))
        for _ in ds.iterall():  # parse every element now: a broken one raises here
            pass
        if not str(ds.get("SOPInstanceUID", "") or "").strip():
            raise UnreadableError("no SOP Instance UID")
        return ds
    if item.label.endswith(DEID_MANIFEST_NAME) or len(data) < 8:
        return None
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        tags = [int(elem.tag) for elem in ds]
    except (InvalidDicomError, ValueError, EOFError, KeyError, OSError):
        return None
    # A forced read of a non-DICOM file yields few, odd tags: demand real header groups.
    if sum((t >> 16) in HEADER_GROUPS for t in tags) < 3:
        return None
    return ds


def relative_label(item: InputItem, root: Path) -> str:
    label = Path(item.label.split("!", 1)[0])
    try:
        rel = label.resolve().relative_to(
            root.resolve() if root.is_dir() else root.resolve().parent
        )
    except ValueError:
        rel = Path(label.name)
    suffix = "!" + item.label.split("!", 1)[1] if "!" in item.label else ""
    return rel.as_posix() + suffix


Progress = Callable[[int, int], None]  # (files done, files in all)


def verify(
    path: Path,
    *,
    mapping: Path | None = None,
    ocr: bool = True,
    options: Iterable[str] | None = None,
    strict: bool = False,
    ner: bool = True,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check every DICOM file under ``path`` for residual identifiers.

    ``mapping``: the re-identification CSV (``kind,original,pseudonym``) whose originals must
    not reappear. ``options``: the de-identification options the output was made with; read
    from the output's ``pacsguard-deid.json`` when not given. ``strict``: review findings
    fail too. ``ner``: spaCy settles the person names the lexicon rules leave in doubt.
    ``progress(done, total)`` is called after each file.
    """
    known = KnownValues.from_mapping(mapping) if mapping is not None else None
    chosen = list(options) if options is not None else deid_options(path)
    report = VerifyReport(root=str(path), ocr=ocr, mapping_used=mapping is not None)
    report.strict = strict
    evidence = TreeEvidence()
    items = list(iter_inputs([path]))
    for done, item in enumerate(items, 1):
        _verify_item(item, path, known, chosen, ocr, ner, report, evidence)
        if progress is not None:
            progress(done, len(items))
    report.findings = evidence.weigh(report.findings)
    report.patients = evidence.patients
    return report


def _verify_item(
    item: InputItem,
    root: Path,
    known: KnownValues | None,
    options: list[str],
    ocr: bool,
    ner: bool,
    report: VerifyReport,
    evidence: TreeEvidence,
) -> None:
    name = relative_label(item, root)
    try:
        with quiet():
            ds = read_dicom(item)
    except UnreadableError as exc:
        report.files_checked += 1
        report.findings.append(Finding(name, "file", "unreadable", str(exc)))
        return
    except Exception as exc:  # a DICOM file we cannot parse is not proven clean
        report.files_checked += 1
        report.findings.append(Finding(name, "file", "unreadable", exc.__class__.__name__))
        return
    if ds is None:
        report.files_skipped += 1
        return
    report.files_checked += 1
    key, patient, study, series = evidence.groups(ds)
    try:
        with quiet():
            checked = inspect_dataset(ds, known=known, ocr=ocr, options=options, ner=ner)
    except Exception as exc:  # a malformed value: fail closed, name the file only
        report.findings.append(
            Finding(name, "dataset", "unreadable", exc.__class__.__name__, patient=patient)
        )
        return
    report.ocr_checked += int(checked.pixels_read)
    found = [
        replace(f, file=name, patient=patient, study=study, series=series) for f in checked.findings
    ]
    evidence.note(key, found)
    report.findings += found
    for frame, png in checked.thumbnails.items():
        report.thumbnails[(name, frame)] = png
