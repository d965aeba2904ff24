"""Verify one dataset: its header at every depth and, for instances at risk, its pixels."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from pacsguard.verify.elements import check_elements
from pacsguard.verify.findings import Finding
from pacsguard.verify.known import KnownValues
from pacsguard.verify.policy import Policy
from pacsguard.verify.risk import at_risk


@dataclass
class DatasetCheck:
    findings: list[Finding]
    pixels_read: bool
    thumbnails: dict[int, bytes] = field(default_factory=dict)  # frame -> PNG with boxes


def inspect_dataset(
    ds: Dataset,
    *,
    known: KnownValues | None = None,
    ocr: bool = True,
    location_prefix: str = "",
    options: Iterable[str] = (),
    ner: bool = True,
) -> DatasetCheck:
    policy = Policy.from_options(options)
    findings = check_elements(ds, known, policy, location_prefix, ner=ner)
    read = ocr and at_risk(ds)
    thumbnails: dict[int, bytes] = {}
    if read:
        from pacsguard.verify.pixels import check_pixels  # the OCR stack, only when needed

        findings += check_pixels(ds, known, policy, location_prefix, thumbnails)
    return DatasetCheck(findings, read, thumbnails)


def verify_dataset(
    ds: Dataset,
    *,
    known: KnownValues | None = None,
    ocr: bool = True,
    location_prefix: str = "",
    options: Iterable[str] = (),
) -> list[Finding]:
    """Findings in ``ds``, both classes (empty list: clean even under ``--strict``; keep
    those whose ``finding_class`` is ``identifier`` for the default gate). Findings name no
    file: the caller's.

    ``known``: identifying values of the source (``KnownValues.from_dataset(source)``);
    ``options``: the de-identification options applied (they widen what is legitimate);
    ``ocr``: read the pixels of instances at risk.
    """
    return inspect_dataset(
        ds, known=known, ocr=ocr, location_prefix=location_prefix, options=options
    ).findings
