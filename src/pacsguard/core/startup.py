"""What the ``pacsguard`` command sets up before the libraries it runs are imported.

pydicom imports, on its own import, modules that a de-identification never uses: ``requests``,
``tqdm`` and ``urllib.request`` for downloading its test data (about 100 ms of CPU together),
its ``examples`` datasets, and Pillow's colour management ``PIL.ImageCms`` (with
``PIL.Image``: ~25 ms), used only to convert an ICC profile's colours.
They are deferred here with the standard library's ``LazyLoader``: the module object exists,
and runs on its first attribute access, so nothing changes for code that does use them.

pydicom also sets up, on ``import pydicom``, every pixel codec it might ever use: its decoder
and encoder registry imports each plugin to ask whether it is available (importing GDCM,
Pillow and pylibjpeg, which scans every installed package's entry points), and its older
``pixel_data_handlers`` import the same libraries again. A run whose files need no pixel
decoding (the byte path, the header path) never asks. ``PixelPlugins`` defers both until
first use, without changing what pydicom then does:

- the registry (``pydicom.pixels.common.CoderBase``): the plugins that pydicom's own decoder
  and encoder modules register at their import are noted, in order, and registered by
  pydicom's own ``add_plugin`` the first time anything reads that coder's plugins (its
  ``_available``/``_unavailable`` dicts, through which every method goes). A plugin removed
  before then is dropped from the note, unimported (pacsguard removes pydicom's in-process
  GDCM plugin: ``deid/pixels/gdcm_fallback.py``). Any later ``add_plugin`` is pydicom's,
  at once. The coders' docstrings, which list their plugins, are written as pydicom writes
  them;
- the older handlers (``pydicom.pixel_data_handlers.gdcm_handler`` and its three siblings for
  Pillow, pylibjpeg and CharLS): their modules exist at once and run on first use of any
  of their attributes (``_KeptModule``: unlike 3.11's ``LazyLoader``, reading the import
  system's own ``__spec__``/``__name__`` does not run them).

numpy (~80 ms of CPU) is imported by pydicom's pixel modules at their own import, yet only
pixel work uses it; a run whose files all take the byte path never does (the byte path
encodes even its conformance markers itself: pydicom's string writer asks numpy whether a
value is an array). It is kept (``_KeptModule``) and runs on its first use; a thread that
uses a kept module while another runs its code waits for that run to end, as a second
importer waits on the import system's module lock (but a run begun from the import
system's finder, below, holds its lock: two threads using numpy first at once could then wait
on each other, so the commands whose threads may (gateway, guard, scan) do not keep it;
``cli.kept_modules``). A submodule imported before any
attribute (``import numpy.linalg``; ``numpy._core`` through a C extension's
``import_array``) first runs numpy's own code, which imports that submodule itself; the
import that had begun then takes that module as it is (``_LoadedLoader``) instead of
executing it a second time.

``tests/test_startup.py`` checks that a process prepared this way has the same plugins, in
the same order, as an unprepared one, decodes the same pixels, and fails loudly when pydicom
changes what this relies on.

Only the command does this, never ``import pacsguard``: a library must not change how its
caller's process imports.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

DEFERRED = ("requests", "tqdm", "urllib.request", "PIL.ImageCms", "pydicom.examples")
# kept (``_KeptModule``): pydicom's pixel modules import numpy at their own import, but only
# decoding uses it; a run whose files take the byte path never does (~80 ms of CPU)
KEPT = ("numpy",)

REGISTRY = "pydicom.pixels.common"
REGISTERING = ("pydicom.pixels.decoders.base", "pydicom.pixels.encoders.base")
HANDLERS = tuple(
    f"pydicom.pixel_data_handlers.{name}_handler"
    for name in ("gdcm", "pillow", "pylibjpeg", "jpeg_ls")
)
# what the import system reads of a module it has made; reading these runs nothing
_IMPORT_ATTRIBUTES = frozenset(
    {
        "__name__",
        "__spec__",
        "__loader__",
        "__package__",
        "__path__",
        "__file__",
        "__cached__",
        "__dict__",
        "__class__",
        "__builtins__",
    }
)


class _KeptModule(ModuleType):
    """A module whose code runs on first use of any attribute but the import system's."""

    def __getattribute__(self, name: str) -> Any:
        if name in _IMPORT_ATTRIBUTES:
            return super().__getattribute__(name)
        _run(self)
        return getattr(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _IMPORT_ATTRIBUTES:
            super().__setattr__(name, value)
            return
        _run(self)
        setattr(self, name, value)

    def __delattr__(self, name: str) -> None:
        _run(self)
        delattr(self, name)


class _RunningModule(ModuleType):
    """A kept module whose code is running: the thread running it reads and writes it as it
    is; any other waits for the run to end, as the import system's module lock makes a second
    importer wait for a module being imported."""

    def __getattribute__(self, name: str) -> Any:
        if name not in _IMPORT_ATTRIBUTES and _RUNNING.get(id(self)) != threading.get_ident():
            with _RUN_LOCK:  # held by the running thread until the module's code has run
                pass
        return ModuleType.__getattribute__(self, name)  # its class may be plain by now


_RUN_LOCK = threading.RLock()
_RUNNING: dict[int, int] = {}  # id of a module whose code runs -> the thread running it


def _run(module: ModuleType) -> None:
    with _RUN_LOCK:
        if type(module) is not _KeptModule:
            return  # another thread ran it
        spec = module.__spec__
        assert spec is not None
        loader: Any = spec.loader  # the real one (``_KeepingLoader``)
        _RUNNING[id(module)] = threading.get_ident()
        object.__setattr__(module, "__class__", _RunningModule)
        try:
            loader.exec_module(module)
        finally:
            object.__setattr__(module, "__class__", ModuleType)
            del _RUNNING[id(module)]


class _KeepingLoader(importlib.abc.Loader):
    def __init__(self, loader: Any) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        spec = module.__spec__
        assert spec is not None
        spec.loader = module.__loader__ = self.loader  # as LazyLoader leaves them
        module.__class__ = _KeptModule


class _LoadedLoader(importlib.abc.Loader):
    """A submodule that its kept parent's code imported while a finder ran that code, for
    an import of the submodule that had begun before: the import system goes on to load
    what the finder returns, so it gets the module as it is, never executed twice (two
    module objects, the parent's names bound to the first)."""

    def __init__(self, module: ModuleType) -> None:
        self.module, self.spec = module, module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import system put this loader's spec there


class _WrappingLoader(importlib.abc.Loader):
    """The real loader, with ``before``/``after`` around the module's code."""

    def __init__(
        self, loader: Any, before: Callable[[], None], after: Callable[[ModuleType], None]
    ) -> None:
        self.loader, self.before, self.after = loader, before, after

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        made: ModuleType | None = self.loader.create_module(spec)
        return made

    def exec_module(self, module: ModuleType) -> None:
        self.before()
        try:
            self.loader.exec_module(module)
        finally:
            self.after(module)


class PixelPlugins:
    """The registry's deferral (see the module's docstring); one per process."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.window = 0  # > 0 while pydicom's decoder or encoder module registers
        self.labels = False  # the registry's labels alone, for the docstrings
        self.add: Any = None  # pydicom's own methods
        self.remove: Any = None

    def patch(self, common: ModuleType) -> None:
        base = common.CoderBase
        self.add, self.remove = base.add_plugin, base.remove_plugin
        plugins = self

        def add_plugin(coder: Any, label: str, import_path: tuple[str, str]) -> None:
            if plugins.window:
                with plugins.lock:
                    coder.__dict__.setdefault("_pacsguard_pending", []).append((label, import_path))
                return
            plugins.settle(coder)
            plugins.add(coder, label, import_path)

        def remove_plugin(coder: Any, label: str) -> None:
            with plugins.lock:
                pending = coder.__dict__.get("_pacsguard_pending") or []
                for entry in pending:
                    if entry[0] == label:
                        pending.remove(entry)
                        return
            plugins.settle(coder)
            plugins.remove(coder, label)

        base.add_plugin = add_plugin
        base.remove_plugin = remove_plugin
        base._available = self._store("_available")
        base._unavailable = self._store("_unavailable")

    def _store(self, name: str) -> property:
        plugins = self

        def get(coder: Any) -> Any:
            if plugins.labels:
                found = dict.fromkeys(coder.__dict__[name])
                if name == "_available":
                    found.update(
                        dict.fromkeys(e[0] for e in coder.__dict__.get("_pacsguard_pending", []))
                    )
                return found
            if not plugins.window:
                plugins.settle(coder)
            return coder.__dict__[name]

        def set_(coder: Any, value: Any) -> None:
            coder.__dict__[name] = value

        return property(get, set_)

    def settle(self, coder: Any) -> None:
        """Register ``coder``'s noted plugins, in order, by pydicom's ``add_plugin`` (which
        reads the dicts again: that read, in this thread, finds them being settled)."""
        state = coder.__dict__
        if not state.get("_pacsguard_pending"):
            return
        with self.lock:
            pending = state.get("_pacsguard_pending")
            if not pending or state.get("_pacsguard_settling"):
                return
            state["_pacsguard_settling"] = True
            try:
                while pending:
                    label, import_path = pending.pop(0)
                    self.add(coder, label, import_path)
            finally:
                state["_pacsguard_settling"] = False

    def opened(self) -> None:
        self.window += 1

    def registered(self, module: ModuleType) -> None:
        self.window -= 1
        builder = next(
            (getattr(module, n) for n in ("_build_decoder_docstrings", "_build_encoder_docstrings")
             if hasattr(module, n)),
            None,
        )  # fmt: skip
        if builder is not None:
            self.labels = True
            try:
                builder()  # as pydicom wrote them, with the plugins noted but not yet loaded
            finally:
                self.labels = False


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """``lazy`` modules by ``LazyLoader``, ``kept`` ones by ``_KeptModule``, ``wrapped`` ones
    run between their two functions."""

    def __init__(
        self,
        lazy: frozenset[str],
        kept: frozenset[str],
        wrapped: dict[str, tuple[Callable[[], None], Callable[[ModuleType], None]]],
    ) -> None:
        self.lazy, self.kept, self.wrapped = lazy, kept, wrapped

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        parent = fullname.rpartition(".")[0]
        if parent in self.kept and type(sys.modules.get(parent)) is _KeptModule:
            _run(sys.modules[parent])  # a package's own code runs before its submodules
            loaded = sys.modules.get(fullname)
            if loaded is not None:  # that code imported it: it must not run a second time
                spec = importlib.util.spec_from_loader(fullname, _LoadedLoader(loaded))
                # the import system loads the spec of a module found in sys.modules by now
                loaded.__spec__ = spec
                return spec
        if fullname not in self.lazy and fullname not in self.kept and fullname not in self.wrapped:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is None:
                continue
            if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                if fullname in self.lazy:
                    spec.loader = importlib.util.LazyLoader(spec.loader)
                elif fullname in self.kept:
                    spec.loader = _KeepingLoader(spec.loader)
                else:
                    spec.loader = _WrappingLoader(spec.loader, *self.wrapped[fullname])
            return spec
        return None


def prepare_process(
    deferred: Sequence[str] = DEFERRED, *, kept: Sequence[str] = KEPT, pixel_plugins: bool = True
) -> None:
    """Defer ``deferred``, run ``kept`` on their first use, and, with ``pixel_plugins``,
    pydicom's pixel plugins (unless pydicom is imported already), and keep OpenBLAS to one
    thread (numpy starts one a core at import, about 50 ms; pacsguard does no linear algebra,
    and its pool has a process a core) unless the environment says otherwise. Idempotent."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if any(isinstance(f, _DeferringFinder) for f in sys.meta_path):
        return
    lazy = frozenset(n for n in deferred if n not in sys.modules)
    kept_now = frozenset(n for n in kept if n not in sys.modules)
    wrapped: dict[str, tuple[Callable[[], None], Callable[[ModuleType], None]]] = {}
    if pixel_plugins and not any(n.split(".")[0] == "pydicom" for n in sys.modules):
        plugins = PixelPlugins()
        kept_now |= frozenset(HANDLERS)
        wrapped[REGISTRY] = (lambda: None, plugins.patch)
        for name in REGISTERING:
            wrapped[name] = (plugins.opened, plugins.registered)
    if lazy or kept_now:
        sys.meta_path.insert(0, _DeferringFinder(lazy, kept_now, wrapped))
