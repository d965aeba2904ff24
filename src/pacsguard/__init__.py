"""pacsguard: stop medical images and clinical data from leaking.

Every capability is one call away::

    from pacsguard import deid, sample, keys
    key = keys.load_key(path)
    report = deid.deidentify([input_dir], output_dir, key=key)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pacsguard.core.errors import PacsguardError

if TYPE_CHECKING:
    from pacsguard.core import keys

__version__ = "0.1.0"
__all__ = ["PacsguardError", "__version__", "keys"]


def __getattr__(name: str) -> object:
    # Imported on first use: `pacsguard --help` must not pay for what it does not run.
    if name == "keys":
        return importlib.import_module("pacsguard.core.keys")
    raise AttributeError(f"module 'pacsguard' has no attribute {name!r}")
