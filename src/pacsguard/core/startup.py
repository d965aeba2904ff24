"""What the ``pacsguard`` command sets up before the libraries it runs are imported.

pydicom imports, on its own import, modules that a de-identification never uses: ``requests``,
``tqdm`` and ``urllib.request`` for downloading its test data (about 100 ms of CPU together).
They are deferred here with the standard library's ``LazyLoader``: the module object exists,
and runs on its first attribute access, so nothing changes for code that does use them.
Only the command does this, never ``import pacsguard``: a library must not change how its
caller's process imports.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

DEFERRED = ("requests", "tqdm", "urllib.request")


class _DeferringFinder(importlib.abc.MetaPathFinder):
    def __init__(self, names: frozenset[str]) -> None:
        self.names = names

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None


def prepare_process(deferred: Sequence[str] = DEFERRED) -> None:
    """Defer ``deferred`` and keep OpenBLAS to one thread (numpy starts one a core at import,
    about 50 ms; pacsguard does no linear algebra, and its pool has a process a core), unless
    the environment says otherwise. Idempotent."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        return
    names = frozenset(n for n in deferred if n not in sys.modules)
    if names:
        sys.meta_path.insert(0, _DeferringFinder(names))
