"""pydicom's validation messages, warnings and log lines quote element values: pacsguard keeps
them out of every log, in every process that reads DICOM with it."""

from __future__ import annotations

import logging
import warnings

import pydicom.config


def quiet_pydicom() -> None:
    """No validation (its messages are all it adds: a value reads and writes the same without
    it), no log line below CRITICAL, no warning from pydicom's modules. Idempotent."""
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", module=r"pydicom(\..*)?")
