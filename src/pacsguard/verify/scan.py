"""Verify a folder (or a file, or a zip archive) of DICOM outputs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from pacsguard.core.io import InputItem, iter_inputs
from pacsguard.core.manifest import DEID_MANIFEST_NAME
from pacsguard.verify.check import inspect_dataset
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


@dataclass
class Tally:
    """What checking some files found (a batch, on a cluster worker or here)."""

    files_checked: int = 0
    files_skipped: int = 0
    ocr_checked: int = 0
    findings: list[Finding] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        self.files_checked += other.files_checked
        self.files_skipped += other.files_skipped
        self.ocr_checked += other.ocr_checked
        self.findings += other.findings


def check_items(
    items: Iterable[InputItem],
    root: Path,
    known: KnownValues | None,
    *,
    ocr: bool,
    options: list[str],
) -> Tally:
    """Check each of ``items`` (found under ``root``) for residual identifiers."""
    tally = Tally()
    for item in items:
        name = relative_label(item, root)
        try:
            with quiet():
                ds = read_dicom(item)
        except UnreadableError as exc:
            tally.files_checked += 1
            tally.findings.append(Finding(name, "file", "unreadable", str(exc)))
            continue
        except Exception as exc:  # a DICOM file we cannot parse is not proven clean
            tally.files_checked += 1
            tally.findings.append(Finding(name, "file", "unreadable", exc.__class__.__name__))
            continue
        if ds is None:
            tally.files_skipped += 1
            continue
        tally.files_checked += 1
        try:
            with quiet():
                checked = inspect_dataset(ds, known=known, ocr=ocr, options=options)
        except Exception as exc:  # a malformed value: fail closed, name the file only
            tally.findings.append(Finding(name, "dataset", "unreadable", exc.__class__.__name__))
            continue
        tally.ocr_checked += int(checked.pixels_read)
        tally.findings += [f.with_file(name) for f in checked.findings]
    return tally


def verify(
    path: Path,
    *,
    mapping: Path | None = None,
    ocr: bool = True,
    options: Iterable[str] | None = None,
    cluster: str | None = None,
) -> VerifyReport:
    """Check every DICOM file under ``path`` for residual identifiers.

    ``mapping``: the re-identification CSV (``kind,original,pseudonym``) whose originals must
    not reappear. ``options``: the de-identification options the output was made with; read
    from the output's ``pacsguard-deid.json`` when not given. ``cluster``: a Dask scheduler
    address or ``local[:N]`` (``pacsguard.verify.cluster``); the files are checked there,
    in batches, and the findings come back in the order of a local run.
    """
    chosen = list(options) if options is not None else deid_options(path)
    report = VerifyReport(root=str(path), ocr=ocr, mapping_used=mapping is not None)
    if cluster is not None:
        from pacsguard.verify.cluster import verify_on_cluster

        tally = verify_on_cluster(cluster, path, mapping=mapping, ocr=ocr, options=chosen)
    else:
        known = KnownValues.from_mapping(mapping) if mapping is not None else None
        tally = check_items(iter_inputs([path]), path, known, ocr=ocr, options=chosen)
    report.files_checked += tally.files_checked
    report.files_skipped += tally.files_skipped
    report.ocr_checked += tally.ocr_checked
    report.findings += tally.findings
    return report
