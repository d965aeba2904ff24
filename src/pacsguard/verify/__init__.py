"""pacsguard.verify: prove that nothing identifying leaves.

- ``verify(path, mapping=None, ocr=True) -> VerifyReport``: every DICOM file under ``path``.
- ``verify_dataset(ds, known=None, ocr=True, location_prefix="", options=()) -> list[Finding]``:
  one dataset, for ``deid --verify`` before an output is committed.
- ``KnownValues``: the source's identifying values (``from_dataset``, ``from_mapping``).
"""

from pacsguard.verify.check import verify_dataset
from pacsguard.verify.findings import KINDS, Finding, VerifyReport
from pacsguard.verify.known import KnownValues
from pacsguard.verify.scan import verify

__all__ = ["KINDS", "Finding", "KnownValues", "VerifyReport", "verify", "verify_dataset"]
