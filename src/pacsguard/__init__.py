"""pacsguard: stop medical images and clinical data from leaking.

Every capability is one call away::

    from pacsguard import deid, sample, keys
    key = keys.load_key(path)
    report = deid.deidentify([input_dir], output_dir, key=key)
"""

from pacsguard.core import keys
from pacsguard.core.errors import PacsguardError

__version__ = "0.1.0"
__all__ = ["PacsguardError", "__version__", "keys"]
